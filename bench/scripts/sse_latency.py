"""End-to-end latency of the HTTP API's Server-Sent Events stream: a librdkafka producer
(confluent-kafka, `linger.ms=0`) writes records at a fixed rate, each carrying its send time,
and a reader of `GET /v1/topics/{topic}/stream` notes when each event arrives (one process,
one clock). Prints p50 / p99 / p99.9 / max.

    .venv/bin/python bench/scripts/sse_latency.py BOOTSTRAP HTTP_BASE [--rate 1000] [--seconds 10]

e.g. with `sluice serve` on its defaults:
    .venv/bin/python bench/scripts/sse_latency.py 127.0.0.1:9092 http://127.0.0.1:8080
"""

import argparse
import json
import threading
import time
import urllib.request
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("http")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    topic = f"sse-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    total = int(args.rate * args.seconds)

    stream = urllib.request.urlopen(f"{args.http}/v1/topics/{topic}/stream?from=earliest", timeout=60)
    latencies = []

    def read():
        while len(latencies) < total:
            line = stream.readline()
            if not line:
                return
            if line.startswith(b"data:"):
                sent = float(json.loads(line[5:])["value"])
                latencies.append(time.monotonic() - sent)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 0, "acks": 1})
    start = time.monotonic()
    for i in range(total):
        due = start + i / args.rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        producer.produce(topic, value=repr(time.monotonic()).encode())
        producer.poll(0)
    producer.flush(30)
    reader.join(timeout=30)
    stream.close()
    assert len(latencies) == total, f"received {len(latencies)} of {total} events"
    ms = sorted(v * 1000 for v in latencies)
    print(f"SSE delivery at {args.rate} records/s for {args.seconds:.0f} s ({total} records): "
          f"p50 {percentile(ms, 0.5):.2f} ms, p99 {percentile(ms, 0.99):.2f} ms, "
          f"p99.9 {percentile(ms, 0.999):.2f} ms, max {ms[-1]:.2f} ms")


if __name__ == "__main__":
    main()
