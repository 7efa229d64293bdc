"""Client helpers shared by the black-box tests."""

import json
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name, partitions=1, config=None):
    client = admin(broker)  # must outlive the future, or librdkafka cancels it
    futures = client.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    futures[name].result(timeout=15)


def producer(broker, **conf):
    return Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, **conf})


def produce_all(p, topic, messages, **kwargs):
    """Produces (key, value) pairs and returns the delivery reports; raises on any error."""
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg))

    for key, value in messages:
        p.produce(topic, key=key, value=value, on_delivery=on_delivery, **kwargs)
        p.poll(0)
    remaining = p.flush(30)
    assert remaining == 0, f"{remaining} messages not delivered"
    errors = [err for err, _ in reports if err is not None]
    assert not errors, errors
    return [m for _, m in reports]


def consume_all(broker, topic, count, partitions=None, timeout=30, **conf):
    """Reads `count` messages from the start of `topic` (all partitions, or those given)."""
    c = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": "unused",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **conf,
    })
    try:
        if partitions is None:
            meta = c.list_topics(topic, timeout=10)
            partitions = list(meta.topics[topic].partitions)
        c.assign([TopicPartition(topic, p, 0) for p in partitions])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            out.append(msg)
        assert len(out) == count, f"read {len(out)} of {count} messages"
        return out
    finally:
        c.close()


def read_kafka_python(consumer, count):
    """The first `count` records a kafka-python consumer iterates (its `consumer_timeout_ms` is
    the deadline), then one short poll that must find nothing more: the test waits for what it
    expects, not for the timeout."""
    out = []
    for record in consumer:
        out.append(record)
        if len(out) == count:
            break
    extra = consumer.poll(timeout_ms=500)
    assert not any(extra.values()), f"more than {count} records: {extra}"
    return out


def run_driver(command, timeout):
    """Runs a client driver of tests/clients (one scenario, one JSON line out): asserts it
    succeeded and returns that line, parsed."""
    done = subprocess.run(command, capture_output=True, timeout=timeout)
    assert done.returncode == 0, done.stderr.decode()[-6000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def committed_total(broker, topic, group, partitions):
    """The sum of `group`'s committed offsets over `topic`'s partitions, as librdkafka reads it."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        offsets = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(o.offset, 0) for o in offsets)
    finally:
        c.close()


def produce_then_group_consume(broker, run, client, topic, group, n, dash="--"):
    """A driver's `client` writes n records to a 3-partition topic; librdkafka reads them all
    back; the client's own group consumer reads and commits them. `run(scenario, *flags)`
    drives it; `dash` is its flags' prefix."""
    create_topic(broker, topic, 3)
    produced = run(f"{client}-produce", f"{dash}topic", topic, f"{dash}n", str(n))
    assert produced == {"produced": n}
    expected = sorted(f"{client}-{i:06d}" for i in range(n))
    assert sorted(m.value().decode() for m in consume_all(broker, topic, n)) == expected
    got = run(f"{client}-consume", f"{dash}topic", topic, f"{dash}group", group, f"{dash}n", str(n))
    assert got["values"] == expected
    assert committed_total(broker, topic, group, 3) == n


def watermarks(broker, topic, partition):
    """(low, high) watermarks of `topic`-`partition`, as librdkafka reads them."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def wait_for_readyz(process, http_port, log_path, timeout=30):
    """Waits until `process` (a `sluice serve` started by the test) answers 200 on
    `/readyz`; fails at once, with its log, if it exits."""
    import urllib.request
    from conftest import wait_until

    def ready():
        assert process.poll() is None, log_path.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    wait_until(ready, timeout=timeout, what=f"/readyz on {http_port}")
