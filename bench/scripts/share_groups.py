"""Share groups (issue 18) against a classic group, through librdkafka (confluent-kafka 2.16),
each consumer in a process of its own, on one running broker:

- records/s of 8 share consumers (implicit acknowledgement) reading a 2-partition topic, and of
  a classic group of 8 on the same kind of topic (2 of its members get a partition);
- the same share group with `share.key.ordering=true` (records spread over `--keys` keys: at
  most that many are in flight at once);
- acknowledgement latency: explicit mode, one `commit_sync` of a poll's records, p50 and p99;
- redelivery delay: records released with `share.retry.backoff.ms=200`, how long after the
  release they come back, against the 200 ms asked.

Runs alternate (share, classic, keyed) `--runs` times; medians are printed with the range.
With `--peer KAFKA_BOOTSTRAP` the share and classic groups and the acknowledgement latency are
measured on Apache Kafka too, alternating with Sluice run by run (`sluice-bench --peer kafka
--serve` starts both and prints their addresses).

    .venv/bin/python bench/scripts/share_groups.py BOOTSTRAP [--records 200000] [--runs 3] [--keys 100] [--peer KAFKA]
"""

import argparse
import multiprocessing as mp
import statistics
import time
import uuid

from confluent_kafka import AcknowledgeType, Consumer, Producer, ShareConsumer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)

CONSUMERS = 8
PARTITIONS = 2


def create(bootstrap, partitions=PARTITIONS):
    topic = f"share-bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
    return topic


def group_configs(bootstrap, group, **configs):
    entries = [ConfigEntry(k.replace("_", "."), str(v), incremental_operation=AlterConfigOpType.SET)
               for k, v in configs.items()]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.GROUP, group, incremental_configs=entries)
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(30)


def produce(bootstrap, topic, n, keys=100, size=100):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10000})
    value = b"x" * size
    for i in range(n):
        while True:
            try:
                p.produce(topic, key=b"k%d" % (i % keys), value=value)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def count(got, total, counter, first, stop):
    """Adds `got` records; the first ones start the clock, the last stop the run."""
    if not got:
        return
    with counter.get_lock():
        if counter.value == 0:
            first.value = time.monotonic()
        counter.value += got
        if counter.value >= total:
            stop.set()


def share_worker(bootstrap, group, topic, total, counter, first, start, stop):
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group})
    c.subscribe([topic])
    start.wait()
    while not stop.is_set():
        got = sum(1 for m in c.poll(0.2) if m.error() is None)
        count(got, total, counter, first, stop)
    c.commit_sync(30)
    c.close()


def classic_worker(bootstrap, group, topic, total, counter, first, start, stop):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": True})
    c.subscribe([topic])
    start.wait()
    while not stop.is_set():
        got = sum(1 for m in c.consume(500, 0.2) if m.error() is None)
        count(got, total, counter, first, stop)
    c.close()


def throughput(bootstrap, worker, n, key_ordering=False, keys=100):
    """Records/s of CONSUMERS processes of `worker` reading `n` fresh records, from the first
    records received to the last."""
    topic = create(bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    # Only what the group needs, so that the same run works on Apache Kafka, which has no
    # `share.key.ordering`.
    keyed = {"share_key_ordering": "true"} if key_ordering else {}
    group_configs(bootstrap, group, share_auto_offset_reset="earliest", **keyed)
    produce(bootstrap, topic, n, keys)
    ctx = mp.get_context("spawn")
    counter, first = ctx.Value("q", 0), ctx.Value("d", 0.0)
    start, stop = ctx.Event(), ctx.Event()
    procs = [ctx.Process(target=worker,
                         args=(bootstrap, group, topic, n, counter, first, start, stop))
             for _ in range(CONSUMERS)]
    for p in procs:
        p.start()
    time.sleep(2)  # the processes start and subscribe
    start.set()
    finished = stop.wait(300)
    # From the first records to the last: the time a group takes to form (a classic group
    # waits `group.initial.rebalance.delay.ms`, 3 s by Kafka's default, which Sluice keeps
    # and the Kafka peer sets to 0) is left out on both brokers.
    elapsed = time.monotonic() - first.value
    stop.set()
    for p in procs:
        p.join(60)
    assert finished, f"only {counter.value} of {n} records in 300 s"
    return n / elapsed


def ack_latency(bootstrap, n=20000):
    """Seconds of each `commit_sync` of one poll's records (explicit acknowledgement)."""
    topic = create(bootstrap, 1)
    group = f"acks-{uuid.uuid4().hex[:8]}"
    group_configs(bootstrap, group, share_auto_offset_reset="earliest")
    produce(bootstrap, topic, n)
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "share.acknowledgement.mode": "explicit"})
    c.subscribe([topic])
    seen, times = 0, []
    deadline = time.monotonic() + 120
    while seen < n and time.monotonic() < deadline:
        got = [m for m in c.poll(0.5) if m.error() is None]
        if not got:
            continue
        for m in got:
            c.acknowledge(m, AcknowledgeType.ACCEPT)
        t = time.monotonic()
        c.commit_sync(30)
        times.append(time.monotonic() - t)
        seen += len(got)
    c.close()
    return times


def redelivery_delays(bootstrap, backoff_ms=200, records=50):
    """Seconds between releasing each record and its coming back."""
    topic = create(bootstrap, 1)
    group = f"retry-{uuid.uuid4().hex[:8]}"
    group_configs(bootstrap, group, share_auto_offset_reset="earliest",
                  share_retry_backoff_ms=backoff_ms, share_retry_backoff_max_ms=backoff_ms)
    produce(bootstrap, topic, records)
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "share.acknowledgement.mode": "explicit"})
    c.subscribe([topic])
    released, delays = {}, []
    deadline = time.monotonic() + 60
    while len(delays) < records and time.monotonic() < deadline:
        got = [m for m in c.poll(0.05) if m.error() is None]
        now = time.monotonic()
        for m in got:
            if m.offset() in released:
                delays.append(now - released.pop(m.offset()))
                c.acknowledge(m, AcknowledgeType.ACCEPT)
            else:
                c.acknowledge(m, AcknowledgeType.RELEASE)
        if got:
            c.commit_sync(30)
            t = time.monotonic()
            for m in got:
                if m.delivery_count() == 1:
                    released[m.offset()] = t
    c.close()
    return delays


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--peer", metavar="BOOTSTRAP",
                        help="Apache Kafka's bootstrap: the share and classic groups and the "
                             "acknowledgement latency run on it too, alternating with Sluice "
                             "(key ordering and back-off are Sluice's own)")
    args = parser.parse_args()
    targets = {"sluice": args.bootstrap}
    if args.peer:
        targets["kafka"] = args.peer
    runs = {}
    for _ in range(args.runs):
        for name, bootstrap in targets.items():
            runs.setdefault((name, "share group of 8"), []).append(
                throughput(bootstrap, share_worker, args.records))
            runs.setdefault((name, "classic group of 8"), []).append(
                throughput(bootstrap, classic_worker, args.records))
        runs.setdefault(("sluice", "share group of 8, key ordering"), []).append(
            throughput(args.bootstrap, share_worker, args.records, True, args.keys))
    print(f"{args.records} records of 100 B on {PARTITIONS} partitions ({args.keys} keys), "
          f"{args.runs} runs")
    for (target, name), values in runs.items():
        print(f"  {target}: {name}: {statistics.median(values):,.0f} records/s "
              f"({min(values):,.0f}-{max(values):,.0f})")
    for target, bootstrap in targets.items():
        times = ack_latency(bootstrap)
        print(f"  {target}: acknowledgement (commit_sync of a poll): p50 "
              f"{percentile(times, 0.5) * 1000:.2f} ms, p99 {percentile(times, 0.99) * 1000:.2f} ms "
              f"({len(times)} commits)")
    delays = redelivery_delays(args.bootstrap)
    print(f"  sluice: redelivery after a release with a 200 ms back-off: p50 "
          f"{percentile(delays, 0.5) * 1000:.0f} ms, p99 {percentile(delays, 0.99) * 1000:.0f} ms, "
          f"min {min(delays) * 1000:.0f} ms ({len(delays)} records)")


if __name__ == "__main__":
    main()
