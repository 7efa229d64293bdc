"""The HTTP/JSON API of `sluice serve`: records produced over HTTP are read by librdkafka and
the other way round; admin routes; long-polling; errors are JSON with 4xx statuses."""

import base64
import json
import threading
import time
import urllib.error
import urllib.request

from confluent_kafka import Producer

from helpers import consume_all, create_topic, produce_all


def call(broker, method, path, body=None, raw=None):
    """Returns (status, parsed JSON or None)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(broker.http + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, (json.loads(text) if text else None)


def test_health_and_readiness(broker):
    assert call(broker, "GET", "/healthz") == (200, {"status": "ok"})
    assert call(broker, "GET", "/readyz") == (200, {"status": "ready"})


def test_records_produced_over_http_are_read_by_librdkafka(broker):
    create_topic(broker, "web", partitions=3)
    records = [
        {"key": "user-1", "value": "hello", "headers": {"source": "http"}},
        {"key": "user-2", "value": {"n": 2, "tags": ["a"]}},
        {"value_base64": base64.b64encode(b"\x00\xff").decode(), "partition": 2},
        {"key": "user-3", "value": None, "headers": [{"key": "h", "value": "1"}, {"key": "h", "value": "2"}]},
    ]
    status, body = call(broker, "POST", "/v1/topics/web/records", {"records": records})
    assert status == 200, body
    offsets = body["offsets"]
    assert len(offsets) == 4 and offsets[2]["partition"] == 2

    by_key = {m.key(): m for m in consume_all(broker, "web", 4)}
    assert by_key[b"user-1"].value() == b"hello"
    assert by_key[b"user-1"].headers() == [("source", b"http")]
    assert json.loads(by_key[b"user-2"].value()) == {"n": 2, "tags": ["a"]}
    assert by_key[None].value() == b"\x00\xff" and by_key[None].partition() == 2
    assert by_key[b"user-3"].value() is None
    assert by_key[b"user-3"].headers() == [("h", b"1"), ("h", b"2")]
    for m in by_key.values():
        assert {"partition": m.partition(), "offset": m.offset()} in offsets

    # Keyed records land where librdkafka's murmur2 partitioner puts them.
    reports = produce_all(Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"}),
                          "web", [(b"user-1", b"x"), (b"user-2", b"x")])
    for r in reports:
        assert r.partition() == by_key[r.key()].partition()


def test_records_from_librdkafka_are_read_over_http(broker):
    create_topic(broker, "feed")
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("feed", key=b"k", value=b"text", headers=[("h", b"v")], timestamp=1_700_000_000_000)
    p.produce("feed", value=b"\xff\xfe")
    p.produce("feed", key=b"tomb", value=None)
    for i in range(10):
        p.produce("feed", value=f"n{i}".encode())
    assert p.flush(15) == 0

    status, body = call(broker, "GET", "/v1/topics/feed/partitions/0/records?offset=0&max=3")
    assert status == 200, body
    first, binary, tombstone = body["records"]
    assert first == {"offset": 0, "timestamp": 1_700_000_000_000, "key": "k", "value": "text",
                     "headers": [{"key": "h", "value": "v"}]}
    assert binary["value_base64"] == base64.b64encode(b"\xff\xfe").decode() and "value" not in binary
    assert tombstone["key"] == "tomb" and tombstone["value"] is None
    assert body["next_offset"] == 3 and body["high_watermark"] == 13

    status, body = call(broker, "GET", "/v1/topics/feed/partitions/0/records?offset=3&max=100")
    assert [r["value"] for r in body["records"]] == [f"n{i}" for i in range(10)]
    assert body["next_offset"] == 13
    status, body = call(broker, "GET", "/v1/topics/feed/partitions/0/records")
    assert status == 200 and body["records"][0]["offset"] == 0


def test_a_waiting_fetch_answers_when_a_record_arrives(broker):
    create_topic(broker, "waiting")
    result = {}

    def wait_for_record():
        started = time.monotonic()
        result["answer"] = call(broker, "GET", "/v1/topics/waiting/partitions/0/records?offset=0&wait_ms=10000")
        result["seconds"] = time.monotonic() - started

    reader = threading.Thread(target=wait_for_record)
    reader.start()
    time.sleep(0.3)  # let the fetch park; the assertion below does not depend on it
    produce_all(Producer({"bootstrap.servers": broker.bootstrap}), "waiting", [(None, b"late")])
    reader.join(timeout=30)
    status, body = result["answer"]
    assert status == 200 and [r["value"] for r in body["records"]] == ["late"]
    assert result["seconds"] < 8, result["seconds"]


def test_topic_admin_routes(broker):
    status, body = call(broker, "POST", "/v1/topics",
                        {"name": "managed", "partitions": 4, "configs": {"retention.ms": "60000"}})
    assert (status, body) == (201, {"name": "managed", "partitions": 4})
    assert call(broker, "POST", "/v1/topics", {"name": "managed"})[0] == 409

    status, body = call(broker, "GET", "/v1/topics")
    assert {"name": "managed", "partitions": 4, "internal": False} in body["topics"]
    status, body = call(broker, "GET", "/v1/topics/managed")
    assert status == 200 and len(body["partitions"]) == 4
    assert body["configs"]["retention.ms"] == "60000"
    assert body["partitions"][0] == {"partition": 0, "leader": 1, "log_start_offset": 0, "end_offset": 0}

    assert call(broker, "DELETE", "/v1/topics/managed") == (204, None)
    assert call(broker, "GET", "/v1/topics/managed")[0] == 404
    assert call(broker, "DELETE", "/v1/topics/managed")[0] == 404


def test_bad_requests_get_json_errors_and_never_5xx(broker):
    create_topic(broker, "strict", partitions=2)
    cases = [
        ("POST", "/v1/topics/strict/records", None, b"not json", 400),
        ("POST", "/v1/topics/strict/records", {"records": []}, None, 400),
        ("POST", "/v1/topics/strict/records", {"records": [{"value": "x"}] * 10_001}, None, 400),
        ("POST", "/v1/topics/strict/records", {"records": [{"value": "x", "partition": 9}]}, None, 400),
        ("POST", "/v1/topics/strict/records", {"records": [{"value": "x", "value_base64": "eA=="}]}, None, 400),
        ("POST", "/v1/topics/strict/records", {"records": [{"value_base64": "!!"}]}, None, 400),
        ("POST", "/v1/topics/strict/records", {"records": [{"surprise": 1}]}, None, 400),
        ("POST", "/v1/topics/bad%20name/records", {"records": [{"value": "x"}]}, None, 400),
        ("GET", "/v1/topics/strict/partitions/x/records", None, None, 400),
        ("GET", "/v1/topics/strict/partitions/7/records", None, None, 404),
        ("GET", "/v1/topics/strict/partitions/0/records?max=0", None, None, 400),
        ("GET", "/v1/topics/strict/partitions/0/records?wait_ms=99999999", None, None, 400),
        ("GET", "/v1/topics/strict/partitions/0/records?offset=-5", None, None, 400),
        ("GET", "/v1/topics/strict/partitions/0/records?offset=999", None, None, 400),
        ("GET", "/v1/topics/strict/partitions/0/records?bogus=1", None, None, 400),
        ("GET", "/v1/no/such/route", None, None, 404),
        ("POST", "/v1/topics", {"name": "x", "partitions": -3}, None, 400),
        ("POST", "/v1/topics", {"partitions": 1}, None, 400),
    ]
    for method, path, body, raw, expected in cases:
        status, answer = call(broker, method, path, body=body, raw=raw)
        assert status == expected, (method, path, status, answer)
        assert set(answer) == {"error_code", "message"}, answer
    # A body over the limit is refused from its Content-Length, before it is sent: the server
    # answers and closes, so a client still sending would meet a broken pipe instead of the
    # answer (urllib does); this one reads the answer first, as one sending `Expect:
    # 100-continue` would.
    status, answer = refused_before_the_body(broker, "/v1/topics/strict/records",
                                             17 * 1024 * 1024)
    assert status == 413, answer
    assert set(answer) == {"error_code", "message"}, answer


def refused_before_the_body(broker, path, length):
    """(status, JSON) the server answers to a POST's headers announcing `length` bytes,
    read before any of the body is sent."""
    import socket
    host, port = broker.http.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n"
                  f"content-length: {length}\r\n\r\n".encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = s.recv(65536)
            assert chunk, f"closed without an answer: {response!r}"
            response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        lengths = [line.split(b":")[1] for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")]
        while len(body) < int(lengths[0]):
            chunk = s.recv(65536)
            assert chunk, "the answer's body was cut short"
            body += chunk
        return status, json.loads(body)


def test_group_routes_show_what_librdkafka_committed(broker):
    from confluent_kafka import Consumer, TopicPartition
    create_topic(broker, "billing", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce("billing", value=b"x", partition=i % 2)
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "invoicer"})
    c.commit(offsets=[TopicPartition("billing", 0, 2), TopicPartition("billing", 1, 5)],
             asynchronous=False)
    c.close()

    status, body = call(broker, "GET", "/v1/groups")
    assert status == 200 and "invoicer" in [g["group"] for g in body["groups"]]
    status, body = call(broker, "GET", "/v1/groups/invoicer")
    assert status == 200, body
    assert body["members"] == [] and body["state"] == "Empty"
    rows = {(r["topic"], r["partition"]): (r["committed_offset"], r["end_offset"], r["lag"])
            for r in body["partitions"]}
    assert rows == {("billing", 0): (2, 5, 3), ("billing", 1): (5, 5, 0)}
    status, body = call(broker, "GET", "/v1/groups/nobody")
    assert status == 404 and body["error_code"] == "GROUP_ID_NOT_FOUND"


def read_sse_events(response, count, timeout=30):
    """Parses `count` events (dicts of their fields) from a streaming HTTP response."""
    events, current = [], {}
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        line = response.readline().decode().rstrip("\n")
        if line == "":
            if current:
                events.append(current)
                current = {}
            continue
        if line.startswith(":"):
            continue  # keep-alive comment
        field, _, value = line.partition(":")
        current[field] = value.lstrip(" ")
    return events


def test_sse_stream_delivers_records_live(broker):
    create_topic(broker, "ticker", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("ticker", key=b"a", value=b"before-0", partition=0)
    p.produce("ticker", key=b"b", value=b"before-1", partition=1)
    assert p.flush(15) == 0

    response = urllib.request.urlopen(broker.http + "/v1/topics/ticker/stream?from=earliest", timeout=30)
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    first = read_sse_events(response, 2)
    p.produce("ticker", value=b"live-0", partition=0)
    p.produce("ticker", value=b"\xff", partition=1)
    assert p.flush(15) == 0
    later = read_sse_events(response, 2)
    response.close()

    events = first + later
    assert [e["event"] for e in events] == ["record"] * 4
    records = [json.loads(e["data"]) for e in events]
    assert sorted(r.get("value") or r.get("value_base64") for r in records) == \
        sorted(["before-0", "before-1", "live-0", base64.b64encode(b"\xff").decode()])
    # Each id names where every partition stands once its event is handled.
    for e, r in zip(events, records):
        assert f"{r['partition']}:{r['offset'] + 1}" in e["id"].split(",")


def test_sse_stream_refuses_bad_requests(broker):
    create_topic(broker, "quiet")
    assert call(broker, "GET", "/v1/topics/quiet/stream?from=never")[0] == 400
    assert call(broker, "GET", "/v1/topics/none-such/stream")[0] == 404


def scrape(broker):
    with urllib.request.urlopen(broker.http + "/metrics", timeout=30) as response:
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_match_what_clients_did(broker):
    from confluent_kafka import Consumer, TopicPartition
    create_topic(broker, "metered")
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    produce_all(p, "metered", [(None, b"0123456789")] * 50)
    consume_all(broker, "metered", 50)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "meter-readers"})
    c.commit(offsets=[TopicPartition("metered", 0, 20)], asynchronous=False)
    c.close()

    m = scrape(broker)
    assert m['sluice_produced_records_total{topic="metered"}'] == 50
    assert m['sluice_fetched_records_total{topic="metered"}'] >= 50
    assert m['sluice_produced_bytes_total{topic="metered"}'] > 50 * 10
    assert m['sluice_partition_high_watermark{topic="metered",partition="0"}'] == 50
    assert m['sluice_partition_log_start_offset{topic="metered",partition="0"}'] == 0
    assert m['sluice_partition_size_bytes{topic="metered",partition="0"}'] == \
        m['sluice_produced_bytes_total{topic="metered"}']
    assert m['sluice_group_committed_offset{group="meter-readers",topic="metered",partition="0"}'] == 20
    assert m['sluice_group_lag{group="meter-readers",topic="metered",partition="0"}'] == 30
    assert m['sluice_requests_total{api="Produce"}'] >= 1
    assert m['sluice_request_duration_seconds_count{api="Produce"}'] == m['sluice_requests_total{api="Produce"}']
    assert m["sluice_fsync_duration_seconds_count"] >= 1  # acks=all waited for one
    assert m["sluice_connections"] >= 1  # the producer is still connected
    assert m["sluice_group_series_dropped"] == 0
    del p


def test_metrics_describe_the_process_its_disk_and_its_partitions(broker):
    import os
    import subprocess
    from confluent_kafka.admin import AdminClient
    from conftest import SLUICE_BIN
    create_topic(broker, "counted", partitions=3)
    m = scrape(broker)
    pid = broker.proc.pid
    assert m["process_cpu_seconds_total"] > 0
    rss_kib = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status")
                   if line.startswith("VmRSS:"))
    assert 0.5 < m["process_resident_memory_bytes"] / (rss_kib * 1024) < 2, (m, rss_kib)
    assert abs(m["process_open_fds"] - len(os.listdir(f"/proc/{pid}/fd"))) < 20
    assert m["process_open_fds"] < m["process_max_fds"]
    assert abs(m["process_start_time_seconds"] - time.time()) < 3600
    version = subprocess.run([str(SLUICE_BIN), "--version"], capture_output=True,
                             text=True).stdout.split()[-1]
    assert m[f'sluice_build_info{{version="{version}"}}'] == 1
    disk = os.statvfs(broker.data_dir)
    assert m["sluice_data_dir_total_bytes"] == disk.f_blocks * disk.f_frsize
    free = disk.f_bavail * disk.f_frsize
    assert abs(m["sluice_data_dir_free_bytes"] - free) < max(free * 0.05, 64 << 20)
    # A single node leads every partition, each in sync with itself.
    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    assert m["sluice_leader_partitions"] == sum(len(t.partitions) for t in topics.values())
    assert m["sluice_under_replicated_partitions"] == 0
    assert m["sluice_under_min_isr_partitions"] == 0
    assert m["sluice_offline_partitions"] == 0


def test_sse_stream_as_a_group_member_commits_and_leaves(broker):
    from confluent_kafka import Consumer, TopicPartition
    from conftest import wait_until
    create_topic(broker, "orders", partitions=2)
    produce_all(Producer({"bootstrap.servers": broker.bootstrap}), "orders",
                [(f"k{i}".encode(), f"o{i}".encode()) for i in range(6)])
    ends = {p: 0 for p in range(2)}
    for m in consume_all(broker, "orders", 6):
        ends[m.partition()] = max(ends[m.partition()], m.offset() + 1)

    response = urllib.request.urlopen(
        broker.http + "/v1/topics/orders/stream?from=earliest&group=shipping", timeout=30)
    events = read_sse_events(response, 6)
    assert sorted(json.loads(e["data"])["value"] for e in events) == [f"o{i}" for i in range(6)]

    checker = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "shipping"})
    def committed():
        tps = checker.committed([TopicPartition("orders", p) for p in range(2)], timeout=10)
        return {tp.partition: tp.offset for tp in tps} == ends
    try:
        wait_until(committed, timeout=20, what="the stream's commits")
        status, body = call(broker, "GET", "/v1/groups/shipping")
        assert len(body["members"]) == 1
        response.close()
        wait_until(lambda: call(broker, "GET", "/v1/groups/shipping")[1]["members"] == [],
                   timeout=20, what="the stream's member to leave")
    finally:
        checker.close()


def test_polling_group_members_share_the_topic_and_commit(broker):
    from confluent_kafka import Consumer, TopicPartition
    from conftest import wait_until
    create_topic(broker, "tasks", partitions=4)
    produce_all(Producer({"bootstrap.servers": broker.bootstrap}), "tasks",
                [(f"k{i}".encode(), f"t{i}".encode()) for i in range(40)])
    base = "/v1/groups/crew/members"
    ids = []
    for _ in range(2):
        status, body = call(broker, "POST", base, {"topic": "tasks", "from": "earliest"})
        assert status == 201, body
        ids.append(body["member_id"])

    seen, assigned = [], {}
    def poll_all():
        for member in ids:
            status, body = call(broker, "GET", f"{base}/{member}/records?max=7&wait_ms=200")
            assert status == 200, body
            assert len(body["records"]) <= 7
            seen.extend(r["value"] for r in body["records"])
            assigned[member] = body["assigned"]
        return len(seen) >= 40 and all(len(a) == 2 for a in assigned.values())
    wait_until(poll_all, timeout=30, what="both members to read every record")
    assert sorted(seen) == sorted(f"t{i}" for i in range(40))  # each record exactly once
    assert sorted(assigned[ids[0]] + assigned[ids[1]]) == [0, 1, 2, 3]

    for member in ids:
        assert call(broker, "POST", f"{base}/{member}/commit") == (204, None)
    checker = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "crew"})
    try:
        tps = checker.committed([TopicPartition("tasks", p) for p in range(4)], timeout=10)
        assert sum(tp.offset for tp in tps) == 40
    finally:
        checker.close()

    for member in ids:
        assert call(broker, "DELETE", f"{base}/{member}") == (204, None)
    assert call(broker, "GET", f"{base}/{ids[0]}/records")[0] == 404
    wait_until(lambda: call(broker, "GET", "/v1/groups/crew")[1]["members"] == [],
               timeout=20, what="the members to leave")
    assert call(broker, "POST", base, {"topic": "no-such-topic"})[0] == 404
    assert call(broker, "POST", base, {"topic": "tasks", "from": "whenever"})[0] == 400


def test_sigterm_with_a_stream_open_still_shuts_down_cleanly(broker):
    create_topic(broker, "open-stream")
    response = urllib.request.urlopen(broker.http + "/v1/topics/open-stream/stream", timeout=30)
    assert response.status == 200
    started = time.monotonic()
    assert broker.stop(timeout=20) == 0
    assert time.monotonic() - started < 15
    response.close()


def test_openapi_describes_every_route(broker):
    status, spec = call(broker, "GET", "/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/healthz", "/readyz", "/metrics", "/v1/cluster", "/v1/topics", "/v1/topics/{topic}",
        "/v1/topics/{topic}/records", "/v1/topics/{topic}/partitions/{partition}/records",
        "/v1/topics/{topic}/stream", "/v1/groups", "/v1/groups/{group}",
        "/v1/groups/{group}/members", "/v1/groups/{group}/members/{member}",
        "/v1/groups/{group}/members/{member}/records", "/v1/groups/{group}/members/{member}/commit",
        "/v1/topics/{topic}/configs", "/v1/topics/{topic}/partitions", "/v1/groups/{group}/reset-offsets",
        "/v1/groups/{group}/streams/{stream}/ack",
        "/v1/sql", "/v1/views", "/v1/views/{view}", "/v1/views/{view}/keys/{key}",
        "/v1/views/{view}/rows", "/v1/views/{view}/changes",
        "/v1/views/{view}/rebuild",
        "/v1/share-groups/{group}/members", "/v1/share-groups/{group}/members/{member}",
        "/v1/share-groups/{group}/members/{member}/records",
        "/v1/share-groups/{group}/members/{member}/acks",
        "/v1/users", "/v1/users/{user}", "/v1/acls",
    }


def test_schemathesis_finds_no_5xx_and_no_schema_violation(broker, tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    create_topic(broker, "fuzzed", partitions=2)
    schemathesis = Path(sys.executable).parent / "schemathesis"
    out = subprocess.run(
        [str(schemathesis), "run", broker.http + "/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance",
         "--exclude-path", "/v1/topics/{topic}/stream",  # an endless stream by design
         "--max-examples", "25", "--request-timeout", "40", "--seed", "20261123"],
        capture_output=True, timeout=600, cwd=tmp_path,
    )
    report = out.stdout.decode(errors="replace")
    assert out.returncode == 0, report[-4000:]
    assert " passed" in report and "failed" not in report.split("SUMMARY")[-1], report[-4000:]
