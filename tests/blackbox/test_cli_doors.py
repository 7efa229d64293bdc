"""The CLI as kcat and rpk users expect it: consume's offsets, templates, several topics,
read_committed and past-the-end; produce's tombstones, fixed key, compression and resumable
failures; trim-prefix; --follow riding through a broker restart; the error texts and hints.
Every result is checked with librdkafka (confluent-kafka), never with the CLI alone."""

import socket
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import SLUICE_BIN, wait_until
from helpers import consume_all, create_topic, watermarks
from test_cli import sluice


def lines(broker, *args):
    return sluice(broker, "consume", *args).stdout.decode().splitlines()


def test_offsets_as_kcat_and_rpk_take_them(broker):
    create_topic(broker, "clock", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    day = 1_699_920_000_000  # 2023-11-14T00:00:00Z
    for i in range(6):
        # Partition 0: three records on 2023-11-14, three on the 15th; partition 1: the same.
        for partition in (0, 1):
            p.produce("clock", value=f"p{partition}-{i}".encode(), partition=partition,
                      timestamp=day + (i // 3) * 86_400_000 + i)
    assert p.flush(15) == 0

    def values(*args):
        return sorted(lines(broker, "clock", *args))

    everything = sorted(f"p{q}-{i}" for q in (0, 1) for i in range(6))
    assert values("-o", "beginning") == everything
    assert values("--offset", "end") == []
    assert values("-o", "4") == ["p0-4", "p0-5", "p1-4", "p1-5"]
    assert values("-o", "-2") == ["p0-4", "p0-5", "p1-4", "p1-5"]
    assert values("-o", "-100") == everything
    assert values("-o", "@2023-11-15") == ["p0-3", "p0-4", "p0-5", "p1-3", "p1-4", "p1-5"]
    assert values("-o", f"@{day + 86_400_000 + 4}") == ["p0-4", "p0-5", "p1-4", "p1-5"]
    assert values("--from", "-1", "-p", "1") == ["p1-5"]

    # A time ago: two records an hour and a half old, two new ones.
    now = int(time.time() * 1000)
    create_topic(broker, "recent")
    for value, ts in [("old-1", now - 5_400_000), ("old-2", now - 5_400_000), ("new-1", now), ("new-2", now)]:
        p.produce("recent", value=value.encode(), timestamp=ts)
    assert p.flush(15) == 0
    assert lines(broker, "recent", "-o", "@-1h") == ["new-1", "new-2"]
    assert lines(broker, "recent", "-o", "@-2h") == ["old-1", "old-2", "new-1", "new-2"]

    bad = sluice(broker, "consume", "clock", "-o", "@-1y", check=False)
    assert bad.returncode == 2 and b"unit" in bad.stderr


def test_a_template_prints_what_librdkafka_wrote(broker):
    create_topic(broker, "shaped", partitions=1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("shaped", key=b"k1", value=b"hello", timestamp=1_700_000_000_000,
              headers=[("trace", b"abc"), ("n", b"1")])
    p.produce("shaped", value=b"no key", timestamp=1_700_000_000_001)
    p.produce("shaped", key=b"gone", value=None, timestamp=1_700_000_000_002)
    assert p.flush(15) == 0

    out = sluice(broker, "consume", "shaped", "-f", "%k %v %p %o %T\\n").stdout.decode()
    assert out == "k1 hello 0 0 1700000000000\n no key 0 1 1700000000001\ngone  0 2 1700000000002\n"
    out = sluice(broker, "consume", "shaped", "-f", "%t|%K|%S|%h;", "-n", "3").stdout.decode()
    assert out == "shaped|2|5|trace=abc,n=1;shaped|-1|6|;shaped|4|-1|;"
    bad = sluice(broker, "consume", "shaped", "-f", "%q", check=False)
    assert bad.returncode == 2 and b"%q" in bad.stderr


def test_several_topics_and_a_regex(broker):
    for topic in ("orders-eu", "orders-us", "billing"):
        create_topic(broker, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for topic in ("orders-eu", "orders-us", "billing"):
        p.produce(topic, value=topic.encode())
    assert p.flush(15) == 0

    def topics(*args):
        return sorted(lines(broker, *args, "-f", "%t=%v\\n"))

    assert topics("orders-eu", "billing") == ["billing=billing", "orders-eu=orders-eu"]
    assert topics("--regex", "orders-.*") == ["orders-eu=orders-eu", "orders-us=orders-us"]
    assert topics("^orders-(eu|us)", "billing") == [
        "billing=billing", "orders-eu=orders-eu", "orders-us=orders-us"]
    # Internal topics never match, whatever the pattern.
    assert topics("-r", ".*") == ["billing=billing", "orders-eu=orders-eu", "orders-us=orders-us"]
    none = sluice(broker, "consume", "-r", "nothing-.*", check=False)
    assert none.returncode == 4 and b"no topic matches" in none.stderr


def test_read_committed_leaves_out_aborted_and_open_transactions(broker):
    create_topic(broker, "ledger")
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce("ledger", value=b"plain-1")
    assert plain.flush(15) == 0
    txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "cli-txn"})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce("ledger", value=b"committed-1")
    txn.commit_transaction(30)
    txn.begin_transaction()
    txn.produce("ledger", value=b"aborted-1")
    assert txn.flush(15) == 0  # written before the abort (librdkafka drops what is unsent)
    txn.abort_transaction(30)
    txn.begin_transaction()
    txn.produce("ledger", value=b"committed-2")
    txn.commit_transaction(30)
    plain.produce("ledger", value=b"plain-2")
    assert plain.flush(15) == 0
    txn.begin_transaction()
    txn.produce("ledger", value=b"open-1")
    assert txn.flush(15) == 0
    plain.produce("ledger", value=b"plain-3")
    assert plain.flush(15) == 0

    committed = lines(broker, "ledger", "--isolation", "read_committed")
    # plain-3 sits after the open transaction's start: read_committed stops at the last
    # stable offset, as Kafka's consumers do (and ends there rather than waiting).
    assert committed == ["plain-1", "committed-1", "committed-2", "plain-2"]
    uncommitted = lines(broker, "ledger")
    assert uncommitted == ["plain-1", "committed-1", "aborted-1", "committed-2", "plain-2",
                           "open-1", "plain-3"]

    txn.commit_transaction(30)
    committed = lines(broker, "ledger", "--isolation", "read_committed")
    assert committed == ["plain-1", "committed-1", "committed-2", "plain-2", "open-1", "plain-3"]


def test_an_offset_past_the_end_is_said_so(broker):
    create_topic(broker, "short")
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        p.produce("short", value=f"v{i}".encode())
    assert p.flush(15) == 0
    done = sluice(broker, "consume", "short", "-o", "100")
    assert done.stdout == b""
    assert b"offset 100 is past the end (5)" in done.stderr
    assert b"retention" not in done.stderr

    # Following, it waits at the end for new records instead of rewinding to the start.
    follower = subprocess.Popen(
        [str(SLUICE_BIN), "consume", "short", "-o", "100", "--follow", "-n", "1",
         "--brokers", broker.bootstrap], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: follower.poll() is not None or _said(follower, b"past the end"),
                   what="the follower to take its position")
        p.produce("short", value=b"new")
        assert p.flush(15) == 0
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err.decode()
        assert out == b"new\n"
    finally:
        if follower.poll() is None:
            follower.kill()


def _said(process, text):
    """Whether `process` has written `text` on stderr yet (reads what is there, no waiting)."""
    import os
    import select
    fd = process.stderr.fileno()
    os.set_blocking(fd, False)
    ready, _, _ = select.select([fd], [], [], 0)
    if ready:
        chunk = os.read(fd, 65536)
        process._seen = getattr(process, "_seen", b"") + chunk
    return text in getattr(process, "_seen", b"")


def test_tombstones_one_key_and_compression_as_librdkafka_reads_them(broker):
    create_topic(broker, "users", config={"cleanup.policy": "compact"})
    sluice(broker, "produce", "users", "-K", ":", "-Z", input=b"u1:ada\nu2:bob\nu1:\n")
    got = [(m.key(), m.value()) for m in consume_all(broker, "users", 3)]
    assert got == [(b"u1", b"ada"), (b"u2", b"bob"), (b"u1", None)]

    create_topic(broker, "fixed", partitions=4)
    sluice(broker, "produce", "fixed", "-k", "device-7", input=b"a\nb\n\nc\n")
    got = consume_all(broker, "fixed", 4)
    assert {m.key() for m in got} == {b"device-7"}
    assert len({m.partition() for m in got}) == 1
    # Without -Z an empty line is an empty value, not a tombstone.
    assert [m.value() for m in got] == [b"a", b"b", b"", b"c"]

    text = b"".join(b"sensor-%d temperature=21.5 humidity=40 status=ok\n" % (i % 10) for i in range(5000))
    create_topic(broker, "plain")
    sluice(broker, "produce", "plain", input=text)
    plain_bytes = _log_bytes(broker, "plain")
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        create_topic(broker, codec)
        sluice(broker, "produce", codec, "-z", codec, input=text)
        values = [m.value() for m in consume_all(broker, codec, 5000)]
        assert values == text.splitlines(), codec
        assert _log_bytes(broker, codec) * 3 < plain_bytes, codec


def _log_bytes(broker, topic):
    return sum(f.stat().st_size for f in (broker.data_dir / "topics" / topic / "0").glob("*.log"))


def test_a_failed_bulk_load_says_where_to_resume(broker):
    create_topic(broker, "accounts", config={"cleanup.policy": "compact"})
    # 10,000 keyed lines fill the first batch; line 10,003 of the second has no key.
    keyed = b"".join(b"acct-%d:balance-%d\n" % (i, i) for i in range(10_000))
    rest = b"acct-a:1\nacct-b:2\nno key here\nacct-c:3\n"
    failed = sluice(broker, "produce", "accounts", "-K", ":", input=keyed + rest, check=False)
    assert failed.returncode == 1
    err = failed.stderr.decode()
    assert "line 10003 has no key" in err, err
    assert "10000 records were written" in err and "resume from line 10001" in err, err
    assert watermarks(broker, "accounts", 0)[1] == 10_000

    create_topic(broker, "small", config={"max.message.bytes": "1000"})
    big = sluice(broker, "produce", "small", input=b"x" * 5000 + b"\n", check=False)
    assert big.returncode == 1
    assert b"MESSAGE_TOO_LARGE" in big.stderr and b"max.message.bytes" in big.stderr


def test_trim_prefix_deletes_records_before_an_offset(broker):
    create_topic(broker, "trimmed", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        for partition in (0, 1):
            p.produce("trimmed", value=f"{partition}-{i}".encode(), partition=partition)
    assert p.flush(15) == 0

    out = sluice(broker, "topic", "trim-prefix", "trimmed", "-o", "4", "-p", "0", "--no-confirm")
    assert out.stdout.decode().split() == ["PARTITION", "START", "0", "4"]
    assert watermarks(broker, "trimmed", 0) == (4, 10)
    assert watermarks(broker, "trimmed", 1) == (0, 10)
    assert lines(broker, "trimmed", "-p", "0")[0] == "0-4"

    sluice(broker, "topic", "trim-prefix", "trimmed", "--offset", "-3", "-n")
    assert [watermarks(broker, "trimmed", q) for q in (0, 1)] == [(7, 10), (7, 10)]
    sluice(broker, "topic", "trim-prefix", "trimmed", "--offset", "end", "-n")
    assert [watermarks(broker, "trimmed", q) for q in (0, 1)] == [(10, 10), (10, 10)]
    beyond = sluice(broker, "topic", "trim-prefix", "trimmed", "-o", "99", "-n", check=False)
    assert beyond.returncode == 1 and b"OFFSET_OUT_OF_RANGE" in beyond.stderr


@pytest.mark.parametrize("group", [None, "riders"])
def test_follow_rides_through_a_broker_restart(broker, group):
    create_topic(broker, "steady", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce("steady", value=f"before-{i}".encode())
    assert p.flush(15) == 0
    command = [str(SLUICE_BIN), "consume", "steady", "--follow", "-n", "20", "-f", "%v\\n",
               "--brokers", broker.bootstrap]
    if group:
        command += ["--group", group]
    follower = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = _read_lines(follower, 10, timeout=30)
        if group:
            wait_until(lambda: _group_committed(broker, group, 10), timeout=30,
                       what="the group member to commit the first records")
        broker.kill()
        broker.start()
        p = Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(10):
            p.produce("steady", value=f"after-{i}".encode())
        assert p.flush(30) == 0
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err.decode()
        values = sorted((first + out).decode().split())
        assert values == sorted([f"before-{i}" for i in range(10)] + [f"after-{i}" for i in range(10)])
        assert b"trying again" in err
    finally:
        if follower.poll() is None:
            follower.kill()


def _read_lines(process, count, timeout):
    """At least the first `count` lines `process` prints (all it printed so far, the last one
    possibly partial), waiting up to `timeout` seconds for them. Reads the pipe unbuffered, so
    a later `communicate` gets exactly the rest."""
    import os
    import select
    fd = process.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count:
        left = deadline - time.monotonic()
        assert left > 0, f"read {data.count(chr(10).encode())} of {count} lines: {data!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"the process ended after {data!r}"
            data += chunk
    return data


def _group_committed(broker, group, total):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        offsets = c.committed([TopicPartition("steady", q) for q in (0, 1)], timeout=10)
        return sum(max(o.offset, 0) for o in offsets) >= total
    finally:
        c.close()


def test_an_http_server_where_kafka_was_expected_is_named(broker):
    wrong = subprocess.run(
        [str(SLUICE_BIN), "topic", "list", "--brokers", f"127.0.0.1:{broker.http_port}"],
        capture_output=True, timeout=30)
    assert wrong.returncode == 3
    assert b"HTTP server" in wrong.stderr and b"9092" in wrong.stderr


def test_serve_names_the_address_it_cannot_bind(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(SLUICE_BIN), "serve", "--data-dir", str(tmp_path / "d"), "--listen", f"127.0.0.1:{port}",
             "--http-listen", "off"], capture_output=True, timeout=60)
        assert done.returncode == 1
        assert f"cannot listen for Kafka clients on 127.0.0.1:{port}".encode() in done.stderr
        assert b"--listen" in done.stderr
        done = subprocess.run(
            [str(SLUICE_BIN), "serve", "--data-dir", str(tmp_path / "e"), "--listen", "127.0.0.1:0",
             "--http-listen", f"127.0.0.1:{port}"], capture_output=True, timeout=60)
        assert done.returncode == 1
        assert f"cannot serve the HTTP API on 127.0.0.1:{port}".encode() in done.stderr
        assert b"--http-listen" in done.stderr


def test_deleting_a_group_with_members_says_what_to_do(broker):
    create_topic(broker, "busy")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "busy-group",
                  "auto.offset.reset": "earliest"})
    try:
        c.subscribe(["busy"])
        wait_until(lambda: c.poll(0.2) is None and len(c.assignment()) == 1, timeout=30,
                   what="the consumer to be assigned")
        refused = sluice(broker, "group", "delete", "busy-group", check=False)
        assert refused.returncode == 1
        assert b"NON_EMPTY_GROUP" in refused.stderr and b"stop its consumers" in refused.stderr
    finally:
        c.close()


def test_a_group_of_classic_members_is_joined_the_classic_way(broker):
    """A librdkafka consumer (classic protocol) holds both partitions; `sluice consume
    --group` says the group is classic, joins it with JoinGroup, is given one partition by the
    range assignor, reads and commits it, and leaves."""
    import threading
    create_topic(broker, "mixed", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        for partition in (0, 1):
            p.produce("mixed", value=f"{partition}-{i}".encode(), partition=partition)
    assert p.flush(15) == 0

    classic = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "mixed-group",
                        "enable.auto.commit": False, "auto.offset.reset": "earliest",
                        "partition.assignment.strategy": "range"})
    stop = threading.Event()
    assignments = []
    classic.subscribe(["mixed"], on_assign=lambda c, ps: assignments.append(sorted(x.partition for x in ps)))

    def keep_polling():
        while not stop.is_set():
            classic.poll(0.1)

    poller = threading.Thread(target=keep_polling)
    poller.start()
    try:
        wait_until(lambda: assignments and assignments[-1] == [0, 1], timeout=30,
                   what="the classic member to hold both partitions")
        joined = sluice(broker, "consume", "mixed", "--group", "mixed-group", "-f", "%p %v\n",
                        timeout=120)
        printed = joined.stdout.decode().splitlines()
        assert b"classic protocol" in joined.stderr, joined.stderr.decode()
        partitions = {line.split()[0] for line in printed}
        assert len(partitions) == 1 and len(printed) == 10, printed
        mine = int(partitions.pop())
        assert sorted(line.split()[1] for line in printed) == sorted(f"{mine}-{i}" for i in range(10))
        # What it printed is committed, in its generation.
        probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "mixed-group"})
        try:
            committed = probe.committed([TopicPartition("mixed", mine)], timeout=10)[0].offset
        finally:
            probe.close()
        assert committed == 10
        # Having left, the classic member gets both partitions back.
        wait_until(lambda: assignments[-1] == [0, 1], timeout=60,
                   what="the classic member to hold both partitions again")
    finally:
        stop.set()
        poller.join(timeout=30)
        classic.close()


def _read_committed(broker, topic, expect, partitions=1):
    """Every value a read_committed librdkafka consumer sees in `topic` (waiting for `expect`
    of them; fewer only when there are fewer)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "rc",
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(got) < expect:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m.value())
        return got
    finally:
        c.close()


def test_a_transactional_load_is_all_or_nothing(broker):
    create_topic(broker, "atomic", partitions=3)
    lines = b"".join(b"k%d:v%d\n" % (i, i) for i in range(30_000))
    done = sluice(broker, "produce", "atomic", "-K", ":", "--transactional-id", "loader", "-z", "lz4",
                  input=lines)
    assert b"one committed transaction" in done.stderr
    got = _read_committed(broker, "atomic", 30_000, partitions=3)
    assert sorted(got) == sorted(b"v%d" % i for i in range(30_000))

    # A load that fails part way (a keyless line on a compacted topic, after a full batch went
    # out) commits nothing: read_committed consumers never see its first batch.
    create_topic(broker, "atomic-compacted", config={"cleanup.policy": "compact"})
    bad = b"".join(b"k%d:v%d\n" % (i, i) for i in range(10_000)) + b"no key\n"
    failed = sluice(broker, "produce", "atomic-compacted", "-K", ":", "--transactional-id", "loader-2",
                    input=bad, check=False)
    assert failed.returncode == 1
    assert b"the transaction was aborted" in failed.stderr and b"line 10001 has no key" in failed.stderr
    assert watermarks(broker, "atomic-compacted", 0)[1] > 10_000  # written, then aborted
    assert _read_committed(broker, "atomic-compacted", 1) == []
    # The same id goes on: a new load fences nothing left open and commits.
    sluice(broker, "produce", "atomic-compacted", "-K", ":", "--transactional-id", "loader-2",
           input=b"a:1\nb:2\n")
    assert _read_committed(broker, "atomic-compacted", 2) == [b"1", b"2"]
    both = sluice(broker, "produce", "atomic", "--transactional-id", "x", "--acks", "1",
                  input=b"v\n", check=False)
    assert both.returncode == 2
