"""Client helpers shared by the black-box tests."""

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
