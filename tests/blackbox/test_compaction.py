"""Log compaction against the real binary: the last value per key survives at its original
offset, tombstoned keys disappear after delete.retention.ms, records without a key are
refused."""

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from conftest import wait_until
from helpers import create_topic

import pytest

COMPACTED = {
    "cleanup.policy": "compact",
    "segment.bytes": "2048",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1000",
}


# A cleaner that runs often, and recovery points checkpointed often (compaction stays below
# the checkpointed recovery point).
FAST_CLEANER = {
    "SLUICE_LOG_CLEANER_BACKOFF_MS": "200",
    "SLUICE_LOG_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS": "200",
}


@pytest.fixture
def cleaning_broker(start_broker):
    return start_broker(FAST_CLEANER)


def produce(broker, topic, records):
    """Produces (key, value) pairs one batch each; returns {index: offset}."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "acks": "all",
                  "batch.num.messages": 1})  # one batch per record, so segments roll
    delivered = []
    for key, value in records:
        p.produce(topic, key=key, value=value,
                  on_delivery=lambda err, msg: delivered.append((err, msg.key(), msg.offset())))
        p.poll(0)
    assert p.flush(30) == 0
    assert all(err is None for err, _, _ in delivered), delivered
    return [(k, o) for _, k, o in delivered]


def read_all(broker, topic):
    """Every record from the start: [(offset, key, value)]."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                break
            raise KafkaException(m.error())
        out.append((m.offset(), m.key(), m.value()))
    c.close()
    return out


def test_compaction_keeps_the_last_value_per_key_at_its_original_offset(cleaning_broker):
    b = cleaning_broker
    create_topic(b, "profiles", config=COMPACTED)
    writes = [(f"user-{i % 10}".encode(), f"v{round_}".encode())
              for round_ in range(20) for i in range(10)]
    writes.append((b"user-3", None))  # tombstone
    # Unique keys after them, so every write above ends up in closed segments.
    writes += [(f"filler-{i}".encode(), b"x" * 50) for i in range(60)]
    delivered = produce(b, "profiles", writes)
    last_offset = {}
    for key, offset in delivered:
        last_offset[key] = offset

    def compacted_view():
        records = read_all(b, "profiles")
        users = [(o, k, v) for o, k, v in records if k.startswith(b"user-")]
        return records, users

    def done():
        records, users = compacted_view()
        keys = [k for _, k, _ in users]
        return len(keys) == len(set(keys)) and b"user-3" not in keys and (records, users)

    records, users = wait_until(done, timeout=30, interval=0.3, what="compaction and the tombstone's expiry")
    assert sorted(k for _, k, _ in users) == [f"user-{i}".encode() for i in range(10) if i != 3]
    for offset, key, value in users:
        assert value == b"v19", (key, value)
        assert offset == last_offset[key], "offsets read after compaction are the original ones"
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and len(records) < len(writes) // 2
    assert "compacted" in b.log()


def test_a_compacted_topic_refuses_records_without_a_key(cleaning_broker):
    b = cleaning_broker
    create_topic(b, "keyed", config={"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": b.bootstrap})
    errors = []
    p.produce("keyed", value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert errors and errors[0] is not None and errors[0].code() == 87, errors  # INVALID_RECORD


def test_consumer_offsets_is_compacted_and_commits_survive_it_and_a_restart(start_broker):
    b = start_broker({
        **FAST_CLEANER,
        "SLUICE_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "SLUICE_OFFSETS_TOPIC_SEGMENT_BYTES": "4096",
    })
    create_topic(b, "work", partitions=2)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "committer",
                  "enable.auto.commit": False})
    for i in range(1, 301):
        c.commit(offsets=[TopicPartition("work", 0, i), TopicPartition("work", 1, 2 * i)],
                 asynchronous=False)
    c.close()
    b.wait_for_log('compacted topic="__consumer_offsets"', timeout=30)
    b.stop()
    b.start()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "committer"})
    got = c.committed([TopicPartition("work", 0), TopicPartition("work", 1)], timeout=15)
    assert [tp.offset for tp in got] == [300, 600]
    c.close()
