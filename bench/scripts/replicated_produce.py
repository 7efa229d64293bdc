"""What replication costs (the replicated-partitions issue): `acks=all` produce throughput and
latency on a three-node cluster on loopback, to a topic of one replica and to one of three,
in alternating runs; and the three processes' CPU per run.

With three replicas an `acks=all` record is answered once it is fsynced on every in-sync
replica (the leader's fsync, then each follower's fetch, append and fsync, then its next
fetch reporting the durable offset), so the figure to watch is the ratio to one replica.

One librdkafka producer (confluent-kafka), `linger.ms=5`, 100-byte values, to one partition
of each topic, all partitions of the topic led by the same broker; latency is the time from
`produce()` to the delivery report of each record of a second, paced run (2000 records/s).

    .venv/bin/python bench/scripts/replicated_produce.py [--binary target/release/sluice] \
        [--records 1000000] [--runs 3]
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_failover import Node, agreed, free_port, wait  # noqa: E402

VALUE = b"x" * 100


def create(bootstrap, name, replication_factor):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, replication_factor)])[name].result(30)

    def led():
        md = admin.list_topics(name, timeout=5).topics.get(name)
        if md is None or md.error is not None or not md.partitions:
            return None
        p = md.partitions[0]
        return p.leader if p.leader >= 0 and len(p.isrs) == replication_factor else None
    return wait(led, 30)


def throughput(bootstrap, topic, records):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 1000000})
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(err)
    p.produce(topic, VALUE, partition=0)
    assert p.flush(30) == 0
    started = time.monotonic()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, VALUE, partition=0, on_delivery=report)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0 and not failed, failed[:3]
    return records / (time.monotonic() - started)


def latencies(bootstrap, topic, seconds=5, rate=2000):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5})
    taken = []
    # Connected and the partition's leader known before the clock starts.
    p.produce(topic, VALUE, partition=0)
    assert p.flush(30) == 0

    def timed(sent):
        def report(err, _msg):
            assert err is None, err
            taken.append((time.monotonic() - sent) * 1000)
        return report
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < seconds:
        due = started + n / rate
        now = time.monotonic()
        if now < due:
            p.poll(due - now)
            continue
        p.produce(topic, VALUE, partition=0, on_delivery=timed(time.monotonic()))
        n += 1
        p.poll(0)
    assert p.flush(60) == 0
    taken.sort()
    return taken[len(taken) // 2], taken[int(len(taken) * 0.99)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/sluice")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="replicated-produce-"))
    ports = {i: free_port() for i in (1, 2, 3)}
    voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in ports.items())
    nodes = [Node(args.binary, root, i, voters, ports[i], 6000) for i in (1, 2, 3)]
    try:
        for n in nodes:
            n.start()
        wait(lambda: agreed(nodes, [1, 2, 3]))
        bootstrap = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        figures = {1: [], 3: []}
        for run in range(args.runs):
            for factor in (1, 3):
                topic = f"rf{factor}-run{run}"
                create(bootstrap, topic, factor)
                cpu = sum(n.cpu_seconds() for n in nodes)
                rate = throughput(bootstrap, topic, args.records)
                cpu = sum(n.cpu_seconds() for n in nodes) - cpu
                p50, p99 = latencies(bootstrap, topic)
                figures[factor].append((rate, p50, p99, cpu))
                print(f"run {run} replicas {factor}: {rate:,.0f} records/s, "
                      f"{rate * len(VALUE) / 1e6:.1f} MB/s of values, acks=all latency "
                      f"p50 {p50:.1f} ms p99 {p99:.1f} ms at 2000/s, "
                      f"{cpu:.1f} CPU-s for {args.records} records", flush=True)
        med = {f: [statistics.median(x[i] for x in figures[f]) for i in range(4)]
               for f in figures}
        print(f"median, 1 replica:  {med[1][0]:,.0f} records/s, p50 {med[1][1]:.1f} ms, "
              f"p99 {med[1][2]:.1f} ms, {med[1][3]:.1f} CPU-s")
        print(f"median, 3 replicas: {med[3][0]:,.0f} records/s, p50 {med[3][1]:.1f} ms, "
              f"p99 {med[3][2]:.1f} ms, {med[3][3]:.1f} CPU-s")
        print(f"3 replicas / 1: throughput x{med[3][0] / med[1][0]:.2f}, "
              f"CPU x{med[3][3] / med[1][3]:.2f}")
    finally:
        for n in nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
