"""Apache Kafka's own Java client (kafka-clients 4.4) and Kafka Streams against the real binary,
driven through `tests/clients/java` (built by scripts/test.sh into target/javaclient). What the
Java clients write is read back by librdkafka, an independent client, and what they read was
written by it."""

import json
import re
import shutil
import struct
import subprocess
from collections import Counter

from confluent_kafka import Consumer, ConsumerGroupType, KafkaError, TopicPartition

from conftest import REPO, wait_until
from helpers import (admin, committed_total, consume_all, create_topic, produce_all, producer,
                     run_driver)

JAVACLIENT = REPO / "target" / "javaclient"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def java_command(broker, scenario, *args, timeout):
    assert (JAVACLIENT / "classes").exists(), f"{JAVACLIENT} not built; scripts/test.sh builds it"
    classpath = f"{JAVACLIENT / 'classes'}:{JAVACLIENT / 'dependency'}/*"
    return ["java", "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath,
            "sluice.clients.Main", scenario, "--brokers", broker.bootstrap, *args,
            "--timeout-ms", str((timeout - 10) * 1000)]


def javaclient(broker, scenario, *args, timeout=90):
    return run_driver(java_command(broker, scenario, *args, timeout=timeout), timeout)


def test_java_producer_every_codec_idempotent_read_back_by_librdkafka(broker):
    create_topic(broker, "java-codecs", 3)
    got = javaclient(broker, "produce", "--topic", "java-codecs", "--n", "200",
                     "--compression", ",".join(CODECS))
    assert got == {"produced": {codec: 200 for codec in CODECS}}
    values = sorted(m.value().decode() for m in consume_all(broker, "java-codecs", 1000))
    assert values == sorted(f"java-{c}-{i:06d}" for c in CODECS for i in range(200))


def test_java_consumer_by_assign_reads_what_librdkafka_wrote(broker):
    create_topic(broker, "java-assign", 2)
    sent = [(f"k{i}".encode(), f"rd-{i:06d}".encode()) for i in range(300)]
    produce_all(producer(broker), "java-assign", sent)
    got = javaclient(broker, "consume-assign", "--topic", "java-assign", "--n", "300")
    assert sorted(got["values"]) == [f"rd-{i:06d}" for i in range(300)]


def subscribe_reads_and_commits(broker, protocol):
    topic = f"java-sub-{protocol}"
    create_topic(broker, topic, 3)
    produce_all(producer(broker), topic, [(f"k{i}".encode(), f"v-{i:06d}".encode())
                                          for i in range(240)])
    got = javaclient(broker, "consume-subscribe", "--topic", topic, "--n", "240",
                     "--group", f"java-{protocol}", "--protocol", protocol)
    assert sorted(got["values"]) == [f"v-{i:06d}" for i in range(240)]
    assert committed_total(broker, topic, f"java-{protocol}", 3) == 240
    # The group is of the protocol the Java client was told to speak, as librdkafka lists it.
    client = admin(broker)  # must outlive the future
    listed = client.list_consumer_groups().result(timeout=10).valid
    kinds = {g.group_id: g.type for g in listed}
    assert kinds[f"java-{protocol}"] == {"classic": ConsumerGroupType.CLASSIC,
                                         "consumer": ConsumerGroupType.CONSUMER}[protocol]


def test_java_group_consumer_classic_protocol_reads_and_commits(broker):
    subscribe_reads_and_commits(broker, "classic")


def test_java_group_consumer_kip848_consumer_protocol_reads_and_commits(broker):
    subscribe_reads_and_commits(broker, "consumer")


def test_java_admin_client_creates_alters_lists_offsets_deletes_records_describes_groups(broker):
    got = javaclient(broker, "admin", "--topic", "java-admin", "--group", "java-admin-group")
    assert got == {
        "partitions": 3,
        "retention_ms": "123456",
        "retention_source": "DYNAMIC_TOPIC_CONFIG",
        "earliest": 0,
        "latest": 10,
        "max_timestamp_offset": got["max_timestamp_offset"],
        "low_watermark": 4,
        "earliest_after_delete": 4,
        "consumed": 6,
        "groups": ["java-admin-group"],
        "group_state": "EMPTY",
        "group_committed_p0": 10,
    }
    assert 0 <= got["max_timestamp_offset"] <= 9
    # librdkafka sees the records before offset 4 gone.
    tail = consume_all(broker, "java-admin", 6, partitions=[0])
    assert [m.offset() for m in tail] == list(range(4, 10))


def test_java_transactional_copy_is_exactly_once_across_a_broker_kill(broker):
    n = 3000
    create_topic(broker, "txn-in", 3)
    create_topic(broker, "txn-out", 3)
    produce_all(producer(broker), "txn-in", [(f"k{i}".encode(), f"in-{i:06d}".encode())
                                             for i in range(n)])
    copier = subprocess.Popen(
        java_command(broker, "txn-copy", "--input", "txn-in", "--output", "txn-out",
                     "--group", "java-copier", "--txn", "java-copier-1", "--n", str(n),
                     "--batch", "50", "--pace-ms", "20", timeout=150),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Kill the broker once the copier is well under way, and bring it back on the same data.
        wait_until(lambda: copier.poll() is not None or
                   committed_total(broker, "txn-in", "java-copier", 3) >= n // 5,
                   timeout=60, interval=0.1, what="the copier to commit a fifth of the input")
        assert copier.poll() is None, "the copier finished before the broker could be killed"
        before_kill = committed_total(broker, "txn-in", "java-copier", 3)
        assert before_kill < n
        broker.kill()
        broker.start()
        out, err = copier.communicate(timeout=140)
    finally:
        if copier.poll() is None:
            copier.kill()
    assert copier.returncode == 0, err.decode()[-6000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["copied"] == n
    assert committed_total(broker, "txn-in", "java-copier", 3) == n
    committed = consume_all(broker, "txn-out", n, timeout=60, **{"isolation.level": "read_committed"})
    copied = Counter(m.value().decode() for m in committed)
    assert sorted(copied) == [f"copied-in-{i:06d}" for i in range(n)]
    assert max(copied.values()) == 1, "a record was copied twice"


def test_kafka_streams_word_count_exactly_once_v2(broker, tmp_path):
    lines = [f"the quick brown fox {i % 7} jumps over the lazy dog number{i % 13}" for i in range(400)]
    expected = Counter(w for line in lines for w in re.split(r"\W+", line.lower()) if w)
    create_topic(broker, "wc-lines", 2)
    create_topic(broker, "wc-counts", 2)
    produce_all(producer(broker), "wc-lines", [(None, line.encode()) for line in lines])
    got = javaclient(broker, "wordcount", "--input", "wc-lines", "--output", "wc-counts",
                     "--app-id", "wordcount", "--state-dir", str(tmp_path / "streams"),
                     timeout=150)
    assert got["counts"] == dict(expected)
    # An independent read_committed reader sees the same final count for every word.
    latest = {}
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wc-check",
                  "isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        c.assign([TopicPartition("wc-counts", p, 0) for p in range(2)])
        at_end = set()
        wait_until(lambda: drain_counts(c, latest, at_end) == {0, 1}, timeout=30,
                   what="the end of both output partitions")
    finally:
        c.close()
    assert latest == dict(expected)


def drain_counts(consumer, latest, at_end):
    msg = consumer.poll(0.2)
    if msg is None:
        return at_end
    if msg.error():
        assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
        at_end.add(msg.partition())
        return at_end
    latest[msg.key().decode()] = struct.unpack(">q", msg.value())[0]
    return at_end


def test_kafka_streams_killed_midway_restores_its_counts_from_the_changelog(broker, tmp_path):
    """The word count, `kill -9`ed once some counts are out and started again with its state
    directory deleted: Streams restores its store from the changelog topic, and no count is
    published twice (each word's committed counts only rise) or lost (they end at the input's)."""
    lines = [f"alpha beta {i % 11} gamma{i % 5} delta{i % 17}" for i in range(3000)]
    expected = Counter(w for line in lines for w in re.split(r"\W+", line.lower()) if w)
    create_topic(broker, "wck-lines", 2)
    create_topic(broker, "wck-counts", 2)
    produce_all(producer(broker), "wck-lines", [(None, line.encode()) for line in lines])
    state = tmp_path / "streams"
    args = ["--input", "wck-lines", "--output", "wck-counts", "--app-id", "wordcount-killed",
            "--state-dir", str(state)]
    first = subprocess.Popen(java_command(broker, "wordcount", *args, timeout=150),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: first.poll() is None and
                   len(committed_counts(broker, "wck-counts")) >= 5, timeout=120,
                   interval=0.5, what="the first counts")
    finally:
        first.kill()
        first.wait(timeout=10)
    shutil.rmtree(state, ignore_errors=True)
    got = javaclient(broker, "wordcount", *args, timeout=150)
    assert got["counts"] == dict(expected)
    for word, counts in committed_count_histories(broker, "wck-counts").items():
        assert counts == sorted(set(counts)), f"{word}'s counts went back or repeated: {counts}"
        assert counts[-1] == expected[word]


def committed_count_histories(broker, topic):
    """Every word's counts as `topic` holds them, read_committed, in order."""
    histories = {}
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wck-check",
                  "isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(2)])
        at_end = set()
        while len(at_end) < 2:
            msg = c.poll(5.0)
            assert msg is not None, f"{topic} ended early"
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                at_end.add(msg.partition())
                continue
            histories.setdefault(msg.key().decode(), []).append(
                struct.unpack(">q", msg.value())[0])
    finally:
        c.close()
    return histories


def committed_counts(broker, topic):
    try:
        return committed_count_histories(broker, topic)
    except AssertionError:
        return {}


def test_java_share_consumer_acknowledges_explicitly_and_the_admin_sees_the_group(broker):
    """Kafka's own KafkaShareConsumer (KIP-932) reads a queue written by librdkafka: every
    tenth record released at its first delivery comes back with delivery count 2, the rest are
    accepted once; Kafka's admin client lists the share group, describes it and lists its start
    offsets, which are past everything accepted."""
    n = 300
    create_topic(broker, "java-queue", 3)
    produce_all(producer(broker), "java-queue", [(f"k{i}".encode(), f"q-{i:06d}".encode())
                                                 for i in range(n)])
    ends = {p: 0 for p in range(3)}
    for m in consume_all(broker, "java-queue", n):
        ends[m.partition()] = max(ends[m.partition()], m.offset() + 1)
    got = javaclient(broker, "share-consume", "--topic", "java-queue", "--group", "java-share",
                     "--n", str(n), timeout=120)
    assert got["values"] == sorted(f"q-{i:06d}" for i in range(n)), "each record accepted once"
    released = sum((end + 9) // 10 for end in ends.values())
    assert got["released"] == released and got["redelivered"] == released, got
    assert got["listed"] is True and got["group_state"] == "Empty", got
    assert got["start_offsets"] == {str(p): end for p, end in ends.items()}, got
