"""How fast `sluice consume` prints a topic through a format template, against kcat printing the
same topic with the same template, both to /dev/null, alternating runs on one broker.

One release broker on loopback; a topic of N records (100-byte values with keys, 3
partitions) written once by librdkafka. Each run reads the whole topic from the start and
exits at its end (`sluice consume -o beginning -f ...`, `kcat -C -e -o beginning -f ...`).
Prints each run's records/s and MB/s, then the medians and the ratio.

    .venv/bin/python bench/scripts/consume_rate.py [--binary target/release/sluice] [--records 1000000] [--runs 5]
"""

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from local import free_port, wait_for_port

TEMPLATE = "%k %s %p %o %T\\n"
TOPIC = "rate"
PARTITIONS = 3
VALUE_BYTES = 100


def fill(bootstrap, records):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout=30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "queue.buffering.max.messages": 1_000_000})
    value = b"v" * VALUE_BYTES
    for i in range(records):
        while True:
            try:
                p.produce(TOPIC, key=b"key-%08d" % i, value=value)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0, "records left unsent"


def timed(command, records):
    """Runs `command`, its output counted and thrown away; returns seconds."""
    started = time.monotonic()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        lines = 0
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
            lines += chunk.count(b"\n")
        code = proc.wait(timeout=600)
    took = time.monotonic() - started
    assert code == 0, f"{command[0]} exited with {code}"
    assert lines == records, f"{command[0]} printed {lines} lines, not {records}"
    return took


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/sluice")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (apt-get install kcat)"
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen(
            [binary, "serve", "--data-dir", data, "--listen", bootstrap, "--http-listen", "off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port)
            fill(bootstrap, args.records)
            commands = {
                "sluice": [binary, "consume", TOPIC, "-o", "beginning", "-f", TEMPLATE,
                           "--brokers", bootstrap],
                "kcat": [kcat, "-C", "-b", bootstrap, "-t", TOPIC, "-o", "beginning", "-e", "-q",
                         "-f", TEMPLATE.replace("\\n", "\n")],
            }
            megabytes = args.records * (VALUE_BYTES + 12) / 1e6
            took = {name: [] for name in commands}
            for run in range(args.runs):
                for name, command in commands.items():
                    seconds = timed(command, args.records)
                    took[name].append(seconds)
                    print(f"run {run + 1} {name:6} {args.records / seconds:12,.0f} records/s "
                          f"{megabytes / seconds:8.1f} MB/s")
            medians = {name: statistics.median(t) for name, t in took.items()}
            for name, seconds in medians.items():
                print(f"median {name:6} {args.records / seconds:12,.0f} records/s  ({seconds:.2f} s)")
            print(f"sluice / kcat: {medians['kcat'] / medians['sluice']:.2f}")
        finally:
            broker.terminate()
            broker.wait(timeout=30)


if __name__ == "__main__":
    main()
