"""kafka-python (pure Python, its own protocol code) against the real broker."""

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic


def consume(broker, topic, partitions, count):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=15000)
    c.assign([TopicPartition(topic, p) for p in partitions])
    c.seek_to_beginning()
    out = []
    for m in c:
        out.append(m)
        if len(out) == count:
            break
    c.close()
    assert len(out) == count, f"read {len(out)} of {count}"
    return out


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_produce_and_consume(broker, codec):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    topic = f"kp-{codec}"
    admin.create_topics([NewTopic(topic, 2, 1)])
    # kafka-python's default: idempotent (InitProducerId, sequence numbers on every batch).
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, acks="all")
    for i in range(100):
        headers = [("dup", b"a"), ("dup", b"b")] if i % 2 else []
        p.send(topic, key=f"k{i}".encode(), value=None if i == 5 else f"v{i}".encode(),
               headers=headers, partition=i % 2, timestamp_ms=1_600_000_000_000 + i)
    p.flush(30)
    p.close()
    got = consume(broker, topic, [0, 1], 100)
    by_key = {m.key: m for m in got}
    assert by_key[b"k5"].value is None
    assert by_key[b"k7"].headers == [("dup", b"a"), ("dup", b"b")]
    assert by_key[b"k8"].timestamp == 1_600_000_000_008
    assert sorted(m.offset for m in got if m.partition == 0) == list(range(50))
    admin.close()


def test_admin_configs_and_partitions(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("cfg", 1, 1, topic_configs={"retention.ms": "-1"})])
    res = ConfigResource(ConfigResourceType.TOPIC, "cfg")
    entries = admin.describe_configs([res], config_filter="all")["topic"]["cfg"]
    assert entries["retention.ms"]["value"] == "-1"
    assert entries["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert entries["cleanup.policy"]["value"] == "delete"
    assert entries["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg", configs={"retention.bytes": "1048576"})])
    entries = admin.describe_configs([res], config_filter="all")["topic"]["cfg"]
    assert entries["retention.bytes"]["value"] == "1048576"
    admin.create_partitions({"cfg": NewPartitions(4)})
    assert len(admin.describe_topics(["cfg"])[0]["partitions"]) == 4
    admin.delete_topics(["cfg"])
    assert "cfg" not in admin.list_topics()
    admin.close()
