"""Figures of a three-node cluster on loopback (the controller-quorum issue): how long after
`kill -9` of the active controller another is elected, how long until the killed broker is
fenced (against `broker_session_timeout_ms`), how long a restarted broker takes to be back,
how long from CreateTopics (12 partitions) until every broker lists every partition with a
leader (each broker answers Metadata from the image its storage follows, so the topic is then
usable everywhere), and the idle CPU of the three processes.

Each node is asked with Metadata v1 over a raw socket (the controller id and the live brokers,
a few hundred microseconds a request), polled every 10 ms.

    .venv/bin/python bench/scripts/cluster_failover.py [--binary target/release/sluice] [--kills 10]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Kafka's wire format by hand, shared with the black-box tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "blackbox"))
from rawwire import cluster_view  # noqa: E402
from local import free_port


def metadata(port):
    """(controller id, sorted live broker ids) as the node on `port` answers, or None."""
    return cluster_view("127.0.0.1", port)


class Node:
    def __init__(self, binary, root, node_id, voters, controller_port, session_ms):
        self.binary, self.node_id = binary, node_id
        self.port = free_port()
        self.data = root / f"node{node_id}"
        self.log = open(root / f"node{node_id}.log", "ab")
        self.args = [binary, "serve", "--node-id", str(node_id), "--data-dir", str(self.data),
                     "--listen", f"127.0.0.1:{self.port}", "--http-listen", "off",
                     "--controller-listen", f"127.0.0.1:{controller_port}",
                     "--controllers", voters]
        self.env = dict(os.environ, SLUICE_BROKER_SESSION_TIMEOUT_MS=str(session_ms),
                        SLUICE_BROKER_HEARTBEAT_INTERVAL_MS="500")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, env=self.env)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def cpu_seconds(self):
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(condition, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError("condition not met")


def agreed(nodes, brokers):
    answers = {tuple(a[1]) + (a[0],) for a in (metadata(n.port) for n in nodes) if a}
    if len(answers) != 1:
        return None
    *listed, controller = answers.pop()
    return controller if listed == brokers and controller >= 0 else None


def create_to_usable(nodes, topic, partitions):
    """Seconds from a CreateTopics sent to the first node until every node's Metadata lists
    the topic's `partitions` partitions, each with a leader."""
    from confluent_kafka.admin import AdminClient, NewTopic
    nodes = list(nodes)
    admins = [AdminClient({"bootstrap.servers": f"127.0.0.1:{n.port}"}) for n in nodes]
    started = time.monotonic()
    admins[0].create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)

    def usable():
        for a in admins:
            t = a.list_topics(timeout=5).topics.get(topic)
            if t is None or len(t.partitions) != partitions:
                return False
            if any(p.leader < 0 for p in t.partitions.values()):
                return False
        return True

    wait(usable)
    return time.monotonic() - started


def percentiles(values):
    values = sorted(values)
    return f"p50 {statistics.median(values):.2f} s, max {values[-1]:.2f} s"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/sluice")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--session-ms", type=int, default=9000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sluice-cluster-"))
    ports = {i: free_port() for i in (1, 2, 3)}
    voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in ports.items())
    nodes = {i: Node(args.binary, root, i, voters, p, args.session_ms) for i, p in ports.items()}
    try:
        started = time.monotonic()
        for n in nodes.values():
            n.start()
        wait(lambda: agreed(nodes.values(), [1, 2, 3]))
        print(f"three nodes started and agreed in {time.monotonic() - started:.2f} s")
        time.sleep(2)
        before = {i: n.cpu_seconds() for i, n in nodes.items()}
        time.sleep(10)
        idle = sum(n.cpu_seconds() - before[i] for i, n in nodes.items()) / 10
        print(f"idle CPU of the three processes: {idle * 100:.1f}% of one core")
        creates = []
        for t in range(args.kills):
            creates.append(create_to_usable(nodes.values(), f"bench-{t}", 12))
        print(f"CreateTopics (12 partitions) to usable on every broker: {percentiles(creates)}")
        elections, fences, returns = [], [], []
        for _ in range(args.kills):
            controller = wait(lambda: agreed(nodes.values(), [1, 2, 3]))
            victim = nodes[controller]
            survivors = [n for i, n in nodes.items() if i != controller]
            victim.kill()
            killed = time.monotonic()
            wait(lambda: all((m := metadata(n.port)) and m[0] not in (-1, controller)
                             for n in survivors))
            elections.append(time.monotonic() - killed)
            expected = sorted(i for i in nodes if i != controller)
            wait(lambda: agreed(survivors, expected))
            fences.append(time.monotonic() - killed)
            victim.start()
            restarted = time.monotonic()
            wait(lambda: agreed(nodes.values(), [1, 2, 3]))
            returns.append(time.monotonic() - restarted)
        print(f"controller election after kill -9 ({args.kills} kills): {percentiles(elections)}")
        print(f"killed broker fenced after (session timeout {args.session_ms / 1000:.1f} s): "
              f"{percentiles(fences)}")
        print(f"restarted broker back in Metadata: {percentiles(returns)}")
    finally:
        for n in nodes.values():
            if n.proc and n.proc.poll() is None:
                n.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
