"""Peak broker memory while consumers read large batches (the replicated-partitions issue's
copy-free Fetch): a Fetch response used to be copied whole into a response buffer, so it
existed twice in memory while it was sent; now its record bytes are sent as storage read them.

Loads a topic with large batches, resets the broker's peak resident set (`/proc/PID/clear_refs`),
has several consumers read everything at once with large fetch sizes, and prints the peak above
the resident set before the reads, and the read rate. Binaries alternate, so noise falls on both.

    .venv/bin/python bench/scripts/fetch_memory.py --binary target/release/sluice \\
        [--binary /tmp/sluice-before] [--runs 3]
"""

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from local import free_port

PARTITIONS = 4
VALUE_BYTES = 256 * 1024
RECORDS = 800  # 200 MiB
CONSUMERS = 4


def status_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def wait_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("broker did not start")


def load(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("large", PARTITIONS, 1)])["large"].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "batch.size": 1_000_000,
                  "linger.ms": 50, "acks": "all"})
    value = b"x" * VALUE_BYTES
    for n in range(RECORDS):
        while True:
            try:
                p.produce("large", value=value, partition=n % PARTITIONS)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(120) == 0


def read_all(bootstrap, index, done):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{index}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.max.bytes": 64 * 1024 * 1024,
                  "max.partition.fetch.bytes": 16 * 1024 * 1024,
                  "queued.max.messages.kbytes": 32 * 1024})
    c.subscribe(["large"])
    got = 0
    deadline = time.monotonic() + 300
    while got < RECORDS and time.monotonic() < deadline:
        for m in c.consume(100, 0.5):
            if m.error() is None:
                got += 1
    c.close()
    done.append(got)


def run(binary):
    data = Path(tempfile.mkdtemp(prefix="fetch-memory-"))
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "--data-dir", str(data), "--listen",
                             f"127.0.0.1:{port}", "--http-listen", "off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        bootstrap = f"127.0.0.1:{port}"
        load(bootstrap)
        time.sleep(1)
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
        before = status_kib(proc.pid, "VmRSS")
        done = []
        started = time.monotonic()
        readers = [threading.Thread(target=read_all, args=(bootstrap, i, done))
                   for i in range(CONSUMERS)]
        for t in readers:
            t.start()
        for t in readers:
            t.join()
        took = time.monotonic() - started
        assert done == [RECORDS] * CONSUMERS, done
        peak = status_kib(proc.pid, "VmHWM")
        read_mib = CONSUMERS * RECORDS * VALUE_BYTES / 2**20
        return (peak - before) / 1024, read_mib / took
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", action="append", required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = {b: [] for b in args.binary}
    for n in range(args.runs):
        for binary in args.binary:
            above, rate = run(binary)
            results[binary].append((above, rate))
            print(f"run {n + 1} {binary}: peak {above:.0f} MiB above the resident set before "
                  f"the reads, {rate:.0f} MiB/s read", flush=True)
    for binary, runs in results.items():
        print(f"{binary}: median peak {statistics.median(r[0] for r in runs):.0f} MiB above, "
              f"median {statistics.median(r[1] for r in runs):.0f} MiB/s "
              f"({CONSUMERS} consumers, {RECORDS * VALUE_BYTES // 2**20} MiB each)")


if __name__ == "__main__":
    main()
