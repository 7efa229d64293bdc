"""A consume-transform-produce worker for the exactly-once test: reads `input` as a member of
group `ctp`, writes each record upper-cased to `output`, and commits its consumer offsets in
the same transaction (`send_offsets_to_transaction`). Prints `begun <n>` when transaction n
has produced its records and is about to commit, and `committed <n>` after; with
`--pause-before-commit SECONDS` it waits there, so a test can kill it mid-transaction."""

import argparse
import sys
import time

from confluent_kafka import Consumer, Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--pause-before-commit", type=float, default=0.0)
    ap.add_argument("--idle-exit-seconds", type=float, default=60.0,
                    help="exit after this long without records, once some came")
    args = ap.parse_args()
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": "ctp", "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "isolation.level": "read_committed",
        # A killed worker's membership ends after 6 s, so its successor gets the partitions.
        "session.timeout.ms": 6000,
    })
    producer = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": "ctp-tx",
                         "transaction.timeout.ms": 30_000})
    producer.init_transactions(30)
    consumer.subscribe(["input"])
    n = 0
    # Idle time counts from the first batch: getting the partitions may take a rebalance.
    idle_since = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if idle_since is not None and time.monotonic() - idle_since > args.idle_exit_seconds:
            break
        batch = consumer.consume(num_messages=100, timeout=0.5)
        batch = [m for m in batch if m.error() is None]
        if not batch:
            continue
        idle_since = time.monotonic()
        n += 1
        producer.begin_transaction()
        for m in batch:
            producer.produce("output", key=m.key(), value=m.value().upper())
        producer.flush(30)
        print(f"begun {n}", flush=True)
        if args.pause_before_commit:
            time.sleep(args.pause_before_commit)
        producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                             consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        print(f"committed {n}", flush=True)
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
