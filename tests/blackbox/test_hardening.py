"""Hardening against one hostile client: batches whose records lie, connections that squat or
trickle, frames that stall half-sent. Each test fails on a broker without the defence."""

import os
import socket
import struct
import threading
import time
import urllib.request
import zlib

from confluent_kafka import Consumer, TopicPartition

from conftest import wait_until
from helpers import consume_all, create_topic, produce_all, producer
from rawwire import (batch, closed_by_peer, gzip_batch, produce, raw, read_frame, record, request,
                     varint)

CORRUPT_MESSAGE = 2


def end_offset(broker, topic):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def still_serving(broker, topic):
    alive = f"{topic}-alive"
    create_topic(broker, alive)
    produce_all(producer(broker), alive, [(None, b"fine")])
    got = consume_all(broker, alive, 1)
    assert [m.value() for m in got] == [b"fine"]


def test_batches_whose_records_lie_are_refused_and_never_stored(broker):
    create_topic(broker, "lies")
    one = record(b"v")
    lies = {
        "gzip attribute on a body that is not gzip": batch(one, 1, attributes=1),
        "key length 2^30": batch(record(b"v", key=b"k", key_length=1 << 30), 1),
        "header count 2^30": batch(record(b"v", headers=1 << 30), 1),
        "gzip batch claiming 2^31-1 records holding one": gzip_batch(one, 0x7FFFFFFF),
        "gzip key length 2^30": gzip_batch(record(b"v", key=b"k", key_length=1 << 30), 1),
        "offset delta 7 in a one-record batch": batch(record(b"v", offset_delta=7), 1),
    }
    s = raw(broker)
    for i, (what, bad) in enumerate(lies.items()):
        assert produce(s, "lies", bad, correlation_id=i) == CORRUPT_MESSAGE, what
    assert end_offset(broker, "lies") == 0, "a refused batch moved the log end"
    assert produce(s, "lies", gzip_batch(one, 1), correlation_id=99) == 0
    assert end_offset(broker, "lies") == 1
    still_serving(broker, "lies")


def test_a_compression_bomb_is_refused_without_inflating_it(broker):
    # One record whose value claims 2^31 bytes, followed by a gigabyte of zeros, gzipped to
    # about a megabyte: refused at the decompression cap, with memory to spare.
    create_topic(broker, "bomb")
    head = varint_record_head(2**31 - 64)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = compressor.compress(head)
    zeros = b"\x00" * (1 << 20)
    for _ in range(1024):
        body += compressor.compress(zeros)
    body += compressor.flush()
    assert len(body) < 2 << 20
    s = raw(broker, timeout=30)
    before = peak_rss_mib(broker)
    assert produce(s, "bomb", batch(body, 1, attributes=1)) == CORRUPT_MESSAGE
    assert peak_rss_mib(broker) - before < 64, "the bomb was inflated into memory"
    still_serving(broker, "bomb")


def varint_record_head(value_length):
    fields = b"\x00" + varint(0) + varint(0) + varint(-1) + varint(value_length)
    return varint(value_length + len(fields)) + fields


def peak_rss_mib(broker):
    for line in open(f"/proc/{broker.proc.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_an_idle_connection_is_closed_and_a_long_poll_is_not_idleness(start_broker):
    broker = start_broker({"SLUICE_CONNECTIONS_MAX_IDLE_MS": "700"})
    squatter = raw(broker)
    started = time.monotonic()
    assert closed_by_peer(squatter)
    assert time.monotonic() - started < 4
    # A client that keeps sending requests is not idle, however long it stays.
    busy = raw(broker)
    for i in range(8):
        busy.sendall(request(18, 0, i))
        read_frame(busy)
        time.sleep(0.2)
    metrics = metrics_text(broker)
    assert 'sluice_connections_closed_total{reason="idle"}' in metrics, metrics


def test_a_trickled_frame_is_dropped_after_request_timeout(start_broker):
    broker = start_broker({"SLUICE_REQUEST_TIMEOUT_MS": "1000"})
    s = raw(broker, timeout=10)
    frame = request(18, 0, 1)
    started = time.monotonic()
    closed = False
    for byte in frame:
        try:
            s.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.3)  # one byte every 300 ms: the frame would take seconds
    assert closed or closed_by_peer(s)
    assert time.monotonic() - started < 5


def served_connection(broker, correlation_id=1):
    """A connection the broker answers on, or None if it refused it."""
    s = raw(broker)
    try:
        s.sendall(request(18, 0, correlation_id))
        if read_frame(s)[:4] == struct.pack(">i", correlation_id):
            return s
    except (AssertionError, OSError):
        pass
    s.close()
    return None


def test_connections_per_address_are_capped(start_broker):
    broker = start_broker({"SLUICE_MAX_CONNECTIONS_PER_IP": "3"})
    # The fixture's readiness probes may still hold a place for a moment.
    held = [wait_until(lambda: served_connection(broker), what="a connection")
            for _ in range(3)]
    extra = raw(broker)
    assert closed_by_peer(extra), "a fourth connection from the same address was served"
    held.pop().close()
    wait_until(lambda: served_connection(broker, 2), what="a place freed by a closed connection")


def test_an_override_raises_one_address_limit(start_broker):
    broker = start_broker({"SLUICE_MAX_CONNECTIONS_PER_IP": "1",
                           "SLUICE_MAX_CONNECTIONS_PER_IP_OVERRIDES": "127.0.0.1:4"})
    held = [wait_until(lambda: served_connection(broker), what="a connection") for _ in range(4)]
    assert len(held) == 4


def test_half_sent_frames_share_one_budget_and_time_out(start_broker):
    # Eight connections each announce a 100 MiB frame and send 48 MiB of it. Without a shared
    # budget the broker holds all 384 MiB; with it, only the frames that fit the budget are
    # read, and all are dropped at request_timeout_ms.
    broker = start_broker({"SLUICE_REQUEST_TIMEOUT_MS": "4000"})
    chunk = b"\x00" * (1 << 20)
    done = []

    def stall():
        s = raw(broker, timeout=8)
        try:
            s.sendall(struct.pack(">i", 100 << 20))
            for _ in range(48):
                s.sendall(chunk)
        except OSError:
            pass
        done.append(s)

    threads = [threading.Thread(target=stall) for _ in range(8)]
    begun = time.monotonic()
    for t in threads:
        t.start()
    wait_until(lambda: peak_rss_mib(broker) > 100, what="large frames arriving")
    # Stalled large frames hold the large frames' budget, never the small requests'.
    started = time.monotonic()
    small = raw(broker)
    small.sendall(request(18, 0, 4))
    assert struct.unpack(">i", read_frame(small)[:4])[0] == 4
    assert time.monotonic() - started < 2, "a small request waited behind stalled frames"
    for t in threads:
        t.join(timeout=30)
    assert peak_rss_mib(broker) < 300, f"peak {peak_rss_mib(broker):.0f} MiB"
    for s in done:
        assert closed_by_peer(s)
    # A frame queued behind stalled ones times out with them: its time runs from its length
    # prefix, not from when its turn at the budget comes (which would take 4 s per turn).
    assert time.monotonic() - begun < 12, "queued frames were held past request_timeout_ms"
    still = raw(broker)
    still.sendall(request(18, 0, 5))
    assert struct.unpack(">i", read_frame(still)[:4])[0] == 5


def metrics_text(broker):
    with urllib.request.urlopen(f"{broker.http}/metrics", timeout=10) as r:
        return r.read().decode()


def open_descriptors(broker):
    import os
    return len(os.listdir(f"/proc/{broker.proc.pid}/fd"))


def test_running_out_of_descriptors_refuses_requests_but_takes_no_partition_offline(broker):
    # Every batch rolls a segment (three new files) and acks=all syncs the directory (one
    # more): both need descriptors. With none left, the produce is refused with a retriable
    # error; once connections close, the same producer's retry lands and the partition serves.
    import resource
    create_topic(broker, "fds", config={"segment.bytes": "100"})
    p = producer(broker, **{"acks": "all", "message.timeout.ms": 60000, "linger.ms": 0})
    produce_all(p, "fds", [(None, b"first")])
    limit = open_descriptors(broker) + 64
    resource.prlimit(broker.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
    squatters = []
    for _ in range(limit + 16):  # more than there are descriptors: the rest wait in the backlog
        squatters.append(raw(broker))
    wait_until(lambda: open_descriptors(broker) >= limit - 1, what="descriptors used up")
    delivered = []
    p.produce("fds", b"second", on_delivery=lambda err, msg: delivered.append(err))
    broker.wait_for_log("for want of a resource", timeout=30)
    assert "partition log is now offline" not in broker.log()
    for s in squatters:
        s.close()
    wait_until(lambda: (p.poll(0.1), delivered)[1], timeout=45, what="the retried record")
    assert delivered == [None], delivered
    produce_all(p, "fds", [(None, b"third")])
    assert [m.value() for m in consume_all(broker, "fds", 3)] == [b"first", b"second", b"third"]
    assert "partition log is now offline" not in broker.log()


def test_a_name_repeated_half_a_million_times_is_answered_once(broker):
    create_topic(broker, "named", 50)
    s = raw(broker, timeout=30)
    repeats = 500_000
    # DescribeGroups v0: one unknown group id, half a million times.
    body = struct.pack(">i", repeats) + (struct.pack(">h", 1) + b"g") * repeats
    s.sendall(request(15, 0, 7, body))
    frame = read_frame(s)
    assert struct.unpack(">ii", frame[:8]) == (7, 1), "one group answered"
    # DescribeConfigs v1: one topic, half a million times.
    name = b"named"
    resource = struct.pack(">bh", 2, len(name)) + name + struct.pack(">i", -1)
    s.sendall(request(32, 1, 8, struct.pack(">i", repeats) + resource * repeats + b"\x00"))
    frame = read_frame(s)
    assert struct.unpack(">iii", frame[:12]) == (8, 0, 1), "one resource answered"
    # Metadata v1: a topic of 50 partitions, half a million times.
    s.sendall(request(3, 1, 9, struct.pack(">i", repeats) + (struct.pack(">h", len(name)) + name) * repeats))
    frame = read_frame(s)
    assert len(frame) < 4096, len(frame)
    assert peak_rss_mib(broker) < 400, f"peak {peak_rss_mib(broker):.0f} MiB"


def test_a_huge_describe_request_is_refused_before_it_is_decoded(broker):
    # 8 M empty group ids (16 MiB): decoded, they would take 256 MiB before any answer.
    s = raw(broker, timeout=30)
    count = 8 * 1024 * 1024
    s.sendall(request(15, 0, 7, struct.pack(">i", count) + b"\x00\x00" * count))
    assert closed_by_peer(s)
    assert peak_rss_mib(broker) < 200, f"peak {peak_rss_mib(broker):.0f} MiB"
    still_serving(broker, "huge")


def test_a_topic_with_the_longest_name_is_deleted_for_good(broker):
    from helpers import admin
    name = "x" * 249
    create_topic(broker, name)
    produce_all(producer(broker), name, [(None, b"secret")])
    client = admin(broker)
    for f in client.delete_topics([name], operation_timeout=10).values():
        f.result(timeout=15)
    wait_until(lambda: name not in admin(broker).list_topics(timeout=10).topics, what="topic gone")
    assert not (broker.data_dir / "topics" / name).exists(), "its files stayed"
    broker.stop()
    broker.start()
    assert name not in admin(broker).list_topics(timeout=10).topics, "the deleted topic came back"


def test_a_create_that_fails_half_way_leaves_nothing_behind(broker):
    import resource
    limit = open_descriptors(broker) + 40
    soft, hard = resource.prlimit(broker.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(broker.proc.pid, resource.RLIMIT_NOFILE, (limit, hard))
    from helpers import admin
    from confluent_kafka.admin import NewTopic
    client = admin(broker)
    futures = client.create_topics([NewTopic("wide", 200, 1)], operation_timeout=10)
    try:
        futures["wide"].result(timeout=15)
        raise AssertionError("200 partitions fit in 40 descriptors")
    except AssertionError:
        raise
    except Exception:
        pass
    assert not (broker.data_dir / "topics" / "wide").exists(), "a half-created topic stayed"
    resource.prlimit(broker.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
    create_topic(broker, "wide", 200)
    still_serving(broker, "wide")


def test_damage_in_the_middle_of_the_log_costs_only_the_damaged_batch(broker):
    # 12,000 acknowledged records in many segments, a kill -9, then 16 bytes overwritten in
    # the middle of an early segment. Recovery keeps every segment; a consumer is refused the
    # damaged offsets (CORRUPT_MESSAGE) and, moved past them, reads everything else.
    import re
    from confluent_kafka import KafkaError
    create_topic(broker, "disk", 1, {"segment.bytes": "16384"})
    p = producer(broker, **{"acks": "all", "linger.ms": 2, "batch.num.messages": 100})
    total = 12_000
    produce_all(p, "disk", [(None, f"value-{i:06d}".encode()) for i in range(total)])
    broker.kill()
    logs = sorted((broker.data_dir / "topics" / "disk" / "0").glob("*.log"))
    assert len(logs) >= 10, len(logs)
    with open(logs[2], "r+b") as f:
        f.seek(f.seek(0, 2) // 2)
        f.write(b"\xab" * 16)
    broker.start()
    assert len(list((broker.data_dir / "topics" / "disk" / "0").glob("*.log"))) == len(logs)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader",
                  "enable.auto.commit": False})
    c.assign([TopicPartition("disk", 0, 0)])
    lost = refused_count(broker)  # found by recovery, before any read
    assert 1 <= lost <= 200, f"{lost} offsets lost to 16 damaged bytes"
    from kafka.admin import KafkaAdminClient
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        dirs = client.describe_log_dirs(["disk"])[0]["log_dirs"]
    finally:
        client.close()
    damaged = [d for d in dirs if d["log_dir"].endswith("(damaged)")]
    assert len(dirs) == 2 and len(damaged) == 1, dirs
    assert damaged[0]["error_code"] == 56
    assert damaged[0]["topics"][0]["partitions"][0]["offset_lag"] == lost
    values, refused = [], 0
    deadline = time.monotonic() + 60
    while len(values) < total - lost and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            assert m.error().code() == KafkaError.INVALID_MSG, m.error()
            refused += 1
            # The operator's move: the broker's log names the next readable offset.
            found = re.findall(r"the next readable offset is (\d+)", broker.log())
            assert found, broker.log()
            c.seek(TopicPartition("disk", 0, int(found[-1])))
            continue
        values.append(m.value())
    c.close()
    assert refused >= 1, "the damaged batch was never reported"
    assert len(values) == total - lost
    assert len(set(values)) == len(values)
    assert "damaged batches in the middle of a segment" in broker.log()


def refused_count(broker):
    """Offsets the broker reports lost to damage (its metric)."""
    for line in metrics_text(broker).splitlines():
        if line.startswith("sluice_partition_damaged_offsets{"):
            return int(float(line.split()[-1]))
    return 0


def test_under_ulimit_1024_idle_clients_cannot_starve_the_partitions(tmp_path):
    # The probe that took a partition offline: 1,090 idle connections under a limit of 1,024
    # descriptors. The broker keeps a quarter of its descriptors from clients, so the extra
    # connections wait in the backlog, and segment rolls and fsyncs still get theirs.
    from conftest import Broker, free_port
    broker = Broker(tmp_path / "data", free_port())
    limited_start(broker, 1024)
    try:
        create_topic(broker, "tight", 1, {"segment.bytes": "100"})
        p = producer(broker, **{"acks": "all", "linger.ms": 0})
        produce_all(p, "tight", [(None, b"before")])
        squatters = []
        for _ in range(1090):
            try:  # past the cap, connections wait in the accept backlog, then time out
                squatters.append(socket.create_connection(("127.0.0.1", broker.port), timeout=3))
            except OSError:
                break
        assert len(squatters) >= 768, len(squatters)
        # Every batch rolls a segment: three new files each, and a directory sync.
        produce_all(p, "tight", [(None, f"r{i}".encode()) for i in range(50)])
        assert "partition log is now offline" not in broker.log()
        assert "for want of a resource" not in broker.log(), "clients used up the reserve"
        status = urllib.request.urlopen(f"{broker.http}/readyz", timeout=10).status
        assert status == 200
        for s in squatters:
            s.close()
        assert len(consume_all(broker, "tight", 51)) == 51
    finally:
        broker.kill()


def test_the_scrubber_finds_a_flipped_byte_before_any_consumer_does(start_broker):
    broker = start_broker({"SLUICE_LOG_SCRUB_BYTES_PER_SECOND": "104857600",
                           "SLUICE_LOG_SCRUB_INTERVAL_MS": "200"})
    create_topic(broker, "cold", 1, {"segment.bytes": "16384"})
    p = producer(broker, **{"linger.ms": 2, "batch.num.messages": 100})
    produce_all(p, "cold", [(None, f"value-{i:06d}".encode()) for i in range(3000)])
    assert broker.stop() == 0
    logs = sorted((broker.data_dir / "topics" / "cold" / "0").glob("*.log"))
    assert len(logs) >= 3
    with open(logs[1], "r+b") as f:  # a closed segment; a clean stop means no recovery scan
        f.seek(f.seek(0, 2) // 2 + 30)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    broker.start()
    wait_until(lambda: refused_count(broker) > 0, timeout=30, what="the scrubber's finding")
    assert "damaged batches found" in broker.log()
    assert refused_count(broker) <= 100
    broker.wait_for_log("scrub pass done")


def limited_start(broker, nofile):
    """Starts `broker` with a descriptor limit of `nofile` (soft and hard)."""
    import resource
    import subprocess
    original = subprocess.Popen

    def limited(*args, **kwargs):
        kwargs["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        return original(*args, **kwargs)

    subprocess.Popen = limited
    try:
        broker.start()
    finally:
        subprocess.Popen = original


def test_the_number_of_segments_does_not_bound_the_broker(broker):
    # 1,500 segments, then a restart under ulimit -n 1024: closed segments hold no descriptor,
    # so the broker starts, recovers and serves them all.
    create_topic(broker, "many", 1, {"segment.bytes": "100"})
    p = producer(broker, **{"linger.ms": 0, "batch.num.messages": 1})
    produce_all(p, "many", [(None, f"r{i:05d}".encode()) for i in range(1500)])
    logs = list((broker.data_dir / "topics" / "many" / "0").glob("*.log"))
    assert len(logs) >= 1500, len(logs)
    broker.kill()  # no clean shutdown: recovery opens every segment
    limited_start(broker, 1024)
    assert len(os.listdir(f"/proc/{broker.proc.pid}/fd")) < 512
    got = consume_all(broker, "many", 1500, timeout=60)
    assert sorted(m.value() for m in got) == [f"r{i:05d}".encode() for i in range(1500)]
    assert len(os.listdir(f"/proc/{broker.proc.pid}/fd")) < 800
