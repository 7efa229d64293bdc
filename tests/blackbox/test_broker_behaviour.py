"""Broker behaviour seen from clients: long-poll wake-ups, retention, settings, errors."""

import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec

from conftest import Broker, free_port, wait_until
from helpers import admin, consume_all, create_topic, produce_all, producer


def test_a_parked_fetch_is_answered_as_soon_as_data_arrives(broker):
    create_topic(broker, "wake")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                  "fetch.wait.max.ms": 5000, "enable.auto.commit": False})
    c.assign([TopicPartition("wake", 0, 0)])
    assert c.poll(1.0) is None  # the consumer is now parked in a 5 s fetch
    p = producer(broker, **{"linger.ms": 0})
    sent = time.monotonic()
    produce_all(p, "wake", [(None, b"now")])
    msg = None
    while msg is None and time.monotonic() - sent < 10:
        msg = c.poll(0.05)
    waited = time.monotonic() - sent
    c.close()
    assert msg is not None and msg.value() == b"now"
    assert waited < 2.0, f"fetch answered after {waited:.2f}s: woken late, not by the append"


def test_produce_to_a_missing_partition_is_unknown_topic_or_partition(broker):
    create_topic(broker, "two", 2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 3000})
    errors = []
    p.produce("two", value=b"x", partition=7, on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError._UNKNOWN_PARTITION


def test_retention_deletes_old_segments_in_the_background(start_broker):
    b = start_broker({"SLUICE_LOG_RETENTION_CHECK_INTERVAL_MS": "200"})
    create_topic(b, "short", 1, {"segment.bytes": "4096", "retention.bytes": "8192"})
    small_batches = producer(b, **{"batch.num.messages": 5, "linger.ms": 0})
    produce_all(small_batches, "short", [(None, b"r" * 200) for _ in range(400)])
    a = admin(b)
    tp = TopicPartition("short", 0)

    def start_offset():
        return a.list_offsets({tp: OffsetSpec.earliest()})[tp].result(10).offset

    def retained():
        # A pass that ran while the records still arrived moved the start already; the
        # next one (every 200 ms) deletes what arrived after it.
        segments = list((b.data_dir / "topics" / "short" / "0").glob("*.log"))
        return segments if 2 <= len(segments) <= 5 else None

    wait_until(retained, what="retention to delete the old segments")
    start = start_offset()
    assert start > 0
    assert a.list_offsets({tp: OffsetSpec.latest()})[tp].result(10).offset == 400
    got = consume_all(b, "short", 400 - start)
    assert got[0].offset() == start


def test_settings_come_from_file_environment_and_flags_in_that_order(tmp_path):
    config = tmp_path / "sluice.toml"
    config.write_text("num_partitions = 3\nauto_create_topics_enable = true\n")
    port = free_port()
    b = Broker(tmp_path / "data", port, extra_args=["--config", str(config)]).start()
    try:
        produce_all(producer(b), "from-file", [(None, b"x")])
        assert len(admin(b).list_topics(timeout=10).topics["from-file"].partitions) == 3
    finally:
        b.stop()
    b = Broker(tmp_path / "data", port, extra_args=["--config", str(config)],
               extra_env={"SLUICE_NUM_PARTITIONS": "5"}).start()
    try:
        produce_all(producer(b), "from-env", [(None, b"x")])
        assert len(admin(b).list_topics(timeout=10).topics["from-env"].partitions) == 5
    finally:
        b.stop()


def test_bad_settings_fail_at_startup_with_a_clear_message(tmp_path):
    from conftest import SLUICE_BIN
    out = subprocess.run([str(SLUICE_BIN), "serve", "--listen", "not-an-address"],
                         capture_output=True, timeout=30, cwd=tmp_path)
    assert out.returncode != 0
    assert b"--listen not-an-address" in out.stderr
    out = subprocess.run([str(SLUICE_BIN), "serve", "--config", str(tmp_path / "missing.toml")],
                         capture_output=True, timeout=30, cwd=tmp_path)
    assert out.returncode != 0
    assert b"does not exist" in out.stderr


def test_a_misspelled_setting_stops_the_start_with_the_setting_meant(tmp_path):
    import os
    from conftest import SLUICE_BIN
    config = tmp_path / "sluice.toml"
    config.write_text("num_partition = 3\n")
    serve = [str(SLUICE_BIN), "serve", "--data-dir", str(tmp_path / "data"),
             "--listen", f"127.0.0.1:{free_port()}", "--http-listen", "off"]
    out = subprocess.run(serve + ["--config", str(config)], capture_output=True, timeout=30,
                         cwd=tmp_path)
    assert out.returncode != 0
    assert b"unknown setting num_partition; did you mean num_partitions?" in out.stderr, out.stderr
    env = dict(os.environ, SLUICE_MIN_INSYNC_REPLICA="2")
    out = subprocess.run(serve, capture_output=True, timeout=30, cwd=tmp_path, env=env)
    assert out.returncode != 0
    assert (b"unknown setting SLUICE_MIN_INSYNC_REPLICA; did you mean SLUICE_MIN_INSYNC_REPLICAS?"
            in out.stderr), out.stderr
    assert not (tmp_path / "data").exists(), "refused before anything was written"


def test_a_second_broker_on_the_same_data_directory_is_refused(broker):
    from conftest import SLUICE_BIN
    out = subprocess.run([str(SLUICE_BIN), "serve", "--data-dir", str(broker.data_dir),
                          "--listen", f"127.0.0.1:{free_port()}"], capture_output=True, timeout=30)
    assert out.returncode != 0
    assert b"locked" in out.stderr
    assert broker.alive()


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], check=True)
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_fails_produces_and_corrupts_nothing(small_disk):
    b = Broker(small_disk / "data", free_port()).start()
    try:
        create_topic(b, "fill")
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0,
                      "message.timeout.ms": 3000, "retries": 0})
        acked, failed = [], []

        def on_delivery(err, msg):
            (failed if err else acked).append(err or msg.value())

        for i in range(80):  # 80 x 64 KiB = 5 MiB, more than the 3 MiB disk
            p.produce("fill", value=(b"%06d" % i) * 10923, on_delivery=on_delivery)
            p.flush(10)
        assert acked, "some records fit"
        assert failed, "the disk filled up"
        assert all(e.code() == KafkaError.KAFKA_STORAGE_ERROR for e in failed), failed[:3]
        assert b.alive()
        b.kill()
        b.start()
        got = consume_all(b, "fill", len(acked))
        assert [m.value() for m in got] == acked, "every acknowledged record reads back intact"
    finally:
        if b.proc is not None:
            b.proc.kill()
