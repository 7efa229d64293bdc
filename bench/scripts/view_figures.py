"""Figures of the views (issue 19), on one release broker on loopback:

1. Catch-up: a view of balances over N JSON payments (10,000 accounts) built from offset 0,
   exactly once (published and committed), against a plain librdkafka consume of the same
   topic (kcat printing each offset), alternating runs; records/s and the broker's CPU seconds per million records.
   Each view run is a new view (CREATE, wait until its committed position is the topic's
   end, DROP).
2. Freshness: while a producer writes 10,000 records/s, a probe produces one payment, and as
   soon as it is acknowledged asks `GET /v1/views/balances/keys/{key}?min_position=...`;
   the time from the acknowledgement to the answer, p50 and p99.
3. `--gets`: a view of `--get-keys` rows (one payment per account), GET by a random key at
   1,000 and 10,000 requests/s, open loop over 16 keep-alive connections (bench/httpget, Go:
   latency counted from each request's scheduled time), p50/p99/p99.9.
4. `--rebuild`: `POST /v1/views/{v}/rebuild` of that view, seconds per million records.
5. `--restart`: the broker killed (`kill -9`) and started again; seconds from the start to
   the first answered GET of a row of that view (restored from its checkpoint).
6. `--produce-with-views`: produce throughput (acks=all, librdkafka) into a topic that 0, 1
   and 5 views read at the same time, alternating; and how long after the last
   acknowledgement the views had published everything.

    .venv/bin/python bench/scripts/view_figures.py [--binary target/release/sluice] \
        [--records 1000000] [--partitions 1] [--runs 3] [--probes 500] \
        [--gets] [--get-keys 1000000] [--rebuild] [--restart] [--produce-with-views]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from local import free_port, wait_for_port

TOPIC = "payments"
ACCOUNTS = 10_000
TICKS = os.sysconf("SC_CLK_TCK")


def payment(i):
    account = f"acct-{i % ACCOUNTS:05d}"
    return account.encode(), f'{{"account":"{account}","amount":{i % 1000}.{i % 100:02d}}}'


def fill(bootstrap, records, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, partitions, 1)])[TOPIC].result(timeout=30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "queue.buffering.max.messages": 1_000_000})
    for i in range(records):
        key, value = payment(i)
        while True:
            try:
                p.produce(TOPIC, key=key, value=value)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0, "records left unsent"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def call(http, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(http + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=120) as response:
        return json.loads(response.read())


def consume_all(bootstrap, records):
    """kcat (librdkafka, no per-record Python) reads the topic from the start to its end."""
    command = [shutil.which("kcat"), "-C", "-b", bootstrap, "-t", TOPIC, "-o", "beginning",
               "-e", "-q", "-f", "%o\n"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        lines = 0
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
            lines += chunk.count(b"\n")
        assert proc.wait(timeout=600) == 0, "kcat failed"
    assert lines == records, f"kcat read {lines} records, not {records}"


def build_view(http, name, records):
    call(http, "POST", "/v1/sql", {"sql": f"CREATE MATERIALIZED VIEW {name} AS SELECT account, "
                                          f"SUM(amount) AS balance, COUNT(*) AS n FROM {TOPIC} "
                                          f"GROUP BY account"})
    while True:
        described = call(http, "GET", f"/v1/views/{name}")
        if sum(described["committed_position"].values()) >= records:
            assert described["rows"] == min(ACCOUNTS, records), described["rows"]
            break
        time.sleep(0.02)


def timed(broker_pid, work):
    cpu, started = cpu_seconds(broker_pid), time.monotonic()
    work()
    return time.monotonic() - started, cpu_seconds(broker_pid) - cpu


def catch_up(args, bootstrap, http, broker_pid):
    took = {"consume": [], "view": []}
    cpu = {"consume": [], "view": []}
    for run in range(args.runs):
        name = f"balances_{run}"
        for kind, work in [("consume", lambda: consume_all(bootstrap, args.records)),
                           ("view", lambda: build_view(http, name, args.records))]:
            seconds, cpu_used = timed(broker_pid, work)
            took[kind].append(seconds)
            cpu[kind].append(cpu_used)
            print(f"run {run + 1} {kind:8} {args.records / seconds:12,.0f} records/s  "
                  f"broker CPU {cpu_used / args.records * 1e6:6.2f} s per million")
        call(http, "DELETE", f"/v1/views/{name}")
    for kind in took:
        seconds = statistics.median(took[kind])
        per_million = statistics.median(cpu[kind]) / args.records * 1e6
        print(f"median {kind:8} {args.records / seconds:12,.0f} records/s  "
              f"broker CPU {per_million:6.2f} s per million")
    print(f"view / consume: {statistics.median(took['consume']) / statistics.median(took['view']):.2f}")


def freshness(args, bootstrap, http):
    call(http, "POST", "/v1/sql", {"sql": f"CREATE MATERIALIZED VIEW balances AS SELECT account, "
                                          f"SUM(amount) AS balance, COUNT(*) AS n FROM {TOPIC} "
                                          f"GROUP BY account"})
    build_view_done = lambda: sum(call(http, "GET", "/v1/views/balances")["committed_position"]
                                  .values()) >= args.records
    while not build_view_done():
        time.sleep(0.05)
    stop = threading.Event()

    def load():
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        i, started = 0, time.monotonic()
        while not stop.is_set():
            key, value = payment(i)
            p.produce(TOPIC, key=key, value=value)
            i += 1
            ahead = i / args.load_rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            p.poll(0)
        p.flush(30)

    loader = threading.Thread(target=load)
    loader.start()
    probe = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    latencies = []
    try:
        for i in range(args.probes):
            delivered = []
            key, value = payment(i)
            probe.produce(TOPIC, key=key, value=value, on_delivery=lambda e, m: delivered.append(m))
            probe.flush(10)
            acknowledged = time.monotonic()
            m = delivered[0]
            answer = call(http, "GET", f"/v1/views/balances/keys/{key.decode()}?min_position="
                                       f"{TOPIC}:{m.partition()}:{m.offset()}&wait_ms=10000")
            latencies.append(time.monotonic() - acknowledged)
            assert answer["row"] is not None
    finally:
        stop.set()
        loader.join()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1e3
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1e3
    print(f"freshness at {args.load_rate:,} records/s: p50 {p50:.1f} ms  p99 {p99:.1f} ms  "
          f"({len(latencies)} probes; commit interval 100 ms)")


def produce_payments(bootstrap, topic, count, key_of, acks="1"):
    """Produces `count` payments to `topic`, account `key_of(i)`; returns the seconds from the
    first send to the last acknowledgement."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "queue.buffering.max.messages": 1_000_000, "acks": acks})
    started = time.monotonic()
    for i in range(count):
        account = key_of(i)
        value = f'{{"account":"{account}","amount":{i % 1000}.{i % 100:02d}}}'
        while True:
            try:
                p.produce(topic, key=account.encode(), value=value)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(300) == 0, "records left unsent"
    return time.monotonic() - started


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)


def wait_published(http, name, records, timeout=600):
    deadline = time.monotonic() + timeout
    while sum(call(http, "GET", f"/v1/views/{name}")["committed_position"].values()) < records:
        assert time.monotonic() < deadline, f"{name} did not catch up"
        time.sleep(0.02)


def by_key_view(http, topic, name):
    call(http, "POST", "/v1/sql", {"sql": f"CREATE MATERIALIZED VIEW {name} AS SELECT account, "
                                          f"SUM(amount) AS balance, COUNT(*) AS n FROM {topic} "
                                          f"GROUP BY account"})


def httpget():
    """The Go load generator, built once into target/httpget."""
    binary = Path("target/httpget").resolve()
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd="bench/httpget", check=True)
    return str(binary)


def gets(args, http):
    loader = httpget()
    for rate in (1_000, 10_000):
        url = f"{http}/v1/views/by_key/keys/acct-%07d"
        done = subprocess.run([loader, "-url", url, "-keys", str(args.get_keys), "-rate",
                               str(rate), "-seconds", "10", "-connections", "16"],
                              capture_output=True, text=True, check=True)
        result = json.loads(done.stdout)
        assert result["failures"] == 0, result
        print(f"GET by key at {rate:,}/s on {args.get_keys:,} rows: achieved "
              f"{result['achieved_per_s']:,.0f}/s  p50 {result['p50_ms']:.2f} ms  "
              f"p99 {result['p99_ms']:.2f} ms  p99.9 {result['p999_ms']:.2f} ms")


def rebuild(args, http):
    started = time.monotonic()
    call(http, "POST", "/v1/views/by_key/rebuild")
    seconds = time.monotonic() - started
    print(f"rebuild of {args.get_keys:,} records: {seconds:.2f} s "
          f"({seconds / args.get_keys * 1e6:.2f} s per million)")


def first_answer(http, deadline):
    """Seconds until `GET .../keys/acct-0000000` answers a row."""
    while time.monotonic() < deadline:
        try:
            if call(http, "GET", "/v1/views/by_key/keys/acct-0000000")["row"] is not None:
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.01)
    raise AssertionError("no answer after the restart")


def produce_with_views(args, bootstrap, http, broker_pid):
    results = {0: [], 1: [], 5: []}
    for run in range(args.runs):
        for views in results:
            topic = f"pv_{views}_{run}"
            create_topic(bootstrap, topic, args.partitions)
            names = [f"pv_{views}_{run}_view{v}" for v in range(views)]
            for name in names:
                by_key_view(http, topic, name)
            cpu = cpu_seconds(broker_pid)
            seconds = produce_payments(bootstrap, topic, args.records,
                                       lambda i: f"acct-{i % ACCOUNTS:05d}", acks="all")
            acknowledged = time.monotonic()
            for name in names:
                wait_published(http, name, args.records)
            behind = time.monotonic() - acknowledged
            cpu = cpu_seconds(broker_pid) - cpu
            results[views].append((args.records / seconds, behind, cpu))
            print(f"run {run + 1} {views} view(s): produce {args.records / seconds:10,.0f} "
                  f"records/s  views done {behind:5.2f} s after the last ack  broker CPU "
                  f"{cpu / args.records * 1e6:5.2f} s per million")
            for name in names:
                call(http, "DELETE", f"/v1/views/{name}")
    for views, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        behind = statistics.median(r[1] for r in runs)
        cpu = statistics.median(r[2] for r in runs)
        print(f"median {views} view(s): produce {rate:10,.0f} records/s  views done "
              f"{behind:5.2f} s after  broker CPU {cpu / args.records * 1e6:5.2f} s per million")


def start_broker(binary, data, port, http_port):
    broker = subprocess.Popen(
        [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
         "--http-listen", f"127.0.0.1:{http_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    wait_for_port(http_port)
    return broker


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/sluice")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--load-rate", type=int, default=10_000)
    parser.add_argument("--gets", action="store_true")
    parser.add_argument("--get-keys", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--restart", action="store_true")
    parser.add_argument("--produce-with-views", action="store_true")
    parser.add_argument("--no-catch-up", action="store_true")
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    assert shutil.which("kcat"), "kcat is not installed (apt-get install kcat)"
    port, http_port = free_port(), free_port()
    bootstrap, http = f"127.0.0.1:{port}", f"http://127.0.0.1:{http_port}"
    with tempfile.TemporaryDirectory() as data:
        broker = start_broker(binary, data, port, http_port)
        try:
            if not args.no_catch_up:
                fill(bootstrap, args.records, args.partitions)
                print(f"{args.records:,} payments, {ACCOUNTS:,} accounts, "
                      f"{args.partitions} partition(s)")
                catch_up(args, bootstrap, http, broker.pid)
                if args.probes:
                    freshness(args, bootstrap, http)
            if args.gets or args.rebuild or args.restart:
                create_topic(bootstrap, "keyed", args.partitions)
                produce_payments(bootstrap, "keyed", args.get_keys, lambda i: f"acct-{i:07d}")
                by_key_view(http, "keyed", "by_key")
                wait_published(http, "by_key", args.get_keys)
            if args.gets:
                gets(args, http)
            if args.rebuild:
                rebuild(args, http)
            if args.restart:
                broker.kill()
                broker.wait(timeout=30)
                started = time.monotonic()
                broker = start_broker(binary, data, port, http_port)
                listening = time.monotonic() - started
                first_answer(http, time.monotonic() + 300)
                print(f"restart of a {args.get_keys:,}-row view: HTTP up after "
                      f"{listening:.2f} s, first row answered after "
                      f"{time.monotonic() - started:.2f} s")
            if args.produce_with_views:
                produce_with_views(args, bootstrap, http, broker.pid)
        finally:
            broker.terminate()
            broker.wait(timeout=30)


if __name__ == "__main__":
    main()
