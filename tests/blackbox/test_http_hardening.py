"""The HTTP API against hostile or careless callers: timeouts on slow or silent connections,
a bounded pool of broker connections for long polls, client mistakes as 4xx, and requests a
browser could be tricked into sending."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request

from helpers import create_topic
from rawwire import closed_by_peer


def send(broker, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{broker.http}{path}", data=data, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_a_group_id_too_long_is_the_callers_mistake(broker):
    create_topic(broker, "t")
    status, body = send(broker, "POST", f"/v1/groups/{'g' * 300}/members", {"topic": "t"},
                        {"Content-Type": "application/json"})
    assert 400 <= status < 500, (status, body)


def test_ten_thousand_keyless_records_go_in_one_request(broker):
    create_topic(broker, "bulk")
    records = [{"value": "v" * 100} for _ in range(10_000)]
    status, body = send(broker, "POST", "/v1/topics/bulk/records", {"records": records},
                        {"Content-Type": "application/json"})
    assert status == 200, body
    offsets = [o["offset"] for o in body["offsets"]]
    assert offsets == list(range(10_000))


def test_cross_origin_writes_and_rebound_hosts_are_refused(broker):
    create_topic(broker, "web")
    body = {"records": [{"value": "x"}]}
    status, answer = send(broker, "POST", "/v1/topics/web/records", body,
                          {"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert status == 403, answer
    status, _ = send(broker, "POST", "/v1/topics/web/records", body,
                     {"Content-Type": "application/json",
                      "Origin": f"http://127.0.0.1:{broker.http_port}"})
    assert status == 200
    status, _ = send(broker, "GET", "/v1/topics", headers={"Host": "rebind.example.com"})
    assert status == 403
    status, _ = send(broker, "GET", "/v1/topics", headers={"Host": f"localhost:{broker.http_port}"})
    assert status == 200


def test_silent_and_trickling_http_connections_are_closed(start_broker):
    broker = start_broker({"SLUICE_REQUEST_TIMEOUT_MS": "1000"})
    silent = socket.create_connection(("127.0.0.1", broker.http_port), timeout=10)
    started = time.monotonic()
    assert closed_by_peer(silent)
    assert time.monotonic() - started < 5
    trickle = socket.create_connection(("127.0.0.1", broker.http_port), timeout=10)
    closed = False
    for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n":
        try:
            trickle.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        time.sleep(0.2)
    assert closed or closed_by_peer(trickle)


def broker_connections(broker):
    with urllib.request.urlopen(f"{broker.http}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("sluice_connections "):
                return int(float(line.split()[1]))
    raise AssertionError("no sluice_connections")


def test_long_polls_share_a_bounded_pool_of_broker_connections(broker):
    create_topic(broker, "quiet")
    polls = 400
    statuses = []
    peak = [0]

    def poll():
        status, _ = send(broker, "GET", "/v1/topics/quiet/partitions/0/records?wait_ms=3000")
        statuses.append(status)

    threads = [threading.Thread(target=poll) for _ in range(polls)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        peak[0] = max(peak[0], broker_connections(broker))
        time.sleep(0.1)
    for t in threads:
        t.join(timeout=30)
    assert len(statuses) == polls
    assert set(statuses) == {200}, sorted(set(statuses))
    assert peak[0] <= 256 + 32 + 8, f"{peak[0]} broker connections for {polls} polls"
