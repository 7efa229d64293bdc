"""Offset-commit throughput from the members of one consumer group, with librdkafka's
asynchronous commits (what `enable.auto.commit` uses), through confluent-kafka.

A cross-check of `sluice-bench --only "group commits pipelined"` with another client: each
member keeps up to WINDOW commits in flight, counted by `on_commit`.

    .venv/bin/python bench/scripts/group_commits.py BOOTSTRAP [--members 10] [--seconds 5]
"""

import argparse
import threading
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

WINDOW = 16
PARTITIONS = 60


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    topic = f"commits-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
    group = f"committers-{uuid.uuid4().hex[:8]}"
    share = PARTITIONS // args.members
    ready = threading.Barrier(args.members + 1)
    go = threading.Event()
    results = [None] * args.members

    def member(i):
        done = [0, 0]  # answered, failed

        def on_commit(err, _partitions):
            done[1 if err else 0] += 1

        c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": group,
                      "enable.auto.commit": False, "on_commit": on_commit,
                      "group.protocol": "consumer"})
        c.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(c.assignment()) != share and time.monotonic() < deadline:
            c.poll(0.05)
        mine = [tp.partition for tp in c.assignment()]
        ready.wait()
        go.wait()
        sent, stop = 0, time.monotonic() + args.seconds
        while time.monotonic() < stop:
            if sent - done[0] - done[1] < WINDOW:
                sent += 1
                c.commit(offsets=[TopicPartition(topic, p, sent) for p in mine], asynchronous=True)
            c.poll(0)
        drain = time.monotonic() + 30
        while done[0] + done[1] < sent and time.monotonic() < drain:
            c.poll(0.01)
        results[i] = (done[0], done[1], time.monotonic())
        c.close()

    threads = [threading.Thread(target=member, args=(i,)) for i in range(args.members)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.monotonic()
    go.set()
    for t in threads:
        t.join()
    answered = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    elapsed = max(r[2] for r in results) - start
    assert failed == 0, f"{failed} commits failed"
    print(f"group commits (async, window {WINDOW}): {answered / elapsed:.0f} OffsetCommits/s "
          f"answered from {args.members} members ({share} partitions each), {answered} in "
          f"{elapsed:.2f} s")


if __name__ == "__main__":
    main()
