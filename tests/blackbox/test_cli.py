"""The `sluice` CLI end to end: every command against the real broker, its results checked
with independent clients (confluent-kafka / librdkafka), and the other way round."""

import json
import subprocess
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource

from conftest import SLUICE_BIN, free_port
from helpers import admin, consume_all, create_topic, produce_all


def sluice(broker, *args, input=None, timeout=60, check=True):
    """Runs a CLI command against `broker`; returns the CompletedProcess."""
    result = subprocess.run(
        [str(SLUICE_BIN), *args, "--brokers", broker.bootstrap],
        input=input, capture_output=True, timeout=timeout,
    )
    if check:
        assert result.returncode == 0, (result.returncode, result.stderr.decode())
    return result


def topic_configs(broker, topic):
    client = admin(broker)
    resource = ConfigResource("topic", topic)
    configs = client.describe_configs([resource])[resource].result(timeout=15)
    return {k: v.value for k, v in configs.items()}


def test_topic_lifecycle_as_librdkafka_sees_it(broker):
    sluice(broker, "topic", "create", "orders", "--partitions", "3",
           "--config", "retention.ms=3600000", "--config", "cleanup.policy=delete")
    client = admin(broker)
    meta = client.list_topics(timeout=10)
    assert len(meta.topics["orders"].partitions) == 3
    assert topic_configs(broker, "orders")["retention.ms"] == "3600000"

    listed = sluice(broker, "topic", "list").stdout.decode()
    assert "orders" in listed and "__consumer_offsets" not in listed
    assert "__consumer_offsets" in sluice(broker, "topic", "list", "--internal").stdout.decode()

    sluice(broker, "topic", "alter-config", "orders", "--set", "retention.ms=60000",
           "--set", "segment.bytes=1048576")
    configs = topic_configs(broker, "orders")
    assert (configs["retention.ms"], configs["segment.bytes"]) == ("60000", "1048576")
    sluice(broker, "topic", "alter-config", "orders", "--delete", "retention.ms")
    assert topic_configs(broker, "orders")["retention.ms"] == "604800000"

    sluice(broker, "topic", "add-partitions", "orders", "--total", "5")
    assert len(client.list_topics(timeout=10).topics["orders"].partitions) == 5

    described = sluice(broker, "topic", "describe", "orders").stdout.decode()
    assert "partitions  5" in described
    assert "segment.bytes" in described and "1048576" in described

    sluice(broker, "topic", "delete", "orders")
    assert "orders" not in client.list_topics(timeout=10).topics


def test_exit_codes_and_hints(broker):
    sluice(broker, "topic", "create", "once")
    again = sluice(broker, "topic", "create", "once", check=False)
    assert again.returncode == 1
    assert b"TOPIC_ALREADY_EXISTS" in again.stderr and b"--if-not-exists" in again.stderr
    assert sluice(broker, "topic", "create", "once", "--if-not-exists").returncode == 0

    missing = sluice(broker, "topic", "describe", "nothing-here", check=False)
    assert missing.returncode == 4
    assert b"UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr

    unreachable = subprocess.run(
        [str(SLUICE_BIN), "topic", "list", "--brokers", f"127.0.0.1:{free_port()}", "--timeout", "2"],
        capture_output=True, timeout=30,
    )
    assert unreachable.returncode == 3
    assert b"sluice serve" in unreachable.stderr

    bad = subprocess.run([str(SLUICE_BIN), "consume", "t", "--from", "yesterday"],
                         capture_output=True, timeout=30)
    assert bad.returncode == 2


def test_connection_flags_are_global_and_a_port_defaults_to_9092(broker):
    """`--brokers` and `--timeout` go before the command as well as after it (kcat and rpk
    habits); a broker named without a port is on 9092; the client flags are refused where they
    would do nothing (`serve`)."""
    create_topic(broker, "global-flags")
    before = subprocess.run(
        [str(SLUICE_BIN), "--brokers", broker.bootstrap, "--timeout", "10", "topic", "list"],
        capture_output=True, timeout=30)
    assert before.returncode == 0, before.stderr.decode()
    assert b"global-flags" in before.stdout
    # Nothing listens on 127.0.0.1:9092 in the tests: the hint names the port it assumed.
    portless = subprocess.run(
        [str(SLUICE_BIN), "--brokers", "127.0.0.1", "--timeout", "2", "topic", "list"],
        capture_output=True, timeout=30)
    if portless.returncode == 0:
        pytest.fail("something answers on 127.0.0.1:9092; the test needs that port free")
    assert portless.returncode == 3
    assert b"127.0.0.1:9092" in portless.stderr, portless.stderr.decode()
    refused = subprocess.run([str(SLUICE_BIN), "serve", "--brokers", broker.bootstrap],
                             capture_output=True, timeout=30)
    assert refused.returncode == 2
    assert b"--brokers is for the client commands" in refused.stderr


def test_cli_produce_is_read_by_librdkafka_on_kafkas_partitions(broker):
    create_topic(broker, "keyed", partitions=4)
    lines = [f"user-{i}:payload {i}" for i in range(200)] + ["no separator here"]
    sluice(broker, "produce", "keyed", "--key-separator", ":", "--header", "source=cli",
           "--header", "run=1", input="\n".join(lines).encode() + b"\n")
    messages = consume_all(broker, "keyed", len(lines))
    seen = {}
    for m in messages:
        assert m.headers() == [("source", b"cli"), ("run", b"1")]
        seen[m.key()] = (m.value(), m.partition())
    assert seen[None][0] == b"no separator here"
    assert seen[b"user-7"][0] == b"payload 7"

    # librdkafka's murmur2 partitioner (the Java client's default) agrees on every key.
    reports = produce_all(Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"}),
                          "keyed", [(f"user-{i}".encode(), b"x") for i in range(200)])
    for r in reports:
        assert r.partition() == seen[r.key()][1], r.key()


def test_cli_consume_prints_librdkafka_records_as_json(broker):
    create_topic(broker, "mixed", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("mixed", key=b"k1", value=b"hello", partition=0, headers=[("h", b"1"), ("h", b"2")],
              timestamp=1_700_000_000_000)
    p.produce("mixed", key=None, value=None, partition=0, timestamp=1_700_000_001_000)
    p.produce("mixed", key=b"\xff\xfe", value=b"\x00\x01\xff", partition=1)
    p.produce("mixed", value='{"a": 1}'.encode(), partition=1)
    assert p.flush(15) == 0

    out = sluice(broker, "consume", "mixed", "--format", "json").stdout.decode().splitlines()
    records = sorted((json.loads(line) for line in out), key=lambda r: (r["partition"], r["offset"]))
    assert len(records) == 4
    first = records[0]
    assert list(first) == ["topic", "partition", "offset", "timestamp", "key", "value", "headers"]
    assert (first["key"], first["value"], first["timestamp"]) == ("k1", "hello", 1_700_000_000_000)
    assert first["headers"] == [{"key": "h", "value": "1"}, {"key": "h", "value": "2"}]
    assert (records[1]["key"], records[1]["value"]) == (None, None)
    assert records[2]["key_base64"] == "//4=" and records[2]["value_base64"] == "AAH/"
    assert records[3]["value"] == '{"a": 1}'

    text = sluice(broker, "consume", "mixed", "--partition", "0").stdout
    assert text == b"hello\n\n"


def test_cli_consume_starting_points_and_count(broker):
    create_topic(broker, "timeline")
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce("timeline", value=f"v{i}".encode(), timestamp=1_700_000_000_000 + i * 1000)
    assert p.flush(15) == 0

    def values(*args):
        return sluice(broker, "consume", "timeline", *args).stdout.decode().split()

    assert values() == [f"v{i}" for i in range(10)]
    assert values("--from", "7") == ["v7", "v8", "v9"]
    assert values("--from", "latest") == []
    assert values("-n", "3") == ["v0", "v1", "v2"]
    assert values("--from", "@1700000004000") == ["v4", "v5", "v6", "v7", "v8", "v9"]
    assert values("--from", "@2023-11-14T22:13:28Z") == ["v8", "v9"]
    assert values("--from", "@2023-11-14T23:13:29+01:00", "-n", "5") == ["v9"]


def test_cli_follow_waits_for_new_records(broker):
    create_topic(broker, "live")
    follower = subprocess.Popen(
        [str(SLUICE_BIN), "consume", "live", "--from", "latest", "--follow", "-n", "3",
         "--brokers", broker.bootstrap],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        # The follower starts from wherever the end is when it looks; keep producing (a
        # record every 50 ms, bounded) until it has printed three and exited.
        p = Producer({"bootstrap.servers": broker.bootstrap})
        sent = 0
        deadline = time.monotonic() + 30
        while follower.poll() is None and time.monotonic() < deadline:
            p.produce("live", value=f"new-{sent}".encode())
            p.flush(5)
            sent += 1
            time.sleep(0.05)
        out, err = follower.communicate(timeout=5)
        assert follower.returncode == 0, err.decode()
        values = [int(v.removeprefix("new-")) for v in out.decode().split()]
        assert len(values) == 3
        assert values == list(range(values[0], values[0] + 3)) and values[-1] < sent
    finally:
        if follower.poll() is None:
            follower.kill()


def test_cli_produce_from_file(broker, tmp_path):
    path = tmp_path / "events.jsonl"
    count = 25_000
    path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(count)))
    create_topic(broker, "events", partitions=3)
    result = sluice(broker, "produce", "events", "--file", str(path), "--acks", "1")
    assert f"produced {count} records".encode() in result.stderr
    messages = consume_all(broker, "events", count)
    assert sorted(json.loads(m.value())["n"] for m in messages) == list(range(count))


def test_completions():
    for shell in ["bash", "zsh", "fish"]:
        script = subprocess.run([str(SLUICE_BIN), "completions", shell], capture_output=True,
                                timeout=30, check=True).stdout
        assert b"consume" in script and b"alter-config" in script


def committed_by_librdkafka(broker, group, topic, partitions):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}
    finally:
        c.close()


def test_cli_group_consume_resumes_and_commits_what_it_printed(broker):
    create_topic(broker, "jobs", partitions=3)
    produce_all(Producer({"bootstrap.servers": broker.bootstrap}), "jobs",
                [(f"k{i}".encode(), f"job-{i}".encode()) for i in range(30)])
    first = sluice(broker, "consume", "jobs", "--group", "workers", "-n", "12").stdout.split()
    assert len(first) == 12
    committed = committed_by_librdkafka(broker, "workers", "jobs", 3)
    assert sum(committed.values()) == 12, committed

    rest = sluice(broker, "consume", "jobs", "--group", "workers").stdout.split()
    assert len(rest) == 18
    assert sorted(first + rest) == sorted(f"job-{i}".encode() for i in range(30))
    ends = {p: len(m) for p, m in _by_partition(broker, "jobs", 30).items()}
    assert committed_by_librdkafka(broker, "workers", "jobs", 3) == ends

    listed = sluice(broker, "group", "list").stdout.decode()
    assert "workers" in listed and "consumer" in listed


def _by_partition(broker, topic, count):
    out = {}
    for m in consume_all(broker, topic, count):
        out.setdefault(m.partition(), []).append(m)
    return out


def test_cli_lag_matches_what_librdkafka_committed(broker):
    from confluent_kafka import Consumer, TopicPartition
    create_topic(broker, "lagging", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(25):
        p.produce("lagging", value=b"x", partition=i % 2)  # 13 in partition 0, 12 in 1
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "auditors"})
    c.commit(offsets=[TopicPartition("lagging", 0, 4), TopicPartition("lagging", 1, 11)],
             asynchronous=False)
    c.close()

    described = sluice(broker, "group", "describe", "auditors").stdout.decode().splitlines()
    rows = {}
    for line in described:
        fields = line.split()
        if fields and fields[0] == "lagging":
            rows[int(fields[1])] = (int(fields[2]), int(fields[3]), int(fields[4]))
    assert rows == {0: (4, 13, 9), 1: (11, 12, 1)}


def test_listings_and_descriptions_as_json_match_what_librdkafka_sees(broker):
    """`--format json` on topic list/describe, group list/describe and cluster info: one JSON
    document each, holding what an independent client reads."""
    from confluent_kafka import Consumer, TopicPartition
    create_topic(broker, "scripted", partitions=2, config={"retention.ms": "3600000"})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(7):
        p.produce("scripted", value=b"x", partition=i % 2)  # 4 in partition 0, 3 in 1
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "scripts"})
    c.commit(offsets=[TopicPartition("scripted", 0, 1)], asynchronous=False)
    c.close()

    def as_json(*args):
        return json.loads(sluice(broker, *args, "--format", "json").stdout)

    topics = as_json("topic", "list")
    assert {"name": "scripted", "partitions": 2, "internal": False} in topics
    assert all(not t["internal"] for t in topics)
    assert any(t["internal"] for t in as_json("topic", "list", "--internal"))
    described = as_json("topic", "describe", "scripted")
    md = admin(broker).list_topics("scripted", timeout=10).topics["scripted"]
    text = sluice(broker, "topic", "describe", "scripted").stdout.decode()
    assert described["name"] == "scripted" and f"id          {described['id']}" in text
    assert [(q["partition"], q["leader"], q["end_offset"], q["records"])
            for q in described["partitions"]] == [(0, md.partitions[0].leader, 4, 4),
                                                   (1, md.partitions[1].leader, 3, 3)]
    assert all(q["replicas"] == q["isr"] == [1] for q in described["partitions"])
    configs = {c["name"]: c for c in described["configs"]}
    assert configs["retention.ms"]["value"] == "3600000"
    assert configs["retention.ms"]["source"] == "topic"

    listed = {g["group"]: g for g in as_json("group", "list")}
    assert listed["scripts"]["state"] == "Empty", listed
    group = as_json("group", "describe", "scripts")
    lag = {(q["topic"], q["partition"]): (q["committed_offset"], q["end_offset"], q["lag"])
           for q in group["partitions"]}
    assert lag[("scripted", 0)] == (1, 4, 3)
    assert group["group"] == "scripts" and group["members"] == []
    # The same shape as the HTTP API's.
    import urllib.request
    with urllib.request.urlopen(broker.http + "/v1/groups/scripts", timeout=30) as r:
        assert json.loads(r.read()) == group

    cluster = as_json("cluster", "info")
    assert cluster["controller"] == 1 and cluster["kafka_apis"] > 20
    assert [(b["id"], b["port"], b["fenced"], b["controller"]) for b in cluster["brokers"]] == \
        [(1, broker.port, False, True)]


def test_cli_reset_offsets_dry_run_execute_and_delete(broker):
    from confluent_kafka import Consumer
    create_topic(broker, "ledger", partitions=2)
    produce_all(Producer({"bootstrap.servers": broker.bootstrap}), "ledger",
                [(f"k{i}".encode(), b"v") for i in range(20)])
    sluice(broker, "consume", "ledger", "--group", "replay")  # commits the end of both
    ends = committed_by_librdkafka(broker, "replay", "ledger", 2)
    assert sum(ends.values()) == 20

    dry = sluice(broker, "group", "reset-offsets", "replay", "--topic", "ledger", "--to", "earliest")
    assert b"dry run" in dry.stdout
    assert committed_by_librdkafka(broker, "replay", "ledger", 2) == ends

    sluice(broker, "group", "reset-offsets", "replay", "--topic", "ledger", "--to", "earliest",
           "--execute")
    assert committed_by_librdkafka(broker, "replay", "ledger", 2) == {0: 0, 1: 0}
    sluice(broker, "group", "reset-offsets", "replay", "--topic", "ledger", "--to", "1000000",
           "--execute")
    assert committed_by_librdkafka(broker, "replay", "ledger", 2) == ends  # clamped to the end

    # With a live member the reset is refused and nothing changes.
    member = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "replay",
                       "group.protocol": "consumer"})
    member.subscribe(["ledger"])
    try:
        deadline = time.monotonic() + 20
        while not member.assignment() and time.monotonic() < deadline:
            member.poll(0.2)
        assert member.assignment()
        refused = sluice(broker, "group", "reset-offsets", "replay", "--topic", "ledger",
                         "--to", "earliest", "--execute", check=False)
        assert refused.returncode == 1 and b"active member" in refused.stderr
    finally:
        member.close()
    assert committed_by_librdkafka(broker, "replay", "ledger", 2) == ends

    sluice(broker, "group", "delete", "replay")
    assert "replay" not in sluice(broker, "group", "list").stdout.decode()
    gone = sluice(broker, "group", "describe", "replay", check=False)
    assert gone.returncode == 4 and b"GROUP_ID_NOT_FOUND" in gone.stderr


@pytest.mark.parametrize("command", [
    ["topic", "create"], ["topic", "list"], ["topic", "describe"], ["topic", "alter-config"],
    ["topic", "add-partitions"], ["topic", "delete"], ["produce"], ["consume"], ["group", "list"],
    ["group", "describe"], ["group", "reset-offsets"], ["group", "delete"], ["cluster", "info"],
    ["completions"], ["serve"],
])
def test_every_command_has_help_with_examples(command):
    out = subprocess.run([str(SLUICE_BIN), *command, "--help"], capture_output=True, timeout=30,
                         check=True).stdout.decode()
    assert "Example" in out and "sluice " in out, out


def test_partition_sizes_from_describe_log_dirs(broker):
    from kafka.admin import KafkaAdminClient
    create_topic(broker, "sized", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(500):
        p.produce("sized", value=b"v" * 200, partition=0)
    assert p.flush(15) == 0

    on_disk = sum(f.stat().st_size for f in (broker.data_dir / "topics" / "sized" / "0").glob("*.log"))
    assert on_disk > 500 * 200

    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)  # kafka-python decodes v1-4 itself
    try:
        dirs = client.describe_log_dirs(["sized"])[0]["log_dirs"]
    finally:
        client.close()
    assert len(dirs) == 1 and dirs[0]["total_bytes"] >= dirs[0]["usable_bytes"] > 0
    sizes = {p["partition_index"]: p["partition_size"] for t in dirs[0]["topics"] for p in t["partitions"]}
    assert sizes == {0: on_disk, 1: 0}

    described = sluice(broker, "topic", "describe", "sized").stdout.decode()
    row = next(line.split() for line in described.splitlines() if line.startswith("0 "))
    assert row[3:6] == ["500", "500", f"{on_disk / 1024:.1f}"], row
