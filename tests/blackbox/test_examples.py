"""The examples (examples/: bank, IoT, healthcare) as their READMEs run them: each README's
marked block of commands runs as it is, with `sluice` on the PATH and the test's broker in
SLUICE_BROKERS and SLUICE_HTTP_URL; then every answer is checked against what the test
computes itself from the example's data. And the bank under load: 1,000,000 payments with the
server killed (`kill -9`) ten times, after which every balance equals the test's own fold of
`payments` read_committed, and the fraud alerts are exactly those the test computes, none
twice."""

import json
import os
import random
import re
import subprocess
from collections import deque
from decimal import Decimal
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from conftest import SLUICE_BIN, wait_until
from helpers import create_topic, producer
from test_views import call

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
MARKER = "<!-- tests/blackbox/test_examples.py runs this block -->"


def readme_block(example):
    """The block of commands the example's README marks for this test."""
    text = (EXAMPLES / example / "README.md").read_text()
    at = text.index(MARKER)
    found = re.search(r"```sh\n(.*?)```", text[at:], re.S)
    assert found, f"{example}: no sh block after the marker"
    return found.group(1)


def run_readme(broker, example):
    """Runs the example's README block as a user would (bash, errors fatal); its stdout."""
    env = dict(os.environ, PATH=f"{Path(SLUICE_BIN).parent}:{os.environ['PATH']}",
               SLUICE_BROKERS=broker.bootstrap, SLUICE_HTTP_URL=broker.http)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block(example)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{example}'s README failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def lines(path):
    """(key, parsed JSON value or None) of an example's `key:value` data file."""
    out = []
    for line in (EXAMPLES / path).read_text().splitlines():
        key, _, value = line.partition(":")
        out.append((key, json.loads(value, parse_float=Decimal) if value else None))
    return out


def committed(broker, topic, timeout=1.0):
    """Every committed record of every partition of `topic`, read by librdkafka with
    read_committed: (partition, offset, timestamp ms, key, value bytes)."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "examples-reader",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "fetch.max.bytes": 64 << 20})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out, done = [], {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends):
            batch = consumer.consume(10_000, timeout)
            if not batch:
                break
            for m in batch:
                assert m.error() is None, m.error()
                key = m.key().decode() if m.key() is not None else None
                out.append((m.partition(), m.offset(), m.timestamp()[1], key, m.value()))
                if m.offset() + 1 >= ends[m.partition()]:
                    done.add(m.partition())
        return out
    finally:
        consumer.close()


def rows(broker, view):
    """Every row of `view`, page by page."""
    out, after = [], None
    while True:
        path = f"/v1/views/{view}/rows?limit=10000" + (f"&after={after}" if after else "")
        status, page = call(broker, "GET", path)
        assert status == 200, page
        out += page["rows"]
        if not page["more"]:
            return out
        after = out[-1][next(iter(out[-1]))]


def test_the_bank_example_runs_from_its_readme(broker):
    out = run_readme(broker, "bank")
    assert '"withdrawals":3' in out and '"account":"ada","balance":61.55' in out, out
    payments = [v for _, v in lines("bank/payments.txt")]
    payments.append({"account": "ada", "amount": Decimal("-20.50")})
    want = {}
    for p in payments:
        balance, n = want.get(p["account"], (Decimal(0), 0))
        want[p["account"]] = (balance + p["amount"], n + 1)
    got = {r["account"]: (r["balance"], r["payments"]) for r in rows(broker, "balances")}
    assert got == want
    # The alert names cy's third withdrawal.
    withdrawals = [(p, o) for p, o, _, key, value in committed(broker, "payments")
                   if key == "cy" and json.loads(value)["amount"] < 0]
    alerts = [json.loads(v, parse_float=Decimal) for *_, v in committed(broker, "fraud_alerts")]
    assert [(a["alert_id"], a["account"], a["withdrawals"], a["total"]) for a in alerts] == [
        ("payments:%d:%d" % withdrawals[2], "cy", 3, Decimal(-700))]


def test_the_iot_example_runs_from_its_readme(broker):
    out = run_readme(broker, "iot")
    readings = [v for _, v in lines("iot/readings.txt")]
    hot = sorted((key, json.loads(value)["temperature"])
                 for _, _, _, key, value in committed(broker, "overheating"))
    assert hot == sorted((r["device"], float(r["temperature"])) for r in readings
                         if r["temperature"] > 80)
    assert "fan-7 " in out and "pump-1 " in out, out
    per_device = {}
    for row in rows(broker, "per_minute"):
        n, peak = per_device.get(row["device"], (0, Decimal("-Infinity")))
        per_device[row["device"]] = (n + row["readings"], max(peak, row["peak"]))
    want = {}
    for r in readings:
        n, peak = want.get(r["device"], (0, Decimal("-Infinity")))
        want[r["device"]] = (n + 1, max(peak, r["temperature"]))
    assert per_device == want


def test_the_healthcare_example_runs_from_its_readme(broker):
    out = run_readme(broker, "healthcare")
    assert "the current state is a replay of the log" in out, out
    latest = {}
    for key, value in lines("healthcare/changes.txt"):
        latest[key] = value
    current = {key: value for key, value in latest.items() if value is not None}
    got = {r["_key"]: {k: v for k, v in r.items() if not k.startswith("_")}
           for r in rows(broker, "patients")}
    assert got == current
    wards = {}
    for value in current.values():
        if value["status"] == "admitted":
            wards[value["ward"]] = wards.get(value["ward"], 0) + 1
    assert {r["ward"]: r["patients"] for r in rows(broker, "per_ward")} == wards
    # The audit log keeps every change, the erasure included.
    assert len(committed(broker, "patient-records")) == len(lines("healthcare/changes.txt"))


PAYMENTS = 1_000_000
ACCOUNTS = 10_000
KILLS = 10
WINDOW_MS = 60_000


def fold_payments(broker):
    """The test's own fold of `payments` read_committed: balances, and the alert ids of the
    fraud rule as docs/views.md defines it (time per partition, late records skipped; the
    window ending at the account's newest withdrawal; one alert when three or more turn it
    true, again once it was false or moved past every withdrawal it held)."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bank-oracle",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "fetch.max.bytes": 64 << 20})
    balances, alerts, ends = {}, set(), {}
    times, windows, newest, firing = {}, {}, {}, {}
    try:
        partitions = consumer.list_topics("payments", timeout=10).topics["payments"].partitions
        for p in partitions:
            ends[p] = consumer.get_watermark_offsets(TopicPartition("payments", p), timeout=10)[1]
        consumer.assign([TopicPartition("payments", p, 0) for p in partitions])
        done = {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends):
            batch = consumer.consume(10_000, 10)
            assert batch, f"payments read to {done} of {ends}"
            for m in batch:
                assert m.error() is None, m.error()
                p, ts = m.partition(), m.timestamp()[1]
                if m.offset() + 1 >= ends[p]:
                    done.add(p)
                payment = json.loads(m.value(), parse_float=Decimal)
                account, amount = payment["account"], payment["amount"]
                balance, n = balances.get(account, (Decimal(0), 0))
                balances[account] = (balance + amount, n + 1)
                time = times.get(p)
                if time is not None and ts < time - WINDOW_MS:
                    continue
                times[p] = ts if time is None else max(time, ts)
                if amount >= 0:
                    continue
                window = windows.setdefault(account, deque())
                before = newest.get(account)
                window.append(ts)
                latest = ts if before is None else max(before, ts)
                newest[account] = latest
                if before is None or before < latest - WINDOW_MS:
                    firing[account] = False
                window = deque(sorted(t for t in window if t >= latest - WINDOW_MS))
                windows[account] = window
                holds = len(window) >= 3
                if holds and not firing.get(account):
                    alerts.add(f"payments:{p}:{m.offset()}")
                firing[account] = holds
        return balances, alerts, ends
    finally:
        consumer.close()


def test_the_bank_keeps_every_balance_and_alert_exactly_once_through_ten_kill_9s(broker):
    create_topic(broker, "payments", partitions=3, config={"retention.ms": "-1"})
    sql_file = (EXAMPLES / "bank" / "bank.sql").read_text()
    for statement in filter(str.strip, sql_file.split(";")):
        status, body = call(broker, "POST", "/v1/sql", {"sql": statement})
        assert status == 200, body
    rng = random.Random(19)
    per_round = PAYMENTS // KILLS
    # Event time: a millisecond per payment (about 17 minutes in all), so windows slide and
    # accounts raise alerts again; some payments are 10 s out of order, some 90 s late.
    clock = 1_800_000_000_000
    for _ in range(KILLS):
        p = producer(broker, **{"enable.idempotence": True, "linger.ms": 20,
                                "queue.buffering.max.messages": 200_000})
        for _ in range(per_round):
            account = f"acct-{rng.randrange(ACCOUNTS):05d}"
            cents = rng.randrange(-5_000, 20_000)
            value = f'{{"account":"{account}","amount":{cents // 100}.{cents % 100:02d}}}' \
                if cents >= 0 else f'{{"account":"{account}","amount":-{-cents // 100}.{-cents % 100:02d}}}'
            clock += 1
            skew = rng.random()
            timestamp = clock - (90_000 if skew < 0.005 else 10_000 if skew < 0.015 else 0)
            while True:
                try:
                    p.produce("payments", key=account.encode(), value=value,
                              timestamp=timestamp)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        assert p.flush(120) == 0, "payments not delivered"
        del p
        # Killed while the view and the rule are still catching up on this round.
        broker.kill()
        broker.start()

    balances, alerts, ends = fold_payments(broker)
    assert sum(n for _, n in balances.values()) == PAYMENTS

    def caught_up(name):
        status, described = call(broker, "GET", f"/v1/views/{name}")
        want = {f"payments:{p}": end for p, end in ends.items()}
        return status == 200 and described["committed_position"] == want
    wait_until(lambda: caught_up("balances") and caught_up("fraud_alerts"), timeout=300,
               what="the view and the rule caught up with every payment")

    got = {r["account"]: (r["balance"], r["payments"]) for r in rows(broker, "balances")}
    assert len(got) == len(balances)
    wrong = [(a, got.get(a), want) for a, want in balances.items() if got.get(a) != want]
    assert not wrong, f"{len(wrong)} balances differ from the fold, e.g. {wrong[:3]}"

    raised = [key for *_, key, _ in committed(broker, "fraud_alerts")]
    print(f"{len(balances)} balances, {len(raised)} alerts of {len(alerts)} expected")
    assert len(raised) == len(set(raised)), "an alert was raised twice"
    assert alerts, "the payments raise alerts"
    assert set(raised) == alerts, (len(raised), len(alerts),
                                   sorted(set(raised) ^ alerts)[:5])
