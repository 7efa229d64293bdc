"""The hardening probes, as figures: peak memory, descriptors, records lost, time to recover.

Each probe starts a fresh broker (`SLUICE_BIN`, default target/debug/sluice) on a temporary
data directory, attacks it as one client or a bad disk would, and prints what it measured; the
last line is all of it as JSON. Run it against two binaries to compare them:

    SLUICE_BIN=target/release/sluice .venv/bin/python bench/scripts/hardening_probes.py [NAME]

NAME picks the probes whose name contains it. Needs the test venv (confluent-kafka).
"""
import os, sys, time, struct, socket, threading, zlib, tempfile, pathlib, json, urllib.request
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "blackbox"))
from conftest import Broker, free_port, wait_until
from helpers import create_topic, produce_all, producer
from rawwire import raw, request, read_frame, batch, produce, varint, closed_by_peer
from confluent_kafka import Consumer, TopicPartition

def fresh(env=None):
    import atexit, shutil
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="sluice-probe-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return Broker(tmp / "data", free_port(), extra_env=env).start()

def hwm(b):
    for line in open(f"/proc/{b.proc.pid}/status"):
        if line.startswith("VmHWM:"): return int(line.split()[1]) // 1024
def fds(b): return len(os.listdir(f"/proc/{b.proc.pid}/fd"))

out = {}
def run(name, f):
    try: out[name] = f()
    except Exception as e: out[name] = f"error: {e!r}"[:200]
    print(name, out[name], flush=True)

def describe_groups_16mib():
    b = fresh(); base = hwm(b)
    s = raw(b, timeout=60); n = 8 * 1024 * 1024
    t = time.monotonic()
    s.sendall(request(15, 0, 7, struct.pack(">i", n) + b"\x00\x00" * n))
    try:
        frame = read_frame(s); answer = f"answered {len(frame)} bytes"
    except AssertionError:
        answer = "connection closed"
    r = {"answer": answer, "seconds": round(time.monotonic() - t, 2), "peak_rss_mib": hwm(b), "base_mib": base, "alive": b.alive()}
    b.kill(); return r

def describe_configs_repeats():
    b = fresh(); create_topic(b, "named", 50); base = hwm(b)
    s = raw(b, timeout=60); n = 500_000; name = b"named"
    res = struct.pack(">bh", 2, len(name)) + name + struct.pack(">i", -1)
    s.sendall(request(32, 1, 8, struct.pack(">i", n) + res * n + b"\x00"))
    frame = read_frame(s)
    r = {"response_bytes": len(frame), "peak_rss_mib": hwm(b), "base_mib": base}
    b.kill(); return r

def half_sent():
    b = fresh({"SLUICE_REQUEST_TIMEOUT_MS": "4000"}); base = hwm(b)
    chunk = b"\x00" * (1 << 20); socks = []
    def stall():
        s = raw(b, timeout=8)
        try:
            s.sendall(struct.pack(">i", 100 << 20))
            for _ in range(64): s.sendall(chunk)
        except OSError: pass
        socks.append(s)
    ts = [threading.Thread(target=stall) for _ in range(16)]
    [t.start() for t in ts]; [t.join(timeout=60) for t in ts]
    peak = hwm(b); t = time.monotonic()
    closed = sum(1 for s in socks if closed_by_peer(s))
    r = {"peak_rss_mib": peak, "base_mib": base, "closed_by_broker": f"{closed}/16", "seconds_to_close": round(time.monotonic() - t, 1)}
    b.kill(); return r

def bomb_compacted():
    b = fresh(); create_topic(b, "bomb", 1, {"cleanup.policy": "compact"}); base = hwm(b)
    fields = b"\x00" + varint(0) + varint(0) + varint(1) + b"k" + varint(2**31 - 64)
    head = varint(2**31 - 64 + len(fields)) + fields
    c = zlib.compressobj(9, zlib.DEFLATED, 31); body = c.compress(head)
    zeros = b"\x00" * (1 << 20)
    for _ in range(1024): body += c.compress(zeros)
    body += c.flush()
    s = raw(b, timeout=60); t = time.monotonic()
    code = produce(s, "bomb", batch(body, 1, attributes=1))
    r = {"gzip_body_bytes": len(body), "error_code": code, "seconds": round(time.monotonic() - t, 2), "peak_rss_mib": hwm(b), "base_mib": base}
    b.kill(); return r

def recovery_damage():
    b = fresh(); create_topic(b, "disk", 1, {"segment.bytes": "16384"})
    p = producer(b, **{"acks": "all", "linger.ms": 2, "batch.num.messages": 100})
    total = 12000
    produce_all(p, "disk", [(None, f"value-{i:06d}".encode()) for i in range(total)])
    b.kill()
    logs = sorted((b.data_dir / "topics" / "disk" / "0").glob("*.log"))
    with open(logs[2], "r+b") as f:
        f.seek(f.seek(0, 2) // 2); f.write(b"\xab" * 16)
    t = time.monotonic(); b.start(); start_s = round(time.monotonic() - t, 2)
    segs_after = len(list((b.data_dir / "topics" / "disk" / "0").glob("*.log")))
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "r", "enable.auto.commit": False})
    c.assign([TopicPartition("disk", 0, 0)])
    got = 0; deadline = time.monotonic() + 30; errors = 0
    import re
    while time.monotonic() < deadline and got < total:
        m = c.poll(0.2)
        if m is None: continue
        if m.error():
            errors += 1
            found = re.findall(r"the next readable offset is (\d+)", b.log())
            if found: c.seek(TopicPartition("disk", 0, int(found[-1])))
            continue
        got += 1
    c.close()
    r = {"acked": total, "segments_before": len(logs), "segments_after": segs_after, "readable": got, "lost": total - got, "restart_seconds": start_s, "fetch_errors_reported": errors}
    b.kill(); return r

def http_polls():
    b = fresh(); create_topic(b, "quiet"); base = fds(b)
    peak = [0]; statuses = []
    def poll():
        try:
            with urllib.request.urlopen(f"{b.http}/v1/topics/quiet/partitions/0/records?wait_ms=5000", timeout=60) as r:
                statuses.append(r.status)
        except urllib.error.HTTPError as e: statuses.append(e.code)
        except Exception as e: statuses.append(str(type(e).__name__))
    ts = [threading.Thread(target=poll) for _ in range(2000)]
    [t.start() for t in ts]
    while any(t.is_alive() for t in ts):
        peak[0] = max(peak[0], fds(b)); time.sleep(0.05)
    from collections import Counter
    r = {"broker_process_fds_peak": peak[0], "base_fds": base, "statuses": dict(Counter(statuses))}
    b.kill(); return r

for name, f in [("describe_groups_16MiB", describe_groups_16mib), ("describe_configs_500k_repeats", describe_configs_repeats),
                ("half_sent_frames_16x64MiB", half_sent), ("gzip_bomb_compacted", bomb_compacted),
                ("recovery_16_bytes_damaged", recovery_damage), ("http_2000_long_polls", http_polls)]:
    if len(sys.argv) > 1 and sys.argv[1] not in name: continue
    run(name, f)
print(json.dumps(out))
