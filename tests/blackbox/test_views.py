"""SQL tables and materialized views (issue 19) through the real binary: statements over
`POST /v1/sql`, rows by key with read-your-writes after a librdkafka produce, pages, the view's
compacted output topic read by librdkafka `read_committed`, its progress as an ordinary
consumer group, definitions and state surviving `kill -9`, and refusals that name the
construct."""

import json
import urllib.error
import urllib.request
from decimal import Decimal

from confluent_kafka import Consumer, TopicPartition

from conftest import wait_until
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
    }
    for text, named in cases.items():
        status, body = sql(broker, text)
        assert 400 <= status < 500, (text, status, body)
        assert named in body["message"], (text, body)
    assert sql(broker, BALANCES)[0] == 200
    status, body = sql(broker, BALANCES)
    assert status == 409 and "exists" in body["message"]
    status, body = call(broker, "POST", "/v1/sql", {"query": "x"})
    assert status == 400 and body["error_code"] == "INVALID_REQUEST"
