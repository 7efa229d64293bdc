"""librdkafka (confluent-kafka) against the real broker: records of every shape come back
byte for byte, with every compression codec, across partitions."""

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME

from helpers import consume_all, create_topic, produce_all, producer


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_records_round_trip_with_every_codec(broker, codec):
    topic = f"codec-{codec}"
    create_topic(broker, topic, partitions=3)
    p = producer(broker, **{"compression.type": codec, "batch.num.messages": 50})
    sent = []
    for i in range(300):
        key = None if i % 10 == 0 else f"key-{i}".encode()
        value = None if i % 7 == 0 else (f"value-{i}-" * (i % 5 + 1)).encode()
        headers = [("h", b"first"), ("h", b"second"), ("n", None)] if i % 3 == 0 else None
        ts = 1_700_000_000_000 + i
        p.produce(topic, key=key, value=value, headers=headers, timestamp=ts, partition=i % 3)
        sent.append((i % 3, key, value, headers, ts))
    assert p.flush(30) == 0
    got = consume_all(broker, topic, len(sent))
    by_partition = {}
    for m in got:
        by_partition.setdefault(m.partition(), []).append(m)
    for part, msgs in by_partition.items():
        assert [m.offset() for m in msgs] == list(range(len(msgs))), "offsets are dense and ordered"
        expected = [s for s in sent if s[0] == part]
        assert len(msgs) == len(expected)
        for m, (_, key, value, headers, ts) in zip(msgs, expected):
            assert m.key() == key
            assert m.value() == value
            assert m.timestamp() == (TIMESTAMP_CREATE_TIME, ts)
            if headers is None:
                assert m.headers() is None
            else:
                assert m.headers() == headers, "duplicate header keys and null values survive"


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_every_acks_mode_delivers(broker, acks):
    create_topic(broker, f"acks-{acks}")
    p = producer(broker, acks=acks)
    produce_all(p, f"acks-{acks}", [(None, f"m{i}".encode()) for i in range(200)])
    got = consume_all(broker, f"acks-{acks}", 200)
    assert [m.value() for m in got] == [f"m{i}".encode() for i in range(200)]


def test_delivery_reports_carry_offsets(broker):
    create_topic(broker, "offsets", partitions=2)
    reports = produce_all(producer(broker, acks="all"), "offsets", [(b"k", b"v")] * 10)
    offsets = sorted(m.offset() for m in reports)
    assert offsets == list(range(10)), "one key goes to one partition, offsets 0..9"


def test_auto_create_on_metadata_request(broker):
    reports = produce_all(producer(broker), "created-by-metadata", [(None, b"x")])
    assert reports[0].offset() == 0
    assert consume_all(broker, "created-by-metadata", 1)[0].value() == b"x"


def test_large_record_near_the_batch_limit(broker):
    create_topic(broker, "large")
    big = bytes(range(256)) * 3500  # 896000 bytes
    produce_all(producer(broker, **{"message.max.bytes": 1_000_000}), "large", [(b"k", big)])
    assert consume_all(broker, "large", 1)[0].value() == big


def test_oversized_batch_is_refused_with_message_too_large(broker):
    create_topic(broker, "small", config={"max.message.bytes": "1000"})
    p = producer(broker, **{"compression.type": "none"})
    errors = []
    p.produce("small", value=b"x" * 5000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].name() == "MSG_SIZE_TOO_LARGE"
