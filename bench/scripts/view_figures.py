"""Figures of the views (issue 19), on one release broker on loopback:

1. Catch-up: a view of balances over N JSON payments (10,000 accounts) built from offset 0,
   exactly once (published and committed), against a plain librdkafka consume of the same
   topic (kcat printing each offset), alternating runs; records/s and the broker's CPU seconds per million records.
   Each view run is a new view (CREATE, wait until its committed position is the topic's
   end, DROP).
2. Freshness: while a producer writes 10,000 records/s, a probe produces one payment, and as
   soon as it is acknowledged asks `GET /v1/views/balances/keys/{key}?min_position=...`;
   the time from the acknowledgement to the answer, p50 and p99.

    .venv/bin/python bench/scripts/view_figures.py [--binary target/release/sluice] \
        [--records 1000000] [--partitions 1] [--runs 3] [--probes 500]
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/sluice")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--load-rate", type=int, default=10_000)
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    assert shutil.which("kcat"), "kcat is not installed (apt-get install kcat)"
    port, http_port = free_port(), free_port()
    bootstrap, http = f"127.0.0.1:{port}", f"http://127.0.0.1:{http_port}"
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen(
            [binary, "serve", "--data-dir", data, "--listen", bootstrap,
             "--http-listen", f"127.0.0.1:{http_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port)
            wait_for_port(http_port)
            fill(bootstrap, args.records, args.partitions)
            print(f"{args.records:,} payments, {ACCOUNTS:,} accounts, {args.partitions} partition(s)")
            catch_up(args, bootstrap, http, broker.pid)
            if args.probes:
                freshness(args, bootstrap, http)
        finally:
            broker.terminate()
            broker.wait(timeout=30)


if __name__ == "__main__":
    main()
