"""The chaos harness's clients (run.py runs them against the brokers): the idempotent
producer whose history the checker judges (`Workload`), a consumer group member
(`GroupMember`), a transactional copier (`Copier`) and the readers that read a topic to its
end (`read_everything`). Each logs what it was told in history.py's operations.

Not here: the brokers, the faults and the scenarios (run.py), the checking (history.py).
"""

import threading
import time

NODES = (1, 2, 3)
KAFKA_PORT = 9092
CONTROLLER_PORT = 9093
SESSION_TIMEOUT_MS = 3000
TOPIC = "chaos"
GROUP = "chaos-group"
COPIER_GROUP = "chaos-copier"
TRANSACTIONAL_ID = "chaos-copier"
OUTPUT = "chaos-out"
PARTITIONS = 3
RATE = 1000  # records/s, bounded
# Where connections that bind no address leave from: the clients', never cut.
CLIENT_ADDRESS = "127.0.0.100"
# librdkafka logs every refused connection while a broker is down, as expected here: only
# critical lines are kept.
QUIET = 2


def address(node):
    return f"127.0.0.{node}"


def bootstrap():
    return ",".join(f"{address(n)}:{KAFKA_PORT}" for n in NODES)


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - a broker down answers with an error: try again
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


class Workload:
    """One idempotent `acks=all` producer sending numbered values round-robin over the
    partitions at a bounded rate, logging every send and its outcome."""

    def __init__(self):
        from confluent_kafka import Producer
        self.fatal = None
        self.producer = Producer({"bootstrap.servers": bootstrap(), "enable.idempotence": True,
                                  "acks": "all", "linger.ms": 5, "message.timeout.ms": 120000,
                                  "log_level": QUIET, "error_cb": self.on_error})
        # Appended by whichever thread serves the producer's callbacks (the sending thread,
        # then `finish`), read once it has stopped: a list's append is atomic, so no lock (a
        # lock taken inside librdkafka's callbacks once left the harness waiting forever).
        self.history = []
        self.acked_at = {p: [] for p in range(PARTITIONS)}
        self.running = True
        self.failed = None
        self.thread = threading.Thread(target=self.run)

    def record(self, op):
        self.history.append(op)

    def on_error(self, error):
        # A fatal error ends the idempotent producer; its reason is the finding.
        if error.fatal() and self.fatal is None:
            self.fatal = str(error)

    def run(self):
        try:
            self.send()
        except BaseException as e:  # noqa: BLE001 - reported by `finish`
            self.failed = e

    def send(self):
        seq = 0
        started = time.monotonic()
        while self.running:
            due = started + seq / RATE
            now = time.monotonic()
            if now < due:
                self.producer.poll(min(due - now, 0.05))
                continue
            partition = seq % PARTITIONS
            value = f"v{seq}"
            base = {"op": "produce", "value": value, "producer": "p", "seq": seq,
                    "partition": partition}
            self.record(dict(base, type="invoke"))
            try:
                self.producer.produce(TOPIC, value=value.encode(), partition=partition,
                                      on_delivery=self.delivered(base))
            except BufferError:
                self.record(dict(base, type="fail"))
            seq += 1
            self.producer.poll(0)

    def delivered(self, base):
        def on_delivery(err, msg):
            if err is None:
                self.record(dict(base, type="ok", offset=msg.offset()))
                self.acked_at[base["partition"]].append(time.monotonic())
            else:
                # A timeout or a fatal error: the record may or may not be in the log.
                self.record(dict(base, type="info", error=str(err)))
        return on_delivery

    def start(self):
        self.thread.start()

    def finish(self):
        self.running = False
        self.thread.join()
        if self.failed is not None:
            self.producer.poll(1)  # the fatal error's own report, if one is due
            raise RuntimeError(f"the producer's thread failed: {self.failed!r}; "
                               f"fatal error: {self.fatal}")
        left = self.producer.flush(120)
        if left:
            raise RuntimeError(f"{left} records never answered")

    def longest_outage_s(self):
        """The longest time between two acknowledgements of one partition."""
        gaps = [b - a for times in self.acked_at.values() for a, b in zip(times, times[1:])]
        return max(gaps, default=0.0)


def read_everything(reader, topic=TOPIC, op="read"):
    """Every record of `topic` (read_committed), from offset 0 to each partition's end, as
    `op` ops. The position, not the last record, says when a partition is read: a
    transaction's marker may be the last thing in it."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": f"checker-{reader}",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "log_level": QUIET})
    ops = []
    try:
        ends = end_offsets(c, topic)
        assignment = [TopicPartition(topic, p, 0) for p in range(PARTITIONS)]
        c.assign(assignment)
        position = {p: 0 for p in range(PARTITIONS)}
        deadline = time.monotonic() + 120
        while any(position[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error() is not None:
                    continue
                ops.append({"op": op, "reader": reader, "partition": m.partition(),
                            "offset": m.offset(), "value": m.value().decode()})
            for tp in c.position(assignment):
                position[tp.partition] = max(position[tp.partition], tp.offset)
        short = {p: (position[p], ends[p]) for p in ends if position[p] < ends[p]}
        if short:
            raise RuntimeError(f"reader {reader} stopped short of the end of {topic}: {short}")
    finally:
        c.close()
    return ops


def end_offsets(consumer, topic):
    """{partition: high watermark} of `topic`, asked until every partition's leader answers
    (a bounced broker's partitions move)."""
    from confluent_kafka import TopicPartition

    def ask():
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(PARTITIONS)}
    return wait_until(ask, 60, f"the end offsets of {topic}")


def group_consumer(group):
    """A consumer of `group` reading the topic from its start, read_committed, committing
    only when told."""
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": bootstrap(), "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "log_level": QUIET})
    consumer.subscribe([TOPIC])
    return consumer


class GroupClient:
    """A client reading the topic as a group member on a thread of its own: `step` handles
    one batch (`batch`) until `stop`; then `catch_up` steps on until the group has committed
    every partition to its end (the producer has stopped)."""

    def __init__(self):
        self.consumer = None
        self.running = True
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while self.running:
            self.step()

    def batch(self):
        return [m for m in self.consumer.consume(500, 0.2) if m.error() is None]

    def catch_up(self):
        self.running = False
        self.thread.join()
        ends = end_offsets(self.consumer, TOPIC)
        deadline = time.monotonic() + 120
        while not committed_reached(self.consumer, TOPIC, ends):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} never reached the end: {ends}")
            self.step()
        self.consumer.close()


class GroupMember(GroupClient):
    """One member of consumer group GROUP reading the topic (read_committed) and committing
    synchronously after each batch it processed, logging what it processed and every
    acknowledged commit. Processing is at least once: a batch processed again after a lost
    commit is counted (`group_redelivered`), never an error."""

    def __init__(self):
        super().__init__()
        self.history = []
        self.commit_errors = 0

    def start(self):
        self.consumer = group_consumer(GROUP)
        self.thread.start()

    def step(self):
        from confluent_kafka import KafkaException
        batch = self.batch()
        for m in batch:
            self.history.append({"op": "consume", "group": GROUP, "value": m.value().decode()})
        if not batch:
            return
        try:
            done = self.consumer.commit(asynchronous=False)
        except KafkaException:
            self.commit_errors += 1
            return
        for tp in done:
            if tp.error is None and tp.offset >= 0:
                self.history.append({"op": "commit", "group": GROUP,
                                     "partition": tp.partition, "offset": tp.offset})

    def has_committed(self):
        return any(op["op"] == "commit" for op in list(self.history))

    def finish(self):
        """Reads on to the end of the topic (the producer has stopped), then reports what the
        group's coordinator holds as committed."""
        self.catch_up()
        for p, offset in committed_offsets(GROUP, TOPIC).items():
            self.history.append({"op": "committed", "group": GROUP, "partition": p,
                                 "offset": offset})

    def figures(self, figures):
        consumed = [op["value"] for op in self.history if op["op"] == "consume"]
        figures["group_processed"] = len(consumed)
        figures["group_redelivered"] = len(consumed) - len(set(consumed))
        figures["group_commits"] = sum(1 for op in self.history if op["op"] == "commit")
        figures["group_commit_errors"] = self.commit_errors


def committed_reached(consumer, topic, ends):
    """True once `consumer`'s group has committed every partition of `topic` up to its end
    in `ends` ({partition: end offset}). Its positions would not do: a new member that takes
    over a partition already read to its end has no position there."""
    from confluent_kafka import KafkaException, TopicPartition
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
    except KafkaException:
        return False
    return all(tp.offset >= ends[tp.partition] for tp in found)


def committed_offsets(group, topic):
    """{partition: offset} the group's coordinator answers (read_committed: it waits out
    commits still inside a transaction)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": group,
                  "isolation.level": "read_committed", "log_level": QUIET})
    try:
        found = wait_until(lambda: c.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10), 60,
            f"{group}'s committed offsets")
        return {tp.partition: tp.offset for tp in found}
    finally:
        c.close()


class Copier(GroupClient):
    """A transactional copier, exactly once: reads the topic read_committed (group
    COPIER_GROUP) and writes each value to OUTPUT, same partition, in a transaction that also
    commits the input offsets. On any error it aborts (or, when the producer cannot, starts a
    new one under the same transactional id, which fences the old and aborts its open
    transaction) and goes back to the offsets last committed.

    It also crashes now and then (`CRASHES`, at transactions the seed picks): with a
    transaction's records written but not committed it abandons its producer and consumer, as
    a process that died would, and starts again as a new instance (a new producer under the
    same transactional id, a new member of the group). Those records must never be read."""

    CRASHES = 3
    CRASH_CHANCE = 0.15

    def __init__(self, rng):
        super().__init__()
        self.rng = rng
        self.producer = None
        # Crashed instances' producers, kept alive so they never abort what they left open.
        self.zombies = []
        self.history = []
        self.transactions = 0
        self.aborted = 0
        self.crashes = 0

    def new_producer(self):
        from confluent_kafka import Producer
        producer = Producer({"bootstrap.servers": bootstrap(),
                             "transactional.id": TRANSACTIONAL_ID,
                             "transaction.timeout.ms": 60000, "log_level": QUIET})
        wait_until(lambda: producer.init_transactions(10) is None, 120,
                   "the copier's producer initialized")
        return producer

    def start(self):
        self.producer = self.new_producer()
        self.consumer = group_consumer(COPIER_GROUP)
        self.thread.start()

    def step(self):
        from confluent_kafka import KafkaException
        batch = self.batch()
        if not batch:
            return
        try:
            self.producer.begin_transaction()
            for m in batch:
                self.send(m)
            if self.crashes < self.CRASHES and self.rng.random() < self.CRASH_CHANCE:
                self.crash()
                return
            positions = self.consumer.position(self.consumer.assignment())
            self.producer.send_offsets_to_transaction(
                positions, self.consumer.consumer_group_metadata(), 30)
            self.producer.commit_transaction(60)
            self.transactions += 1
        except KafkaException as e:
            self.aborted += 1
            self.recover(e.args[0])

    def send(self, message):
        while True:
            try:
                self.producer.produce(OUTPUT, message.value(), partition=message.partition())
                return
            except BufferError:
                self.producer.poll(0.1)

    def crash(self):
        """Dies with the transaction's records in the log, uncommitted; a new instance takes
        over. The group member leaves (a member that vanished would hold the group up for a
        session); the producer is abandoned as it is."""
        self.crashes += 1
        self.producer.flush(30)
        self.zombies.append(self.producer)
        self.consumer.close()
        self.producer = self.new_producer()
        self.consumer = group_consumer(COPIER_GROUP)

    def recover(self, error):
        from confluent_kafka import KafkaException
        try:
            if error.fatal():
                raise KafkaException(error)
            self.producer.abort_transaction(60)
        except KafkaException:
            self.producer = self.new_producer()
        self.rewind()

    def rewind(self):
        """Back to the input offsets last committed (the output's transaction with them)."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition
        committed = committed_offsets(COPIER_GROUP, TOPIC)
        for tp in self.consumer.assignment():
            offset = committed.get(tp.partition, -1)
            self.consumer.seek(TopicPartition(TOPIC, tp.partition,
                                              offset if offset >= 0 else OFFSET_BEGINNING))

    def finish(self):
        """Copies on to the end of the input (the producer has stopped)."""
        self.catch_up()
        self.history.extend({"op": "copy", "value": op["value"]}
                            for op in read_everything("copies", OUTPUT, op="read"))

    def figures(self, figures):
        figures["copier_transactions"] = self.transactions
        figures["copied"] = sum(1 for op in self.history if op["op"] == "copy")
        figures["copier_aborted"] = self.aborted
        figures["copier_crashes"] = self.crashes
