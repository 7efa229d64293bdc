"""Admin APIs through librdkafka's admin client: topics, configs, partitions, offsets."""

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, OffsetSpec)

from conftest import wait_until
from helpers import admin, consume_all, create_topic, produce_all, producer


def test_create_validate_describe_and_delete_topics(broker):
    a = admin(broker)
    fs = a.create_topics([NewTopic("v-only", 3, 1)], validate_only=True)
    fs["v-only"].result(10)
    assert "v-only" not in a.list_topics(timeout=10).topics
    create_topic(broker, "orders", 3, {"retention.ms": "3600000"})
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic("orders", 1, 1)])["orders"].result(10)
    assert e.value.args[0].name() == "TOPIC_ALREADY_EXISTS"
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic("bad/name", 1, 1)])["bad/name"].result(10)
    assert e.value.args[0].code() == 17  # INVALID_TOPIC_EXCEPTION
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic("rf3", 1, 3)])["rf3"].result(10)
    assert e.value.args[0].name() == "INVALID_REPLICATION_FACTOR"
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic("badcfg", 1, 1, config={"retention.ms": "soon"})])["badcfg"].result(10)
    assert e.value.args[0].name() == "INVALID_CONFIG"
    md = a.list_topics(timeout=10)
    assert len(md.topics["orders"].partitions) == 3
    a.delete_topics(["orders"])["orders"].result(10)
    assert "orders" not in a.list_topics(timeout=10).topics


def test_incremental_alter_and_describe_configs(broker):
    create_topic(broker, "cfg")
    a = admin(broker)
    res = ConfigResource("topic", "cfg", incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
    ])
    a.incremental_alter_configs([res])[res].result(10)
    got = a.describe_configs([ConfigResource("topic", "cfg")])
    configs = list(got.values())[0].result(10)
    assert configs["retention.ms"].value == "1000"
    assert configs["segment.bytes"].value == "1048576"
    assert configs["retention.bytes"].value == "-1"
    assert configs["retention.bytes"].is_default
    bad = ConfigResource("topic", "cfg", incremental_configs=[
        ConfigEntry("no.such.key", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([bad])[bad].result(10)
    assert e.value.args[0].name() == "INVALID_CONFIG"
    broker_res = ConfigResource("broker", "1")
    broker_configs = list(a.describe_configs([broker_res]).values())[0].result(10)
    assert broker_configs["auto.create.topics.enable"].value == "true"


def test_create_partitions_and_describe_cluster(broker):
    create_topic(broker, "grow", 2)
    a = admin(broker)
    a.create_partitions([NewPartitions("grow", 5)])["grow"].result(10)
    assert len(a.list_topics(timeout=10).topics["grow"].partitions) == 5
    with pytest.raises(KafkaException):
        a.create_partitions([NewPartitions("grow", 3)])["grow"].result(10)
    cluster = a.describe_cluster().result(10)
    assert [n.id for n in cluster.nodes] == [1]
    assert cluster.controller.id == 1
    assert cluster.cluster_id


def test_node_id_names_the_node_in_metadata_coordinators_and_describe_cluster(start_broker):
    b = start_broker({"SLUICE_NODE_ID": "7"})
    create_topic(b, "named", 2)
    a = admin(b)
    meta = a.list_topics(timeout=10)
    assert list(meta.brokers) == [7]
    assert {p.leader for p in meta.topics["named"].partitions.values()} == {7}
    cluster = a.describe_cluster().result(10)
    assert [n.id for n in cluster.nodes] == [7] and cluster.controller.id == 7
    # FindCoordinator names it, and a group member commits through it.
    produce_all(producer(b), "named", [(b"k", b"v")])
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g7",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe(["named"])
        msg = wait_until(lambda: c.poll(0.2), timeout=30, interval=0, what="the record")
        assert msg.error() is None
        c.commit(msg, asynchronous=False)
        committed = c.committed([TopicPartition("named", msg.partition())], timeout=10)
        assert committed[0].offset == msg.offset() + 1
    finally:
        c.close()


def test_list_offsets_earliest_latest_and_by_timestamp(broker):
    create_topic(broker, "times")
    p = producer(broker)
    for i in range(100):
        p.produce("times", value=b"x", timestamp=1_000_000 + i * 10)
    assert p.flush(30) == 0
    a = admin(broker)
    tp = TopicPartition("times", 0)

    def lookup(spec):
        return a.list_offsets({tp: spec})[tp].result(10).offset

    assert lookup(OffsetSpec.earliest()) == 0
    assert lookup(OffsetSpec.latest()) == 100
    assert lookup(OffsetSpec.for_timestamp(1_000_000 + 425)) == 43
    assert lookup(OffsetSpec.for_timestamp(0)) == 0
    assert lookup(OffsetSpec.for_timestamp(9_999_999)) == -1
    assert lookup(OffsetSpec.max_timestamp()) == 99


def test_delete_records_moves_the_start_offset(broker):
    create_topic(broker, "trim")
    produce_all(producer(broker), "trim", [(None, f"{i}".encode()) for i in range(50)])
    a = admin(broker)
    result = a.delete_records([TopicPartition("trim", 0, 30)])
    low = list(result.values())[0].result(10)
    assert low.low_watermark == 30
    tp = TopicPartition("trim", 0)
    assert a.list_offsets({tp: OffsetSpec.earliest()})[tp].result(10).offset == 30
    got = consume_all(broker, "trim", 20, **{"auto.offset.reset": "earliest"})
    assert got[0].offset() == 30 or got[0].value() == b"30"


def produce_outcome(broker, topic, acks):
    """The delivery error name of one record sent with `acks` and no retries (None: written)."""
    p = producer(broker, acks=acks, retries=0, **{"enable.idempotence": False,
                                                  "message.timeout.ms": 10000})
    outcome = []
    p.produce(topic, value=b"v", on_delivery=lambda err, msg: outcome.append(err))
    assert p.flush(15) == 0
    return outcome[0].name() if outcome[0] is not None else None


def test_acks_all_needs_min_insync_replicas(broker):
    """A topic asking for more in-sync replicas than it has refuses `acks=all` batches before
    writing them (NOT_ENOUGH_REPLICAS, as Kafka does) and takes `acks=1`; lowering the setting
    lets `acks=all` through. A value below 1 is refused."""
    create_topic(broker, "misr", config={"min.insync.replicas": "2"})
    assert produce_outcome(broker, "misr", "all") == "NOT_ENOUGH_REPLICAS"
    assert produce_outcome(broker, "misr", "1") is None
    a = admin(broker)
    res = ConfigResource("topic", "misr", incremental_configs=[
        ConfigEntry("min.insync.replicas", "1", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(10)
    assert produce_outcome(broker, "misr", "all") is None
    assert len(consume_all(broker, "misr", 2)) == 2
    with pytest.raises(KafkaException) as e:
        create_topic(broker, "misr-zero", config={"min.insync.replicas": "0"})
    assert e.value.args[0].name() == "INVALID_CONFIG"


def test_the_brokers_min_insync_replicas_is_every_topics_default(start_broker):
    broker = start_broker(extra_env={"SLUICE_MIN_INSYNC_REPLICAS": "2"})
    create_topic(broker, "strict")
    create_topic(broker, "lenient", config={"min.insync.replicas": "1"})
    a = admin(broker)
    got = list(a.describe_configs([ConfigResource("topic", "strict")]).values())[0].result(10)
    assert got["min.insync.replicas"].value == "2"
    assert ConfigSource(got["min.insync.replicas"].source) == ConfigSource.STATIC_BROKER_CONFIG
    broker_res = ConfigResource("broker", "1")
    broker_configs = list(a.describe_configs([broker_res]).values())[0].result(10)
    assert broker_configs["min.insync.replicas"].value == "2"
    assert produce_outcome(broker, "strict", "all") == "NOT_ENOUGH_REPLICAS"
    assert produce_outcome(broker, "lenient", "all") is None
