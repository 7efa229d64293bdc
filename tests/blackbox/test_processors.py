"""Stream processors that people run against Kafka, run unchanged against Sluice, each in its
own virtual environment or npm install (scripts/test.sh makes them): Quix Streams (a stateful
application, exactly once, with its changelog topic) and faust-streaming (a table with its
changelog, at least once), each killed (`kill -9`) midway and started again with its local
state deleted, so that it restores from its changelog; and KafkaJS copying a topic in
transactions, killed and started again. Every output is read back `read_committed` by
librdkafka: each input counted once, no output twice. (Kafka Streams, with exactly_once_v2 and
its changelog and repartition topics: test_java_clients.py.)"""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from conftest import REPO, wait_until
from helpers import create_topic, produce_all, producer
from test_examples import committed

PROCESSORS = Path(__file__).resolve().parent / "processors"
PAYMENTS = 3000
ACCOUNTS = 7


def venv_python(name):
    python = REPO / name / "bin" / "python"
    assert python.exists(), f"{python} missing: scripts/test.sh installs it"
    return str(python)


def payments(broker):
    """Produces the payments (keyed by account; cents 1-50, a sequence number); returns each
    account's running totals in order."""
    create_topic(broker, "payments", partitions=2)
    records, totals, running = [], {}, {}
    for i in range(PAYMENTS):
        account = f"acct-{i % ACCOUNTS}"
        cents = i % 50 + 1
        records.append((account.encode(), json.dumps({"account": account, "cents": cents,
                                                      "seq": i})))
        running[account] = running.get(account, 0) + cents
        totals.setdefault(account, []).append(running[account])
    produce_all(producer(broker), "payments", records)
    return totals


class App:
    """A processor's process, started, killed with SIGKILL, stopped."""

    def __init__(self, argv, log, env=None):
        self.argv, self.log, self.env, self.proc = argv, log, env, None

    def start(self):
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(self.env or {})},
                                     start_new_session=True)

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive_or_log(self):
        assert self.proc.poll() is None, Path(self.log).read_text()[-4000:]
        return True


def totals_written(broker, topic):
    """Each account's totals as `topic` holds them (JSON records), read_committed, in order."""
    out = {}
    for _, _, _, _, value in sorted(committed(broker, topic), key=lambda r: (r[0], r[1])):
        record = json.loads(value)
        out.setdefault(record["account"], []).append(record["total"])
    return out


def changelog_totals(broker, topic):
    """Each account's totals as a faust table's changelog holds them (key: the account, value:
    the total, both JSON), read_committed, in order."""
    out = {}
    for _, _, _, key, value in sorted(committed(broker, topic), key=lambda r: (r[0], r[1])):
        out.setdefault(json.loads(key), []).append(json.loads(value))
    return out


def run_killed_and_restored(broker, app, state_dir, read, want):
    """Starts `app`, kills it once a third of the totals are committed (`read` gives them),
    deletes its local state, starts it again and waits for every total; each must be there
    once, in order."""
    app.start()
    try:
        wait_until(lambda: app.alive_or_log() and
                   sum(map(len, read().values())) >= PAYMENTS // 3,
                   timeout=120, interval=0.5, what="a third of the totals committed")
        app.kill()
        shutil.rmtree(state_dir, ignore_errors=True)
        app.start()
        wait_until(lambda: app.alive_or_log() and sum(map(len, read().values())) >= PAYMENTS,
                   timeout=240, interval=0.5, what="every total committed")
        got = read()
        for account, totals in want.items():
            written = got.get(account, [])
            first = next((i for i, (a, b) in enumerate(zip(written, totals)) if a != b),
                         min(len(written), len(totals)))
            assert written == totals, (
                f"{account}: {len(written)} totals written, {len(totals)} wanted; from index "
                f"{first} written {written[first:first + 5]}, wanted {totals[first:first + 5]}")
    finally:
        app.stop()


def test_quix_streams_keeps_state_exactly_once_through_kill_9_and_a_lost_state_dir(broker,
                                                                                   tmp_path):
    want = payments(broker)
    state = tmp_path / "quix-state"
    app = App([venv_python(".venv-quix"), str(PROCESSORS / "quix_balances.py"),
               broker.bootstrap, str(state)], tmp_path / "quix.log")
    run_killed_and_restored(broker, app, state, lambda: totals_written(broker, "quix-totals"),
                            want)


def test_faust_restores_its_table_from_the_changelog_after_kill_9(broker, tmp_path):
    """faust (at least once, its default): killed once a third of the payments are in its
    table, its data directory deleted, started again: the table comes back from its
    changelog, so no account's total ever starts again from zero, and every payment counts
    (at least once: a crash may count the last ones twice, as faust says)."""
    want = payments(broker)
    state = tmp_path / "faust-data"
    app = App([venv_python(".venv-faust"), str(PROCESSORS / "faust_balances.py"),
               broker.bootstrap, str(state), "worker", "--without-web", "-l", "info"],
              tmp_path / "faust.log")

    def table():
        return changelog_totals(broker, "faust-balances-totals-changelog")
    app.start()
    try:
        wait_until(lambda: app.alive_or_log() and sum(map(len, table().values())) >= PAYMENTS // 3,
                   timeout=120, interval=0.5, what="a third of the payments in the table")
        app.kill()
        shutil.rmtree(state, ignore_errors=True)
        app.start()
        wait_until(lambda: app.alive_or_log() and
                   all(table().get(a, [0])[-1] >= totals[-1] for a, totals in want.items()),
                   timeout=240, interval=0.5, what="every payment in the table")
        for account, totals in table().items():
            assert totals == sorted(totals), f"{account}'s total went back: restored from nothing"
    finally:
        app.stop()


def test_kafkajs_copies_a_topic_in_transactions_exactly_once_through_kill_9(broker, tmp_path):
    create_topic(broker, "js-in", partitions=2)
    create_topic(broker, "js-out", partitions=2)
    records = [(f"k{i}".encode(), f"v{i:05d}") for i in range(2000)]
    produce_all(producer(broker), "js-in", records)
    js = REPO / "tests" / "clients" / "js"
    assert (js / "node_modules").exists(), "npm packages not installed; scripts/test.sh does"
    app = App(["node", str(js / "main.js"), "kafkajs-txncopy", "--brokers", broker.bootstrap,
               "--topic", "js-in", "--output", "js-out", "--group", "js-copier",
               "--timeout-ms", "600000"], tmp_path / "js.log")

    def copies():
        return [value.decode() for *_, value in committed(broker, "js-out")]
    app.start()
    try:
        wait_until(lambda: app.alive_or_log() and len(copies()) >= 300, timeout=120,
                   interval=0.5, what="the first copies")
        app.kill()
        app.start()
        wait_until(lambda: app.alive_or_log() and len(copies()) >= len(records), timeout=120,
                   interval=0.5, what="every copy")
        assert sorted(copies()) == sorted(f"copy-{v}" for _, v in records)
    finally:
        app.stop()
