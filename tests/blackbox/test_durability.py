"""Restarts and crashes of the real binary: clean SIGTERM, and kill -9 during an acks=all
stream, after which every acknowledged record must be read back."""

import re
import threading
import time

from confluent_kafka import Producer

from conftest import wait_until
from helpers import consume_all, create_topic, produce_all, producer


def test_clean_restart_keeps_topics_configs_and_records(broker):
    create_topic(broker, "keep", 2, {"retention.ms": "-1"})
    produce_all(producer(broker), "keep", [(f"k{i}".encode(), f"v{i}".encode()) for i in range(500)])
    first_start = broker.log()
    assert "new data directory" in first_start and "unclean" not in first_start
    assert broker.stop() == 0, "SIGTERM exits 0"
    assert (broker.data_dir / ".clean-shutdown").exists()
    broker.start()
    assert "data directory loaded after a clean shutdown" in broker.log()
    got = consume_all(broker, "keep", 500)
    assert sorted(m.value() for m in got) == sorted(f"v{i}".encode() for i in range(500))
    produce_all(producer(broker), "keep", [(b"after", b"restart")])
    assert len(consume_all(broker, "keep", 501)) == 501


def test_kill_9_during_acks_all_stream_loses_no_acknowledged_record(broker):
    create_topic(broker, "crash", 4)
    acked = []
    lock = threading.Lock()
    stop = threading.Event()

    def on_delivery(err, msg):
        if err is None:
            with lock:
                acked.append(msg.value())

    def stream():
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 1,
                      "message.timeout.ms": 5000, "retries": 0})
        i = 0
        while not stop.is_set() and i < 2_000_000:
            try:
                p.produce("crash", value=f"rec-{i}".encode(), on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.0005)
        p.flush(10)

    t = threading.Thread(target=stream)
    t.start()
    wait_until(lambda: len(acked) >= 20_000, timeout=60, what="20000 acknowledged records")
    broker.kill()
    stop.set()
    t.join(timeout=30)
    assert not t.is_alive()
    with lock:
        acknowledged = set(acked)
    assert len(acknowledged) >= 20_000
    broker.start()
    # Read everything that survived; every acknowledged record must be among it.
    from confluent_kafka.admin import AdminClient
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    total = 0
    for part in range(4):
        tp = TopicPartition("crash", part)
        total += a.list_offsets({tp: OffsetSpec.latest()})[tp].result(10).offset
    assert total >= len(acknowledged)
    survived = {m.value() for m in consume_all(broker, "crash", total, timeout=120)}
    missing = acknowledged - survived
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    # The start says what recovery checked and how long it took.
    log = broker.log()
    assert "data directory recovered after an unclean shutdown" in log, log[-3000:]
    checked = re.search(r"segments_checked=(\d+) bytes_checked=(\d+) took_ms=(\d+)", log)
    assert checked and int(checked[1]) >= 1 and int(checked[2]) > 0, log[-3000:]


def test_records_produced_after_crash_recovery_continue_the_offsets(broker):
    create_topic(broker, "cont")
    produce_all(producer(broker, acks="all"), "cont", [(None, f"a{i}".encode()) for i in range(100)])
    broker.kill()
    broker.start()
    reports = produce_all(producer(broker, acks="all"), "cont", [(None, b"next")])
    assert reports[0].offset() == 100
    assert [m.value() for m in consume_all(broker, "cont", 101)][-1] == b"next"


def test_sigterm_answers_in_flight_requests_and_exits_zero(broker):
    create_topic(broker, "drain")
    p = producer(broker, acks="all", **{"linger.ms": 0})
    for i in range(1000):
        p.produce("drain", value=b"x")
    p.flush(30)
    start = time.monotonic()
    assert broker.stop() == 0
    assert time.monotonic() - start < 15
    assert "shutdown complete" in broker.log()
