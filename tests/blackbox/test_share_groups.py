"""Share groups (KIP-932, issue 18) through librdkafka's ShareConsumer (confluent-kafka 2.16):
queues on the Kafka protocol. Many consumers read the same partitions, each record is acquired
by one of them, acknowledged, released for another try, rejected, or redelivered when its lock
expires; Sluice adds per-key order and retry back-off as group configs."""

import collections
import random
import struct
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import AcknowledgeType, KafkaException, ShareConsumer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from conftest import wait_until
from helpers import admin, consume_all, create_topic, producer
from rawwire import Reader, raw, read_frame


def set_group_configs(broker, group, **configs):
    entries = [
        ConfigEntry(name.replace("_", "."), str(value), incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    resource = ConfigResource(ConfigResource.Type.GROUP, group, incremental_configs=entries)
    a = admin(broker)  # kept alive until the answer is in
    for future in a.incremental_alter_configs([resource]).values():
        future.result(30)


def share_consumer(broker, group, **conf):
    c = ShareConsumer({"bootstrap.servers": broker.bootstrap, "group.id": group, **conf})
    return c


def produce_keyed(broker, topic, n, keys=None, partitions=None):
    p = producer(broker, **{"linger.ms": 5})
    for i in range(n):
        key = None if keys is None else f"k{i % keys}"
        kwargs = {} if partitions is None else {"partition": i % partitions}
        p.produce(topic, key=key, value=f"v{i}".encode(), **kwargs)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def close(c):
    """Accepts what the last poll returned, then leaves. librdkafka 2.16's `close()` alone does
    not accept the last poll's records in implicit mode: the broker releases them when the
    session closes and another member gets them again (at least once)."""
    c.commit_sync(30)
    c.close()


def records(messages):
    out = []
    for m in messages:
        assert m.error() is None, m.error()
        out.append(m)
    return out


def run_workers(broker, group, topic, n, took, workers=8, work_seconds=None):
    """`workers` share consumers in threads until `took(i, records, start, end)` says `n`
    records have come. It is called under one lock with what consumer i polled, when the poll
    returned, and when the work on them ended: `work_seconds(i)` of sleep outside the lock."""
    lock = threading.Lock()
    done = threading.Event()
    errors = []
    total = [0]

    def work(i):
        try:
            c = share_consumer(broker, group)
            c.subscribe([topic])
            while not done.is_set():
                got = records(c.poll(0.3))
                start = time.monotonic()
                if got and work_seconds is not None:
                    time.sleep(work_seconds(i))
                end = time.monotonic()
                with lock:
                    total[0] = took(i, got, start, end)
                    if total[0] >= n:
                        done.set()
            close(c)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
            done.set()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    assert done.wait(120), f"only {total[0]} of {n} records in 120 s"
    for t in threads:
        t.join(30)
    assert not errors, errors


def test_eight_share_consumers_on_two_partitions_get_every_record_exactly_once(broker):
    topic, group, n = "queue-8", "workers", 20_000
    create_topic(broker, topic, partitions=2)
    set_group_configs(broker, group, share_auto_offset_reset="earliest")
    produce_keyed(broker, topic, n, partitions=2)
    seen = collections.Counter()
    per_consumer = collections.Counter()

    def took(i, got, _start, _end):
        for m in got:
            seen[(m.partition(), m.offset())] += 1
            per_consumer[i] += 1
        return sum(seen.values())

    run_workers(broker, group, topic, n, took)
    assert len(seen) == n, "every record was delivered"
    assert max(seen.values()) == 1, "no record was delivered twice"
    assert sum(1 for v in per_consumer.values() if v > 0) >= 2, f"the work was shared: {per_consumer}"
    # Everything was accepted: a new member of the group finds nothing left to deliver.
    late = share_consumer(broker, group)
    late.subscribe([topic])
    redelivered = []
    end = time.time() + 3
    while time.time() < end:
        redelivered += records(late.poll(0.5))
    late.close()
    assert redelivered == []


def test_released_records_come_back_after_the_backoff_and_rejected_ones_never(broker):
    topic, group = "queue-release", "releasers"
    create_topic(broker, topic)
    set_group_configs(
        broker, group, share_auto_offset_reset="earliest",
        share_retry_backoff_ms=600, share_retry_backoff_max_ms=5000,
    )
    produce_keyed(broker, topic, 2)
    c = share_consumer(broker, group, **{"share.acknowledgement.mode": "explicit"})
    c.subscribe([topic])
    first = []
    wait_until(lambda: first.extend(records(c.poll(0.5))) or len(first) == 2, timeout=30,
               what="both records")
    assert [m.delivery_count() for m in first] == [1, 1]
    by_offset = {m.offset(): m for m in first}
    c.acknowledge(by_offset[0], AcknowledgeType.RELEASE)
    c.acknowledge(by_offset[1], AcknowledgeType.REJECT)
    released_at = time.monotonic()
    results = c.commit_sync(30)
    assert all(v is None for v in results.values()), results
    again = []
    wait_until(lambda: again.extend(records(c.poll(0.2))) or again, timeout=30, what="a redelivery")
    waited = time.monotonic() - released_at
    assert [(m.offset(), m.delivery_count()) for m in again] == [(0, 2)]
    assert waited >= 0.55, f"redelivered {waited:.2f} s after the release, before the 0.6 s back-off"
    # The second release waits twice as long.
    c.acknowledge(again[0], AcknowledgeType.RELEASE)
    released_at = time.monotonic()
    c.commit_sync(30)
    third = []
    wait_until(lambda: third.extend(records(c.poll(0.2))) or third, timeout=30, what="a redelivery")
    waited = time.monotonic() - released_at
    assert [(m.offset(), m.delivery_count()) for m in third] == [(0, 3)]
    assert waited >= 1.15, f"redelivered {waited:.2f} s after the release, before the 1.2 s back-off"
    c.acknowledge(third[0], AcknowledgeType.ACCEPT)
    c.commit_sync(30)
    # Offset 1 was rejected and offset 0 accepted: nothing more comes.
    tail = []
    end = time.time() + 2
    while time.time() < end:
        tail += records(c.poll(0.3))
    c.close()
    assert tail == []


def test_a_record_released_at_the_delivery_limit_is_archived(broker):
    topic, group = "queue-limit", "limited"
    create_topic(broker, topic)
    set_group_configs(broker, group, share_auto_offset_reset="earliest", share_delivery_count_limit=2)
    produce_keyed(broker, topic, 1)
    c = share_consumer(broker, group, **{"share.acknowledgement.mode": "explicit"})
    c.subscribe([topic])
    counts = []
    end = time.time() + 8
    while time.time() < end:
        for m in records(c.poll(0.3)):
            counts.append(m.delivery_count())
            c.acknowledge(m, AcknowledgeType.RELEASE)
        c.commit_sync(30)
    c.close()
    assert counts == [1, 2], "released twice, then archived at the limit of 2"


CRASHING_CONSUMER = """
import sys, time
from confluent_kafka import ShareConsumer
c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                   "share.acknowledgement.mode": "explicit"})
c.subscribe([sys.argv[3]])
got = []
while not got:
    got = [m for m in c.poll(0.5) if m.error() is None]
print(" ".join(str(m.offset()) for m in got), flush=True)
time.sleep(600)
"""


def test_records_held_by_a_killed_consumer_go_to_the_others_when_the_lock_expires(broker):
    topic, group = "queue-crash", "crashers"
    create_topic(broker, topic)
    set_group_configs(broker, group, share_auto_offset_reset="earliest",
                      share_record_lock_duration_ms=2000)
    produce_keyed(broker, topic, 50)
    victim = subprocess.Popen(
        [sys.executable, "-c", CRASHING_CONSUMER, broker.bootstrap, group, topic],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        held = [int(o) for o in victim.stdout.readline().split()]
        acquired_at = time.monotonic()
        assert held, "the victim acquired records"
        victim.kill()
        victim.wait(10)
        c = share_consumer(broker, group)
        c.subscribe([topic])
        got = {}
        wait_until(
            lambda: got.update({m.offset(): (m.delivery_count(), time.monotonic())
                                for m in records(c.poll(0.3))}) or len(got) == 50,
            timeout=30, what="every record delivered to the survivor",
        )
        c.close()
    finally:
        victim.kill()
        victim.wait(10)
    for offset in held:
        count, at = got[offset]
        assert count == 2, f"offset {offset} is a second delivery"
        assert at - acquired_at >= 1.9, f"offset {offset} came back before its lock expired"
    assert all(got[o][0] == 1 for o in got if o not in held)


def test_per_key_order_holds_under_eight_consumers_with_random_delays(broker):
    topic, group, n, keys = "queue-keyed", "ordered", 600, 12
    create_topic(broker, topic, partitions=2)
    set_group_configs(broker, group, share_auto_offset_reset="earliest", share_key_ordering="true")
    produce_keyed(broker, topic, n, keys=keys)
    deliveries = collections.defaultdict(list)  # (partition, key) -> [(offset, start, end)]
    rngs = [random.Random(i) for i in range(8)]

    def took(_i, got, start, end):
        for m in got:
            deliveries[(m.partition(), m.key())].append((m.offset(), start, end))
        return sum(len(d) for d in deliveries.values())

    run_workers(broker, group, topic, n, took, work_seconds=lambda i: rngs[i].uniform(0, 0.02))
    assert sum(len(d) for d in deliveries.values()) == n
    for key, ds in deliveries.items():
        ds.sort(key=lambda d: d[1])
        offsets = [d[0] for d in ds]
        assert offsets == sorted(offsets), f"{key} delivered out of order: {offsets}"
        for before, after in zip(ds, ds[1:]):
            # The next record of a key is acquired only once the one before is acknowledged,
            # which the consumer does at its next poll, after the processing ended.
            assert after[1] >= before[2], f"{key}: offsets {before[0]} and {after[0]} overlapped"


def compact(b):
    """A compact string or bytes: unsigned varint length + 1, then the bytes."""
    return _uvarint(len(b) + 1) + b


def flexible_request(broker, api_key, version, body):
    """Sends one request of a flexible version (header v2) by hand; returns a reader of its
    answer past the header and the throttle time."""
    correlation_id = 4321
    header = struct.pack(">hhih", api_key, version, correlation_id, 1) + b"t" + b"\x00"
    with raw(broker) as s:
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        r = CompactReader(read_frame(s))
    assert r.take(">i") == correlation_id
    r.tags()
    r.take(">i")  # throttle
    return r


def share_group_describe(broker, group):
    """ShareGroupDescribe v1 by hand: (error, state, epoch, [(member, [(topic, [partitions])])])."""
    body = _uvarint(2) + compact(group.encode()) + b"\x00" + b"\x00"
    r = flexible_request(broker, 77, 1, body)
    groups = []
    for _ in range(r.count()):
        error = r.take(">h")
        r.string()  # message
        group_id = r.string()
        state = r.string()
        epoch = r.take(">i")
        r.take(">i")  # assignment epoch
        r.string()  # assignor
        members = []
        for _ in range(r.count()):
            member_id = r.string()
            r.string()  # rack
            r.take(">i")  # member epoch
            r.string()  # client id
            r.string()  # client host
            for _ in range(r.count()):
                r.string()  # subscribed topic
            topics = []
            for _ in range(r.count()):
                r.at += 16  # topic id
                name = r.string()
                topics.append((name, [r.take(">i") for _ in range(r.count())]))
                r.tags()
            r.tags()  # assignment
            r.tags()  # member
            members.append((member_id, topics))
        r.take(">i")  # authorized operations
        r.tags()
        groups.append((group_id, error, state, epoch, members))
    return groups


def list_groups(broker, types):
    """ListGroups v5 by hand (librdkafka lists consumer and classic groups only): [(group,
    state, type)]."""
    body = _uvarint(1) + _uvarint(len(types) + 1) + b"".join(compact(t.encode()) for t in types)
    body += b"\x00"
    r = flexible_request(broker, 16, 5, body)
    assert r.take(">h") == 0
    out = []
    for _ in range(r.count()):
        group_id = r.string()
        r.string()  # protocol type
        state = r.string()
        group_type = r.string()
        r.tags()
        out.append((group_id, state, group_type))
    r.tags()
    return out


def _uvarint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


class CompactReader(Reader):
    def count(self):
        return self.uvarint() - 1

    def string(self):
        n = self.uvarint() - 1
        if n < 0:
            return None
        s = self.data[self.at:self.at + n].decode()
        self.at += n
        return s

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.at += self.uvarint()


def test_share_groups_are_listed_described_and_configured(broker):
    topic, group = "queue-admin", "admins"
    create_topic(broker, topic, partitions=3)
    a = admin(broker)
    bad = ConfigResource(ConfigResource.Type.GROUP, group, incremental_configs=[
        ConfigEntry("share.delivery.count.limit", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as refused:
        a.incremental_alter_configs([bad])[bad].result()
    assert "share.delivery.count.limit" in str(refused.value)
    unknown = ConfigResource(ConfigResource.Type.GROUP, group, incremental_configs=[
        ConfigEntry("share.no.such.key", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException):
        a.incremental_alter_configs([unknown])[unknown].result()
    set_group_configs(broker, group, share_key_ordering="true")
    described = a.describe_configs([ConfigResource(ConfigResource.Type.GROUP, group)])
    configs = list(described.values())[0].result()
    assert configs["share.key.ordering"].value == "true"
    assert configs["share.auto.offset.reset"].value == "latest", "Kafka's default"
    assert configs["share.record.lock.duration.ms"].value == "30000"

    consumers = [share_consumer(broker, group) for _ in range(2)]
    try:
        for c in consumers:
            c.subscribe([topic])

        def assigned():
            [(_, error, state, _, members)] = share_group_describe(broker, group)
            assert error == 0
            parts = sorted(p for _, ts in members for name, ps in ts if name == topic for p in ps)
            return state, len(members), all(m[1] for m in members), parts

        def settled():
            for c in consumers:
                c.poll(0.1)
            # Each member takes its new assignment at its next heartbeat: until then the one
            # that joined first still shows every partition.
            return assigned() == ("Stable", 2, True, [0, 1, 2])

        wait_until(settled, timeout=30, what="two members sharing the three partitions")
        assert (group, "Stable", "share") in list_groups(broker, types=["share"])
        assert group not in [g for g, _, _ in list_groups(broker, types=["consumer", "classic"])]
    finally:
        for c in consumers:
            c.close()
    [(_, _, state, _, members)] = share_group_describe(broker, group)
    assert (state, members) == ("Empty", [])
    [(_, error, state, _, _)] = share_group_describe(broker, "no-such-group")
    assert (error, state) == (69, "Dead"), "GROUP_ID_NOT_FOUND"


HALF_ACCEPTING_CONSUMER = """
import sys, time
from confluent_kafka import AcknowledgeType, ShareConsumer
c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                   "share.acknowledgement.mode": "explicit"})
c.subscribe([sys.argv[3]])
got = []
while len(got) < 40:
    got += [m for m in c.poll(0.5) if m.error() is None]
accepted = got[: len(got) // 2]
for m in got:
    c.acknowledge(m, AcknowledgeType.ACCEPT if m in accepted else AcknowledgeType.RELEASE)
    if m is accepted[-1]:
        break
results = c.commit_sync(30)
assert all(v is None for v in results.values()), results
print(" ".join(f"{m.partition()}:{m.offset()}" for m in accepted), flush=True)
print(" ".join(f"{m.partition()}:{m.offset()}" for m in got[len(accepted):]), flush=True)
time.sleep(600)
"""


def the_rest(bootstrap, group, topic, count):
    """The "partition:offset" of each record a new share consumer gets until `count` came and
    two more seconds brought none; each is checked to come once."""
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group})
    c.subscribe([topic])
    after = collections.Counter()

    def took():
        for m in records(c.poll(0.3)):
            after[f"{m.partition()}:{m.offset()}"] += 1
        return sum(after.values()) >= count

    try:
        wait_until(took, timeout=60, what=f"{count} records")
        end = time.time() + 2
        while time.time() < end:
            took()
        c.commit_sync(30)
    finally:
        c.close()
    assert max(after.values()) == 1, "a record came twice"
    return set(after)


def test_the_state_survives_kill_9_and_nothing_accepted_is_delivered_again(start_broker):
    broker = start_broker()
    topic, group, n = "queue-durable", "durable", 400
    create_topic(broker, topic, partitions=2)
    set_group_configs(broker, group, share_auto_offset_reset="earliest")
    produce_keyed(broker, topic, n, partitions=2)
    first = subprocess.Popen(
        [sys.executable, "-c", HALF_ACCEPTING_CONSUMER, broker.bootstrap, group, topic],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        accepted = set(first.stdout.readline().split())
        held = set(first.stdout.readline().split())
        assert accepted and held, "the consumer accepted some records and held others"
        broker.kill()
    finally:
        first.kill()
        first.wait(10)
    broker.start()
    after = the_rest(broker.bootstrap, group, topic, n - len(accepted))
    assert not accepted & set(after), "an accepted record was delivered again"
    assert len(after) == n - len(accepted), "every other record came, the held ones again"
    assert held <= set(after), "what was in flight at the crash is delivered again"


def test_a_new_leader_takes_the_share_state_over_and_delivers_nothing_accepted(tmp_path):
    """Three brokers, a partition with three replicas: a share consumer accepts half of what it
    got; the partition's leader is killed. The new leader reads the share-partition's state
    from its share coordinator (`__share_group_state`, three replicas too) and hands out only
    what was not accepted."""
    from test_cluster import running_cluster
    from test_replication import create, led_everywhere, produce_acked

    with running_cluster(tmp_path, 3, 3000) as cluster:
        nodes = list(cluster.values())
        topic, group, n = "queue-ha", "ha", 200
        create(cluster[1], topic, 1, 3)
        placed = wait_until(lambda: led_everywhere(nodes, topic, 1, 3), timeout=30,
                            what=f"{topic} led with three in-sync replicas")
        leader = placed[0][0]
        set_group_configs(cluster[1], group, share_auto_offset_reset="earliest")
        acked, failed = produce_acked(cluster[leader], topic, [b"v%d" % i for i in range(n)])
        assert not failed and len(acked) == n
        everyone = ",".join(b.bootstrap for b in nodes)
        first = subprocess.Popen(
            [sys.executable, "-c", HALF_ACCEPTING_CONSUMER, everyone, group, topic],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            accepted = set(first.stdout.readline().split())
            assert accepted
            cluster[leader].kill()
        finally:
            first.kill()
            first.wait(10)
        survivors = [b for i, b in cluster.items() if i != leader]
        wait_until(lambda: led_everywhere(survivors, topic, 1, 2), timeout=30,
                   what="a new leader with two in-sync replicas")
        bootstrap = ",".join(b.bootstrap for b in survivors)
        after = the_rest(bootstrap, group, topic, n - len(accepted))
        assert not accepted & set(after), "an accepted record was delivered again"
        assert len(after) == n - len(accepted)
        http_queue_across_leaders(survivors)


def http_queue_across_leaders(brokers):
    """An HTTP share member reads a topic whose partitions have different leaders: the
    gateway holds a share session on each, and a poll that waits wakes for either."""
    from test_http import call
    from test_replication import create, led_everywhere
    topic, group = "queue-spread", "spread"
    create(brokers[0], topic, 4, 1)
    placed = wait_until(lambda: led_everywhere(brokers, topic, 4, 1), timeout=30,
                        what=f"{topic} led")
    assert len({leader for leader, _, _ in placed.values()}) == 2, placed
    set_group_configs(brokers[0], group, share_auto_offset_reset="earliest")
    status, body = call(brokers[0], "POST", f"/v1/share-groups/{group}/members", {"topic": topic})
    assert status == 201, body
    member = body["member_id"]
    produce_keyed(brokers[0], topic, 40, partitions=4)
    got = poll_http(brokers[0], group, member, 40, wait_ms=5000, max=7)
    assert sorted(r["value"] for r in got) == sorted(f"v{i}" for i in range(40)), got
    acks = [{"topic": topic, "partition": r["partition"], "offset": r["offset"], "type": "accept"}
            for r in got]
    status, body = call(brokers[0], "POST", f"/v1/share-groups/{group}/members/{member}/acks",
                        {"acks": acks})
    assert (status, body) == (200, {"acknowledged": 40, "failed": []}), body
    # A poll that waits is woken by a record on either leader.
    def produce_to(partition):
        p = producer(brokers[0])
        p.produce(topic, value=b"late", partition=partition)
        assert p.flush(30) == 0

    for partition in range(4):
        timer = threading.Timer(1.0, produce_to, (partition,))
        timer.start()
        started = time.monotonic()
        late = poll_http(brokers[0], group, member, 1, wait_ms=10000, deadline_s=20)
        timer.join()
        assert [(r["partition"], r["value"]) for r in late] == [(partition, "late")], late
        assert time.monotonic() - started < 9, "woken by the record, not by the 10 s wait"


def test_rejected_and_exhausted_records_go_to_the_dead_letter_topic_with_their_headers(broker):
    topic, group, dlq = "queue-dlq", "dlq-group", "dlq.queue-dlq"
    create_topic(broker, topic)
    create_topic(broker, dlq, config={"errors.deadletterqueue.group.enable": "true"})
    set_group_configs(
        broker, group, share_auto_offset_reset="earliest", share_delivery_count_limit=2,
        errors_deadletterqueue_topic_name=dlq, errors_deadletterqueue_copy_record_enable="true",
    )
    p = producer(broker)
    for i in range(3):
        p.produce(topic, key=f"k{i}", value=f"v{i}".encode(), headers=[("trace", b"t%d" % i)])
    assert p.flush(30) == 0
    c = share_consumer(broker, group, **{"share.acknowledgement.mode": "explicit"})
    c.subscribe([topic])
    decisions = {0: AcknowledgeType.REJECT, 1: AcknowledgeType.RELEASE, 2: AcknowledgeType.ACCEPT}
    seen = []
    end = time.time() + 8
    while time.time() < end:
        for m in records(c.poll(0.3)):
            seen.append((m.offset(), m.delivery_count()))
            c.acknowledge(m, decisions[m.offset()])
        c.commit_sync(30)
    c.close()
    assert sorted(seen) == [(0, 1), (1, 1), (1, 2), (2, 1)], seen
    letters = consume_all(broker, dlq, 2)
    by_offset = {}
    for m in letters:
        headers = {k: v for k, v in m.headers()}
        by_offset[int(headers["__dlq.errors.offset"])] = (m, headers)
    assert sorted(by_offset) == [0, 1]
    for offset, (count, why) in {0: ("1", b"rejected"), 1: ("2", b"delivery count limit reached")}.items():
        m, h = by_offset[offset]
        assert (m.key(), m.value()) == (b"k%d" % offset, b"v%d" % offset), "the record is copied"
        assert h["trace"] == b"t%d" % offset, "with its own headers"
        assert h["__dlq.errors.group"] == group.encode()
        assert h["__dlq.errors.topic"] == topic.encode()
        assert h["__dlq.errors.partition"] == b"0"
        assert h["__dlq.errors.delivery.count"] == count.encode()
        assert h["__dlq.errors.message"] == why
    # A group config naming a topic without the dlq. prefix is refused.
    bad = ConfigResource(ConfigResource.Type.GROUP, group, incremental_configs=[
        ConfigEntry("errors.deadletterqueue.topic.name", "orders",
                    incremental_operation=AlterConfigOpType.SET)])
    a = admin(broker)
    with pytest.raises(KafkaException):
        a.incremental_alter_configs([bad])[bad].result(30)


def nothing_comes(bootstrap, group, topic, seconds=2):
    """True if a new share consumer of `group` gets no record in `seconds`."""
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group})
    c.subscribe([topic])
    got = []
    end = time.time() + seconds
    while time.time() < end:
        got += records(c.poll(0.3))
    c.commit_sync(30)
    c.close()
    return got == []


def test_the_cli_lists_describes_and_resets_a_share_group(broker):
    """`sluice share-group list|describe|reset-offsets|delete` (DescribeShareGroupOffsets,
    AlterShareGroupOffsets v0, DeleteGroups): after a reset to earliest, a member of the group
    gets every record again, at a new state epoch its partitions' leader loads at the next
    session; after a delete, the group starts over."""
    import json

    from test_cli import sluice

    topic, group, n = "queue-cli", "cli-workers", 30
    create_topic(broker, topic, partitions=2)
    set_group_configs(broker, group, share_auto_offset_reset="earliest")
    produce_keyed(broker, topic, n, partitions=2)
    assert len(the_rest(broker.bootstrap, group, topic, n)) == n
    cli = lambda *args: sluice(broker, "share-group", *args).stdout.decode()  # noqa: E731
    listed = json.loads(cli("list", "--format", "json"))
    assert {"group": group, "state": "Empty"} in listed
    described = json.loads(cli("describe", group, "--topic", topic, "--format", "json"))
    rows = {(r["partition"], r["start_offset"], r["end_offset"], r["lag"])
            for r in described["partitions"]}
    assert rows == {(0, n // 2, n // 2, 0), (1, n // 2, n // 2, 0)}, rows
    assert "dry run" in cli("reset-offsets", group, "--topic", topic, "--to", "earliest")
    assert nothing_comes(broker.bootstrap, group, topic), "a dry run changes nothing"
    cli("reset-offsets", group, "--topic", topic, "--to", "earliest", "--execute")
    described = json.loads(cli("describe", group, "--topic", topic, "--format", "json"))
    assert {r["start_offset"] for r in described["partitions"]} == {0}
    assert len(the_rest(broker.bootstrap, group, topic, n)) == n, "every record again"
    # With a member in the group, a reset is refused.
    c = share_consumer(broker, group)
    c.subscribe([topic])
    try:
        wait_until(lambda: c.poll(0.2) is not None and json.loads(
            cli("describe", group, "--format", "json"))["members"], timeout=30, what="a member")
        refused = sluice(broker, "share-group", "reset-offsets", group, "--topic", topic,
                         "--to", "earliest", "--execute", check=False)
        assert refused.returncode != 0 and b"NON_EMPTY_GROUP" in refused.stderr, refused.stderr
        busy = sluice(broker, "share-group", "delete", group, check=False)
        assert busy.returncode != 0 and b"NON_EMPTY_GROUP" in busy.stderr, busy.stderr
    finally:
        c.commit_sync(30)
        c.close()
    # Deleted, the group's state goes with it: the group reads everything again from earliest.
    cli("delete", group)
    assert group not in [g["group"] for g in json.loads(cli("list", "--format", "json"))]
    assert len(the_rest(broker.bootstrap, group, topic, n)) == n, "a deleted group starts over"


def test_a_share_fetch_naming_too_many_partitions_is_refused_at_once(broker):
    """ShareFetch v1 by hand, naming 20,001 partitions of one topic: refused with
    INVALID_REQUEST (42) before any session is opened, and the broker serves on."""
    count = 20_001
    partition = struct.pack(">i", 0) + _uvarint(1) + b"\x00"  # index, no acknowledgements, tags
    topic = b"\x01" * 16 + _uvarint(count + 1) + partition * count + b"\x00"
    body = (compact(b"g") + compact(b"m") + struct.pack(">iiiiii", 0, 0, 1, 1 << 20, 500, 500)
            + _uvarint(2) + topic + _uvarint(1) + b"\x00")
    r = flexible_request(broker, 78, 1, body)
    assert r.take(">h") == 42
    create_topic(broker, "still-serving")


def poll_http(broker, group, member, want, wait_ms=2000, deadline_s=30, **params):
    """Polls the HTTP queue until `want` records came (or the deadline); returns them."""
    from test_http import call
    got = []
    query = "&".join(f"{k}={v}" for k, v in {"wait_ms": wait_ms, **params}.items())
    deadline = time.monotonic() + deadline_s
    while len(got) < want and time.monotonic() < deadline:
        status, body = call(broker, "GET",
                            f"/v1/share-groups/{group}/members/{member}/records?{query}")
        assert status == 200, body
        got.extend(body["records"])
    return got


def test_the_http_queue_round_trips_a_batch(broker):
    """A service with no Kafka client joins a share group over HTTP, polls a batch, accepts,
    releases and rejects records one by one, and leaves; what it left unacknowledged goes to
    another member at once, not after the lock."""
    from test_http import call
    create_topic(broker, "jobs", partitions=2)
    set_group_configs(broker, "workers", share_auto_offset_reset="earliest",
                      share_record_lock_duration_ms=60000, share_retry_backoff_ms=200)
    produce_keyed(broker, "jobs", 10, keys=10)
    base = "/v1/share-groups/workers/members"
    status, body = call(broker, "POST", base, {"topic": "jobs"})
    assert status == 201, body
    a = body["member_id"]

    batch = poll_http(broker, "workers", a, 10, max=10)
    assert sorted(r["value"] for r in batch) == sorted(f"v{i}" for i in range(10))
    assert all(r["topic"] == "jobs" and r["delivery_count"] == 1 for r in batch), batch
    accepted, released, rejected = batch[:7], batch[7:9], batch[9]
    kinds = [("accept", r) for r in accepted] + [("release", r) for r in released] \
        + [("reject", rejected)]
    acks = [{"topic": r["topic"], "partition": r["partition"], "offset": r["offset"], "type": t}
            for t, r in kinds]
    status, body = call(broker, "POST", f"{base}/{a}/acks", {"acks": acks})
    assert (status, body) == (200, {"acknowledged": 10, "failed": []}), body
    # An accepted record is no longer the member's to acknowledge.
    status, body = call(broker, "POST", f"{base}/{a}/acks", {"acks": acks[:1]})
    assert status == 200 and body["acknowledged"] == 0, body
    assert [f["error_code"] for f in body["failed"]] == ["INVALID_RECORD_STATE"], body

    # The released two come back (after the back-off) with a second delivery; nothing else.
    again = poll_http(broker, "workers", a, 2, max=10)
    assert sorted((r["value"], r["delivery_count"]) for r in again) \
        == sorted((r["value"], 2) for r in released), again
    acks = [{"topic": "jobs", "partition": r["partition"], "offset": r["offset"],
             "type": "accept"} for r in again]
    assert call(broker, "POST", f"{base}/{a}/acks", {"acks": acks})[1]["acknowledged"] == 2
    assert poll_http(broker, "workers", a, 1, wait_ms=500, deadline_s=1.5) == []

    # A record held when the member leaves goes to another member at once.
    status, body = call(broker, "POST", base, {"topics": ["jobs"]})
    assert status == 201, body
    b = body["member_id"]
    # Before its first poll a member holds nothing: no share session with the leader yet.
    status, body = call(broker, "POST", f"{base}/{b}/acks", {"acks": [
        {"topic": "jobs", "partition": 0, "offset": 0, "type": "accept"}]})
    assert status == 200 and body["acknowledged"] == 0, body
    assert [f["error_code"] for f in body["failed"]] == ["SHARE_SESSION_NOT_FOUND"], body
    produce_keyed(broker, "jobs", 1, partitions=1)
    held = poll_http(broker, "workers", a, 1, max=1)
    assert [r["value"] for r in held] == ["v0"] and held[0]["partition"] == 0, held
    assert poll_http(broker, "workers", b, 1, wait_ms=500, deadline_s=1.5) == []
    started = time.monotonic()
    assert call(broker, "DELETE", f"{base}/{a}") == (204, None)
    redelivered = poll_http(broker, "workers", b, 1, max=5)
    assert [(r["value"], r["delivery_count"]) for r in redelivered] == [("v0", 2)], redelivered
    assert time.monotonic() - started < 30, "released by the leave, not by the 60 s lock"
    assert call(broker, "GET", f"{base}/{a}/records")[0] == 404

    # Refusals: an unknown type, an unknown topic, a member not here.
    bad = [{"topic": "jobs", "partition": 0, "offset": 0, "type": "maybe"}]
    assert call(broker, "POST", f"{base}/{b}/acks", {"acks": bad})[0] == 400
    assert call(broker, "POST", base, {"topic": "no-such-topic"})[0] == 404
    assert call(broker, "POST", f"{base}/nobody/acks", {"acks": []})[0] == 404
    assert call(broker, "DELETE", f"{base}/{b}") == (204, None)


def test_share_group_offsets_naming_too_many_partitions_are_refused(broker):
    """DescribeShareGroupOffsets v0 by hand naming 10,001 partitions: each would cost a read
    of the share coordinator, so the group answers INVALID_REQUEST (42) without any."""
    count = 10_001
    create_topic(broker, "offsets-capped")
    topic = compact(b"offsets-capped") + _uvarint(count + 1) + struct.pack(">i", 0) * count \
        + b"\x00"
    body = _uvarint(2) + compact(b"capped") + _uvarint(2) + topic + b"\x00" + b"\x00"
    r = flexible_request(broker, 90, 0, body)
    assert r.count() == 1
    assert r.string() == "capped"
    assert r.count() == 0, "no topic answered"
    assert r.take(">h") == 42


def test_describe_shows_in_flight_records_delivery_counts_and_dead_letters(broker):
    """`sluice share-group describe` reads each share-partition's state from its share
    coordinator: records delivered and not yet done (in flight), archived ones past the start,
    the highest delivery count, a lag that leaves out what is done; and counts the dead letters
    on the group's dead-letter topic."""
    import json

    from test_cli import sluice

    topic, group, dlq = "queue-described", "described", "dlq.described"
    create_topic(broker, topic)
    create_topic(broker, dlq, config={"errors.deadletterqueue.group.enable": "true"})
    set_group_configs(broker, group, share_auto_offset_reset="earliest",
                      share_retry_backoff_ms=60000, share_retry_backoff_max_ms=60000,
                      errors_deadletterqueue_topic_name=dlq)
    produce_keyed(broker, topic, 10, partitions=1)
    kinds = {5: AcknowledgeType.RELEASE, 6: AcknowledgeType.RELEASE, 7: AcknowledgeType.REJECT}
    c = share_consumer(broker, group, **{"share.acknowledgement.mode": "explicit"})
    c.subscribe([topic])
    seen = set()
    try:
        def took():
            for m in records(c.poll(0.3)):
                seen.add(m.offset())
                c.acknowledge(m, kinds.get(m.offset(), AcknowledgeType.ACCEPT))
            c.commit_sync(30)
            return len(seen) == 10
        wait_until(took, timeout=30, what="ten records")
    finally:
        c.close()
    described = json.loads(sluice(broker, "share-group", "describe", group, "--topic", topic,
                                  "--format", "json").stdout)
    [row] = described["partitions"]
    assert row == {"topic": topic, "partition": 0, "start_offset": 5, "end_offset": 10,
                   "lag": 2, "in_flight": 2, "archived": 1, "max_delivery_count": 1}, row
    assert (described["dead_letter_topic"], described["dead_letters"]) == (dlq, 1), described
    text = sluice(broker, "share-group", "describe", group, "--topic", topic).stdout.decode()
    assert "IN-FLIGHT" in text and "dead letters  1 on dlq.described" in text, text
