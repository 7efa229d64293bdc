"""SQL tables and materialized views (issue 19) through the real binary: statements over
`POST /v1/sql`, rows by key with read-your-writes after a librdkafka produce, pages, the view's
compacted output topic read by librdkafka `read_committed`, its progress as an ordinary
consumer group, definitions and state surviving `kill -9`, and refusals that name the
construct."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

from confluent_kafka import Consumer, TopicPartition

from conftest import SLUICE_BIN, wait_until
from helpers import create_topic, produce_all, producer


def call(broker, method, path, body=None):
    """(status, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(broker.http + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read(), parse_float=Decimal)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read(), parse_float=Decimal)


def sql(broker, text):
    return call(broker, "POST", "/v1/sql", {"sql": text})


BALANCES = ("CREATE MATERIALIZED VIEW balances AS SELECT account, SUM(amount) AS balance, "
            "COUNT(*) AS payments FROM payments GROUP BY account")


def payments(n, accounts=5):
    """(key, JSON value) payments and the balances they fold to, computed here."""
    out, balances = [], {}
    for i in range(n):
        account = f"acct-{i % accounts}"
        amount = Decimal(i % 97) + Decimal("0.01") * (i % 100) - Decimal(20)
        # The amount as a JSON number with its exact digits (`json.dumps` would need a float).
        out.append((account.encode(), f'{{"account": "{account}", "amount": {amount}}}'))
        balance, count = balances.get(account, (Decimal(0), 0))
        balances[account] = (balance + amount, count + 1)
    return out, balances


def output_rows(broker, topic):
    """The latest value per key of `topic`, read by librdkafka with read_committed."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, low)])
        latest = {}
        while True:
            message = consumer.poll(0.5)
            if message is None:
                break
            assert message.error() is None, message.error()
            if message.value() is None:
                latest.pop(message.key().decode(), None)  # a tombstone: the row left
            else:
                latest[message.key().decode()] = json.loads(message.value(), parse_float=Decimal)
        return latest
    finally:
        consumer.close()


def test_a_view_answers_by_key_after_a_produce_and_publishes_its_changes(broker):
    create_topic(broker, "payments", partitions=3)
    records, expected = payments(600)
    status, body = sql(broker, BALANCES)
    assert status == 200, body
    assert body == {"created": "balances", "kind": "view"}

    reports = produce_all(producer(broker), "payments", records)
    last = reports[-1]
    account = records[-1][0].decode()
    # Read-your-writes: wait until the view reflects the last produced record.
    status, body = call(broker, "GET", f"/v1/views/balances/keys/{account}"
                        f"?min_position=payments:{last.partition()}:{last.offset()}&wait_ms=20000")
    assert status == 200, body
    balance, count = expected[account]
    assert body["row"] == {"account": account, "balance": balance, "payments": count}
    assert body["position"][f"payments:{last.partition()}"] > last.offset()

    # Every row, paged, equals the fold computed here, exactly (DECIMAL, never a float).
    def all_reflected():
        _, page = call(broker, "GET", "/v1/views/balances/rows?limit=1000")
        return page["position"] and sum(page["position"].values()) == len(records)
    wait_until(all_reflected, timeout=20, what="the view reflects every payment")
    rows, after = [], None
    while True:
        query = "/v1/views/balances/rows?limit=2" + (f"&after={after}" if after else "")
        status, page = call(broker, "GET", query)
        assert status == 200, page
        rows.extend(page["rows"])
        if not page["more"]:
            break
        after = page["rows"][-1]["account"]
    assert {r["account"]: (r["balance"], r["payments"]) for r in rows} == expected

    status, body = sql(broker, "SELECT account, balance FROM balances WHERE payments > 0 "
                               "ORDER BY balance DESC LIMIT 2")
    assert status == 200, body
    top = sorted(expected.items(), key=lambda kv: kv[1][0], reverse=True)[:2]
    assert body["columns"] == ["account", "balance"]
    assert body["rows"] == [{"account": a, "balance": b} for a, (b, _) in top]

    # The output topic is an ordinary compacted topic: librdkafka reads the same rows.
    wait_until(lambda: {k: (v["balance"], v["payments"]) for k, v in
                        output_rows(broker, "balances").items()} == expected,
               timeout=20, what="the output topic holds every balance")

    # Its figures are on /metrics, one series per view.
    def metric(name):
        with urllib.request.urlopen(broker.http + "/metrics", timeout=30) as response:
            text = response.read().decode()
        prefix = name + "{"
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith(prefix) and 'view="balances"' in line]
        assert len(values) == 1, (name, values)
        return values[0]
    assert metric("sluice_view_rows") == len(expected)
    assert metric("sluice_view_lag_records") == 0
    assert metric("sluice_view_commits_total") >= 1
    assert metric("sluice_view_stopped") == 0
    # The GETs above were queries of its rows; nothing is being rebuilt.
    assert metric("sluice_view_queries_total") >= 3
    assert metric("sluice_view_query_seconds_total") > 0
    assert metric("sluice_view_rebuilding") == 0
    assert metric("sluice_view_rebuild_lag_records") == 0
    state_bytes = metric("sluice_view_state_bytes")
    assert state_bytes > 0
    assert call(broker, "GET", "/v1/views/balances")[1]["state_bytes"] == state_bytes

    # Its progress is an ordinary consumer group.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "sluice-view-balances"})
    try:
        committed = consumer.committed([TopicPartition("payments", p) for p in range(3)], timeout=10)
        assert sum(tp.offset for tp in committed) == len(records)
    finally:
        consumer.close()


def test_definitions_and_rows_survive_kill_9_and_tables_keep_the_latest_row(broker):
    create_topic(broker, "patients", partitions=1, config={"cleanup.policy": "compact"})
    create_topic(broker, "payments", partitions=2)
    assert sql(broker, "CREATE TABLE current FROM TOPIC 'patients'")[0] == 200
    assert sql(broker, BALANCES)[0] == 200
    produce_all(producer(broker), "patients", [
        (b"p1", '{"ward": "a", "age": 30}'), (b"p2", '{"ward": "b", "age": 41}'),
        (b"p1", '{"ward": "c", "age": 30}'),
    ])
    records, expected = payments(200)
    produce_all(producer(broker), "payments", records)

    def row(view, key):
        return call(broker, "GET", f"/v1/views/{view}/keys/{key}")[1]["row"]

    wait_until(lambda: row("current", "p1") and row("current", "p1")["ward"] == "c",
               timeout=20, what="the table holds p1's latest row")
    wait_until(lambda: row("balances", "acct-0") == {
        "account": "acct-0", "balance": expected["acct-0"][0], "payments": expected["acct-0"][1]},
        timeout=20, what="the view folds every payment")
    produce_all(producer(broker), "patients", [(b"p2", None)])
    wait_until(lambda: row("current", "p2") is None, timeout=20, what="a tombstone deletes p2")

    broker.kill()
    broker.start()
    status, listed = call(broker, "GET", "/v1/views")
    assert status == 200
    assert {v["name"]: v["kind"] for v in listed["views"]} == {"current": "table", "balances": "view"}
    more, more_expected = payments(50, accounts=2)
    produce_all(producer(broker), "payments", more)
    total = expected["acct-0"][0] + more_expected["acct-0"][0]
    count = expected["acct-0"][1] + more_expected["acct-0"][1]
    wait_until(lambda: row("balances", "acct-0") == {
        "account": "acct-0", "balance": total, "payments": count},
        timeout=30, what="the restored view goes on from where it was, counting nothing twice")
    assert row("current", "p1")["ward"] == "c"
    assert row("current", "p2") is None

    status, described = call(broker, "GET", "/v1/views/balances")
    assert status == 200
    assert described["records_folded"] >= len(more)
    assert described["columns"] == ["account", "balance", "payments"]

    status, body = call(broker, "DELETE", "/v1/views/current")
    assert status == 200 and body == {"dropped": "current"}
    status, body = call(broker, "DELETE", "/v1/views/balances")
    assert status == 200
    assert call(broker, "GET", "/v1/views/balances")[0] == 404


def test_unsupported_sql_is_refused_by_name(broker):
    create_topic(broker, "payments")
    cases = {
        "SELECT * FROM a JOIN b ON a.x = b.x": "JOIN",
        "CREATE MATERIALIZED VIEW v AS SELECT DISTINCT account FROM payments GROUP BY account": "DISTINCT",
        "CREATE MATERIALIZED VIEW v AS SELECT account, SUM(amount) AS s FROM nowhere GROUP BY account":
            "nowhere",
        "DROP VIEW nothing": "nothing",
        "CREATE TABLE __sluice_views FROM TOPIC 'payments'": "internal",
    }
    for text, named in cases.items():
        status, body = sql(broker, text)
        assert 400 <= status < 500, (text, status, body)
        assert named in body["message"], (text, body)
    assert sql(broker, BALANCES)[0] == 200
    status, body = sql(broker, BALANCES)
    assert status == 409 and "exists" in body["message"]
    assert call(broker, "GET", "/v1/views/balances/rows?limit=0")[0] == 400
    status, body = call(broker, "POST", "/v1/sql", {"query": "x"})
    assert status == 400 and body["error_code"] == "INVALID_REQUEST"


def cli(broker, *args, input=None):
    """`sluice` with the broker's HTTP API as --http-url; the CompletedProcess (text)."""
    return subprocess.run([str(SLUICE_BIN), *args, "--http-url", broker.http],
                          input=input, capture_output=True, text=True, timeout=60)


def test_the_cli_runs_statements_and_reads_views_through_the_http_api(broker, tmp_path):
    create_topic(broker, "payments", partitions=2)
    script = tmp_path / "views.sql"
    script.write_text(BALANCES + ";\n-- the current row per patient; a comment with a ; in it\n"
                      "CREATE TABLE current FROM TOPIC 'payments';\n")
    done = cli(broker, "sql", "-f", str(script))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["created view balances", "created table current"]

    records, expected = payments(30, accounts=3)
    reports = produce_all(producer(broker), "payments", records)
    last = reports[-1]
    account = records[-1][0].decode()
    got = cli(broker, "view", "get", "balances", account,
              "--min-position", f"payments:{last.partition()}:{last.offset()}", "--format", "json")
    assert got.returncode == 0, got.stderr
    balance, count = expected[account]
    assert json.loads(got.stdout, parse_float=Decimal)["row"] == {
        "account": account, "balance": balance, "payments": count}
    text = cli(broker, "view", "get", "balances", account)
    assert text.returncode == 0, text.stderr
    words = text.stdout.split()
    assert words[:3] == ["account", account, "balance"] and Decimal(words[3]) == balance
    assert words[4:] == ["payments", str(count)]

    wait_until(lambda: sum(json.loads(cli(broker, "view", "rows", "balances", "--format", "json")
                                      .stdout)["position"].values()) == len(records),
               timeout=20, what="the view reflects every payment")
    table = cli(broker, "sql", "SELECT account, balance FROM balances ORDER BY account")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["account", "balance"]
    assert [(line.split()[0], Decimal(line.split()[1])) for line in lines[1:]] == [
        (a, b) for a, (b, _) in sorted(expected.items())]
    page = cli(broker, "view", "rows", "balances", "--after", "acct-0", "--limit", "1")
    assert page.returncode == 0, page.stderr
    assert page.stdout.splitlines()[1].split()[0] == "acct-1"
    assert "more rows follow" in page.stderr
    listed = cli(broker, "view", "list")
    assert [line.split()[:2] for line in listed.stdout.splitlines()[1:]] == [
        ["balances", "view"], ["current", "table"]]

    missing = cli(broker, "view", "get", "balances", "nobody")
    assert missing.returncode == 4 and "no row" in missing.stderr
    refused = cli(broker, "sql", "SELECT * FROM a JOIN b ON a.x = b.x")
    assert refused.returncode == 1 and "JOIN" in refused.stderr
    assert cli(broker, "view", "drop", "current").stdout.strip() == "dropped current"
    assert cli(broker, "view", "describe", "current").returncode == 4
    nobody = subprocess.run([str(SLUICE_BIN), "view", "list", "--http-url", "http://127.0.0.1:1"],
                            capture_output=True, text=True, timeout=60)
    assert nobody.returncode == 3 and "--http-url" in nobody.stderr


def test_a_change_stream_sends_the_snapshot_then_each_change_with_its_position(broker):
    from test_http import read_sse_events
    create_topic(broker, "payments", partitions=2)
    records, expected = payments(40, accounts=4)
    produce_all(producer(broker), "payments", records)
    assert sql(broker, BALANCES + " HAVING balance < 10000")[0] == 200
    wait_until(lambda: sum(call(broker, "GET", "/v1/views/balances/rows")[1]["position"].values())
               == len(records), timeout=20, what="the view reflects every payment")

    response = urllib.request.urlopen(broker.http + "/v1/views/balances/changes?snapshot=true",
                                      timeout=30)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    snapshot = read_sse_events(response, len(expected) + 1)
    rows = {json.loads(e["data"], parse_float=Decimal)["key"]:
            json.loads(e["data"], parse_float=Decimal)["row"] for e in snapshot[:-1]}
    assert all(e["event"] == "row" for e in snapshot[:-1])
    assert {k: (r["balance"], r["payments"]) for k, r in rows.items()} == expected
    assert snapshot[-1]["event"] == "position"

    # A CLI watcher beside it, from now on.
    watcher = subprocess.Popen([str(SLUICE_BIN), "view", "watch", "balances", "-n", "2",
                                "--format", "json", "--http-url", broker.http],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Its first line is the position it starts from: it listens from then on.
    first = json.loads(watcher.stdout.readline())
    assert "position" in first, first
    # One payment that changes acct-0, one that takes acct-1 out (HAVING), one new account.
    reports = produce_all(producer(broker), "payments", [
        (b"acct-0", '{"account": "acct-0", "amount": 1.50}'),
        (b"acct-1", '{"account": "acct-1", "amount": 20000}'),
        (b"acct-new", '{"account": "acct-new", "amount": 3}'),
    ])
    # Rows arrive as commits take them, until a position reflects the last payment. A commit
    # may repeat rows the snapshot showed (folded before it, committed after): with the same
    # values, never older ones.
    last = reports[-1]
    changes = {}
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, f"no position past the last payment; saw {changes}"
        [event] = read_sse_events(response, 1)
        data = json.loads(event["data"], parse_float=Decimal)
        if event["event"] == "row":
            changes[data["key"]] = data["row"]
            continue
        assert event["event"] == "position", event
        if data["position"].get(f"payments:{last.partition()}", -1) > last.offset():
            break
    assert changes.pop("acct-0")["balance"] == expected["acct-0"][0] + Decimal("1.50")
    assert changes.pop("acct-1") is None, "a row HAVING hides is a deletion"
    assert changes.pop("acct-new") == {"account": "acct-new", "balance": 3, "payments": 1}
    for key, row in changes.items():
        assert row == rows[key], f"{key} came again with other values than the snapshot's"
    response.close()

    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    watched = [first] + [json.loads(line) for line in out.splitlines()]
    assert sum(1 for w in watched if "row" in w) == 2
    # It starts from its own position: rows of the commits after it (which may repeat rows
    # folded before it, with their values then).
    assert {w["key"] for w in watched if "row" in w} <= set(expected) | {"acct-new"}



def test_a_windowed_view_keeps_one_row_per_key_and_window(broker):
    create_topic(broker, "readings", partitions=2)
    status, body = sql(broker, "CREATE MATERIALIZED VIEW per_minute AS SELECT sensor, "
                               "AVG(t) AS mean, COUNT(*) AS n FROM readings "
                               "GROUP BY sensor, TUMBLE(_ts, INTERVAL '1' MINUTE)")
    assert status == 200, body
    minute = 60_000
    base = 1_800_000_000_000 - 1_800_000_000_000 % minute
    # (sensor, timestamp, temperature): window edges, and one reading arriving late.
    readings = [("s1", base, 20), ("s1", base + minute - 1, 22), ("s1", base + minute, 30),
                ("s2", base + 5, 10), ("s1", base + 30_000, 24)]
    p = producer(broker)
    for sensor, ts, t in readings:
        produce_all(p, "readings", [(sensor.encode(), json.dumps({"sensor": sensor, "t": t}))],
                    timestamp=ts)
    want = {("s1", base): (Decimal(22), 3), ("s1", base + minute): (Decimal(30), 1),
            ("s2", base): (Decimal(10), 1)}

    def rows():
        _, page = call(broker, "GET", "/v1/views/per_minute/rows?limit=100")
        return {(r["sensor"], r["window_start"]): (r["mean"], r["n"]) for r in page["rows"]}
    wait_until(lambda: rows() == want, timeout=20, what=f"the windows {want}")
    _, page = call(broker, "GET", "/v1/views/per_minute/rows?limit=1")
    first = page["rows"][0]
    assert first["window_end"] - first["window_start"] == minute
    key = json.dumps(["s1", base, base + minute], separators=(",", ":"))
    status, body = call(broker, "GET", "/v1/views/per_minute/keys/" + urllib.parse.quote(key))
    assert status == 200 and body["row"]["n"] == 3, body


def test_a_windows_retention_deletes_old_windows_and_keeps_them_deleted_through_kill_9(broker):
    create_topic(broker, "readings", partitions=2)
    status, body = sql(broker, "CREATE MATERIALIZED VIEW per_minute "
                               "WITH (retention = INTERVAL '3' MINUTE) AS SELECT sensor, "
                               "COUNT(*) AS n FROM readings "
                               "GROUP BY sensor, TUMBLE(_ts, INTERVAL '1' MINUTE)")
    assert status == 200, body
    minute = 60_000
    base = 1_800_000_000_000 - 1_800_000_000_000 % minute
    p = producer(broker)

    def read(ts, sensor="s1"):
        produce_all(p, "readings", [(sensor.encode(), json.dumps({"sensor": sensor}))],
                    timestamp=ts)

    def rows():
        _, page = call(broker, "GET", "/v1/views/per_minute/rows?limit=100")
        return {(r["sensor"], (r["window_start"] - base) // minute): r["n"] for r in page["rows"]}

    def skipped():
        return call(broker, "GET", "/v1/views/per_minute")[1]["records_skipped"]

    read(base)
    read(base + minute)
    wait_until(lambda: rows() == {("s1", 0): 1, ("s1", 1): 1}, timeout=20, what="two windows")
    # The view's time moves to 4 minutes past base: windows ending 3 minutes before go.
    read(base + 4 * minute + 1)
    wait_until(lambda: rows() == {("s1", 1): 1, ("s1", 4): 1}, timeout=20,
               what="the first window deleted by the retention")
    wait_until(lambda: "s1" not in {k for k, v in output_rows(broker, "per_minute").items()
                                    if v["window_start"] == base},
               timeout=20, what="a tombstone for the deleted window in the output topic")
    # A late reading for a deleted window is skipped; one for a kept window counts.
    read(base + 10)
    read(base + minute + 5)
    wait_until(lambda: rows() == {("s1", 1): 2, ("s1", 4): 1} and skipped() == 1, timeout=20,
               what="the late reading skipped and the kept window counting")

    # The view's time survives a kill -9: the deleted window stays deleted.
    broker.kill()
    broker.start()
    read(base + 20)
    read(base + minute + 7)
    wait_until(lambda: rows() == {("s1", 1): 3, ("s1", 4): 1}, timeout=30,
               what="the restored view skipping the deleted window's reading")
    assert {k: v["n"] for k, v in output_rows(broker, "per_minute").items()} == \
        {json.dumps(["s1", base + w * minute, base + (w + 1) * minute], separators=(",", ":")): n
         for (_, w), n in rows().items()}
    status, body = sql(broker, "CREATE MATERIALIZED VIEW no_window WITH (retention = "
                               "INTERVAL '1' DAY) AS SELECT sensor, COUNT(*) AS n FROM readings "
                               "GROUP BY sensor")
    assert status == 400 and "no TUMBLE or HOP window" in body["message"], body
    status, body = sql(broker, "CREATE MATERIALIZED VIEW other WITH (ttl = INTERVAL '1' DAY) "
                               "AS SELECT sensor, COUNT(*) AS n FROM readings GROUP BY sensor")
    assert status == 400 and "ttl" in body["message"], body


def committed_total(broker, view):
    """How many source records `view` has committed, over all partitions."""
    return sum(call(broker, "GET", f"/v1/views/{view}")[1]["committed_position"].values())


def balances_over(broker, n):
    """`n` payments produced to `payments`, and the view `balances` once it has committed them
    all; the payments and the balances they fold to."""
    records, expected = payments(n)
    produce_all(producer(broker), "payments", records)
    assert sql(broker, BALANCES)[0] == 200
    wait_until(lambda: committed_total(broker, "balances") == len(records), timeout=60,
               what="the view commits it all")
    return records, expected


def test_a_rebuild_replays_the_source_beside_the_view_and_publishes_nothing_again(broker):
    from helpers import watermarks
    create_topic(broker, "payments", partitions=2)
    records, expected = balances_over(broker, 300)
    published = watermarks(broker, "balances", 0)

    done = cli(broker, "view", "rebuild", "balances")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rebuilt balances"
    wait_until(lambda: call(broker, "GET", "/v1/views/balances")[1]["state"] == "running",
               timeout=20, what="the view to run again")
    assert watermarks(broker, "balances", 0) == published, "the replay published changes again"
    status, page = call(broker, "GET", "/v1/views/balances/rows?limit=1000")
    assert {r["account"]: (r["balance"], r["payments"]) for r in page["rows"]} == expected

    # It goes on from the rebuilt state.
    more, _ = payments(20, accounts=1)
    produce_all(producer(broker), "payments", more)
    want = (expected["acct-0"][0] + sum(Decimal(json.loads(v, parse_float=Decimal)["amount"])
                                        for _, v in more), expected["acct-0"][1] + len(more))
    wait_until(lambda: (lambda r: (r["balance"], r["payments"]))(
        call(broker, "GET", "/v1/views/balances/keys/acct-0")[1]["row"]) == want,
        timeout=20, what="the rebuilt view to fold new payments")
    assert call(broker, "POST", "/v1/views/nothing/rebuild")[0] == 404


def test_create_or_replace_builds_beside_the_old_view_which_answers_until_the_swap(broker):
    import threading
    from helpers import watermarks
    create_topic(broker, "payments", partitions=2)
    records, _ = balances_over(broker, 100_000)
    old_end = watermarks(broker, "balances", 0)[1]

    # Asked all along while the new definition is built: every answer is a row, the old one
    # until the swap.
    answers, replacing, done = [], threading.Event(), threading.Event()

    rebuild_lags = []

    def ask():
        while not done.is_set():
            status, body = call(broker, "GET", "/v1/views/balances/keys/acct-0")
            answers.append((replacing.is_set(), status, sorted((body.get("row") or {}).keys())))
            rebuild_lags.append(call(broker, "GET", "/v1/views/balances")[1].get(
                "rebuild_lag_records"))
    asker = threading.Thread(target=ask)
    asker.start()
    try:
        replacing.set()
        status, body = sql(broker, "CREATE OR REPLACE MATERIALIZED VIEW balances AS "
                                   "SELECT account, MAX(amount) AS top, COUNT(*) AS payments "
                                   "FROM payments WHERE account <> 'acct-4' GROUP BY account")
        replacing.clear()
    finally:
        done.set()
        asker.join(timeout=60)
    assert status == 200, body
    assert body == {"created": "balances", "kind": "view", "replaced": True}
    old_shape, new_shape = ["account", "balance", "payments"], ["account", "payments", "top"]
    during = [a for a in answers if a[0]]
    assert during, "no answer was asked for while the new definition was built"
    assert all(status == 200 and keys in (old_shape, new_shape) for _, status, keys in answers), \
        [a for a in answers if a[1] != 200 or a[2] not in (old_shape, new_shape)][:5]
    assert during[0][2] == old_shape, "the old definition did not answer while the new was built"
    assert any(lag is not None for lag in rebuild_lags), "the build's progress was never shown"
    assert call(broker, "GET", "/v1/views/balances")[1]["rebuild_lag_records"] is None

    # The new rows, from the fold of the whole source; the output topic shows them, the
    # account the new definition leaves out deleted.
    wanted = {}
    for key, value in records:
        row = json.loads(value, parse_float=Decimal)
        if row["account"] == "acct-4":
            continue
        top, n = wanted.get(row["account"], (None, 0))
        wanted[row["account"]] = (row["amount"] if top is None else max(top, row["amount"]), n + 1)
    wait_until(lambda: call(broker, "GET", "/v1/views/balances")[1]["state"] == "running",
               timeout=30, what="the new definition to run")
    status, page = call(broker, "GET", "/v1/views/balances/rows?limit=1000")
    assert {r["account"]: (r["top"], r["payments"]) for r in page["rows"]} == wanted
    shown = {}

    def output_shows_new_rows():
        shown.clear()
        shown.update(output_rows(broker, "balances"))
        return {k: (v.get("top"), v["payments"]) for k, v in shown.items()} == wanted
    try:
        wait_until(output_shows_new_rows, timeout=30, what="the output topic to show the new rows")
    except AssertionError as e:
        # What a read_committed reader can see (the last stable offset) against the end.
        stable = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe",
                           "isolation.level": "read_committed"})
        try:
            lso = stable.get_watermark_offsets(TopicPartition("balances", 0), timeout=10)
        finally:
            stable.close()
        raise AssertionError(f"{e}: shown {shown}, read_committed ends {lso}, "
                             f"ends {watermarks(broker, 'balances', 0)}\n{broker.log()[-4000:]}")
    # One record per account at the swap: four new rows and a tombstone.
    assert watermarks(broker, "balances", 0)[1] - old_end <= len(wanted) + 1 + 1, \
        "more was published at the swap than the difference (and its commit marker)"
    assert committed_total(broker, "balances") == len(records), \
        "the group's offsets are the new state's"

    # It goes on from the new state.
    more = [(b"acct-0", '{"account": "acct-0", "amount": 1000.5}')]
    produce_all(producer(broker), "payments", more)
    wait_until(lambda: call(broker, "GET", "/v1/views/balances/keys/acct-0")[1]["row"]["top"]
               == Decimal("1000.5"), timeout=20, what="the new definition to fold a new payment")


def committed(broker, topic, partitions):
    """Every committed record of `topic` as (partition, offset, key, value), read by librdkafka
    with read_committed."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "stream-reader",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out = []
        while True:
            message = consumer.poll(1.0)
            if message is None:
                break
            assert message.error() is None, message.error()
            key = message.key().decode() if message.key() is not None else None
            out.append((message.partition(), message.offset(), key,
                        json.loads(message.value(), parse_float=Decimal)))
        return out
    finally:
        consumer.close()


def expected_alerts(reports, readings, size_ms):
    """The alerts of `... WINDOW SLIDING (SIZE size_ms) WHERE t > 30 GROUP BY sensor HAVING
    COUNT(*) >= 2`, for readings whose times only grow per sensor: alert id -> (sensor, n)."""
    alerts, windows, firing = {}, {}, {}
    for message, (sensor, ts, t) in zip(reports, readings):
        if t <= 30:
            continue
        window = [x for x in windows.get(sensor, []) if x >= ts - size_ms] + [ts]
        windows[sensor] = window
        holds = len(window) >= 2
        if holds and not firing.get(sensor):
            alerts[f"readings:{message.partition()}:{message.offset()}"] = (sensor, len(window))
        firing[sensor] = holds
    return alerts


def test_streams_filter_rekey_and_raise_each_alert_once_through_kill_9(broker):
    create_topic(broker, "readings", partitions=2)
    statements = [
        "CREATE STREAM hot AS SELECT sensor, site, t FROM readings WHERE t > 30 PARTITION BY site",
        "CREATE STREAM overheat AS SELECT sensor, COUNT(*) AS n, MAX(t) AS top FROM readings "
        "WINDOW SLIDING (SIZE 60 SECONDS) WHERE t > 30 GROUP BY sensor HAVING COUNT(*) >= 2",
        "CREATE MATERIALIZED VIEW hot_per_site AS SELECT site, COUNT(*) AS n FROM hot GROUP BY site",
    ]
    for text in statements:
        status, body = sql(broker, text)
        assert status == 200, (text, body)
    status, body = sql(broker, "SHOW STREAMS")
    assert status == 200 and sorted(s["name"] for s in body["streams"]) == ["hot", "overheat"]
    status, body = sql(broker, "SELECT * FROM hot")
    assert status == 400 and "is a stream" in body["message"], body

    base = 1_800_000_000_000
    sensors = {"s1": "north", "s2": "north", "s3": "south", "s4": "east"}

    def readings(start, n):
        """(sensor, timestamp, t): every 20 s per sensor, hot in bursts."""
        return [(sensor, base + (start + i) * 20_000, 25 + ((start + i) * 7 + j * 5) % 12)
                for i in range(n) for j, sensor in enumerate(sensors)]

    def produce(batch):
        p = producer(broker)
        reports = []
        for sensor, ts, t in batch:
            value = json.dumps({"sensor": sensor, "site": sensors[sensor], "t": t})
            reports += produce_all(p, "readings", [(sensor.encode(), value)], timestamp=ts)
        return reports

    first = readings(0, 30)
    reports = produce(first)
    broker.kill()
    broker.start()
    second = readings(30, 30)
    reports += produce(second)
    everything = first + second

    hot_expected = sorted((sensors[s], s, t) for s, _, t in everything if t > 30)
    alerts_expected = expected_alerts(reports, everything, 60_000)
    assert alerts_expected, "the readings raise alerts"

    def hot():
        return committed(broker, "hot", 2)
    wait_until(lambda: len(hot()) >= len(hot_expected), timeout=30,
               what=f"{len(hot_expected)} records in hot")
    written = hot()
    assert sorted((key, v["sensor"], v["t"]) for _, _, key, v in written) == hot_expected
    partitions_of_site = {}
    for partition, _, key, _ in written:
        partitions_of_site.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions_of_site.values()), partitions_of_site

    def alerts():
        return committed(broker, "overheat", 2)
    wait_until(lambda: len(alerts()) >= len(alerts_expected), timeout=30,
               what=f"{len(alerts_expected)} alerts")
    raised = alerts()
    ids = [key for _, _, key, _ in raised]
    assert len(ids) == len(set(ids)), "an alert raised twice"
    assert {key: (v["sensor"], v["n"]) for _, _, key, v in raised} == alerts_expected
    assert all(v["alert_id"] == key and v["window_end"] - v["window_start"] == 60_000
               for _, _, key, v in raised)

    per_site = {}
    for site, _, _ in hot_expected:
        per_site[site] = per_site.get(site, 0) + 1

    def counted():
        _, page = call(broker, "GET", "/v1/views/hot_per_site/rows")
        return {r["site"]: r["n"] for r in page["rows"]}
    wait_until(lambda: counted() == per_site, timeout=30, what=f"the view over hot: {per_site}")

    status, body = call(broker, "DELETE", "/v1/views/hot")
    assert status == 409 and "hot_per_site" in body["message"], body
    assert call(broker, "DELETE", "/v1/views/hot_per_site")[0] == 200
    assert sql(broker, "DROP STREAM hot")[0] == 200
    status, described = call(broker, "GET", "/v1/views/overheat")
    assert status == 200 and described["kind"] == "stream", described
    assert described["columns"] == ["alert_id", "sensor", "window_start", "window_end", "n", "top"]


def test_a_view_worker_keeps_views_apart_from_the_broker(start_broker, tmp_path):
    from conftest import free_port
    broker = start_broker(extra_env={"SLUICE_VIEWS": "off"})
    create_topic(broker, "payments", partitions=2)
    status, body = sql(broker, BALANCES)
    assert status == 404 and body["error_code"] == "VIEWS_OFF", body

    port = free_port()
    worker_url = f"http://127.0.0.1:{port}"

    class Worker:
        """`sluice view worker` against the broker, with its own HTTP API."""
        http = worker_url
        proc = None

        def start(self):
            log = open(tmp_path / "worker.log", "ab")
            self.proc = subprocess.Popen(
                [str(SLUICE_BIN), "view", "worker", "--brokers", broker.bootstrap,
                 "--http-listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "worker")],
                stdout=log, stderr=subprocess.STDOUT)

            def answers():
                try:
                    return call(self, "GET", "/v1/views")[0] == 200
                except OSError:
                    return False
            wait_until(answers, timeout=60, what="the worker's HTTP API")

    worker = Worker()
    worker.start()
    try:
        status, body = sql(worker, BALANCES)
        assert status == 200, body
        records, expected = payments(300)
        reports = produce_all(producer(broker), "payments", records)
        last = reports[-1]
        position = f"payments:{last.partition()}:{last.offset()}"
        key = last.key().decode()
        status, body = call(worker, "GET", f"/v1/views/balances/keys/{key}?min_position="
                                           f"{urllib.parse.quote(position)}&wait_ms=10000")
        assert status == 200, body
        assert body["row"]["balance"] == expected[key][0]

        worker.proc.kill()
        worker.proc.wait(timeout=10)
        more, more_expected = payments(100, accounts=2)
        produce_all(producer(broker), "payments", more)
        worker.start()
        total = expected["acct-0"][0] + more_expected["acct-0"][0]
        count = expected["acct-0"][1] + more_expected["acct-0"][1]

        def row():
            return call(worker, "GET", "/v1/views/balances/keys/acct-0")[1]["row"]
        wait_until(lambda: row() == {"account": "acct-0", "balance": total, "payments": count},
                   timeout=30, what="the restarted worker goes on, counting nothing twice")
        # The view's output and progress are the broker's: its topic and its group.
        assert output_rows(broker, "balances")["acct-0"]["payments"] == count
        listed = subprocess.run([str(SLUICE_BIN), "view", "list"], capture_output=True, text=True,
                                env={**os.environ, "SLUICE_HTTP_URL": worker_url}, timeout=30)
        assert listed.returncode == 0 and "balances" in listed.stdout, listed
        worker.proc.terminate()
        assert worker.proc.wait(timeout=20) == 0
    finally:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)
