"""The chaos harness: three `sluice serve` processes on 127.0.0.1, .2 and .3 inside a network
namespace of their own, real clients (clients.py), faults, and the history checker
(history.py).

Run one scenario (the namespace is made by re-running this file under
`unshare --net --map-root-user`, so nothing outside it is touched):

    .venv/bin/python tests/chaos/run.py kill_leader --seed 1 --replication-factor 3 \
        --binary target/debug/sluice

It prints one JSON line: the checker's counts and the scenario's figures, and exits non-zero
if any safety count is not zero. test_scenarios.py runs every scenario this way in the test
suite; `--seconds` makes a longer soak.

Scenarios (each with a fixed seed: the seed picks the victims and when faults strike):
- `kill_leader`: an idempotent `acks=all` librdkafka producer while the leader of a partition
  is `kill -9`ed three times (and restarted);
- `pause_leader`: a leader stopped with SIGSTOP past its session, then resumed;
- `kill_all`: all three brokers killed at once and restarted;
- `partition_leader`: a leader cut off from the other two brokers (both directions) past its
  session, then healed. Clients still reach every broker;
- `rolling_restart`: each broker stopped with SIGTERM and started again in turn, the next only
  once every partition is back in sync. The figures count the producer's delivery errors;
- `kill_coordinator`: a consumer group member reads the topic and commits after each batch
  while the broker coordinating its group is `kill -9`ed twice (and restarted). The group
  must process every acknowledged record and keep every acknowledged commit;
- `transactional_copier`: a copier reads the topic read_committed and writes each record to
  `chaos-out` in transactions that also commit its input offsets (exactly once), while the
  broker coordinating its transactions, then another that matters to it, are `kill -9`ed and
  restarted. The output must hold each input record exactly once, and nothing else.

A cut is an `ip rule ... blackhole` between two addresses, ahead of the loopback routes (the
namespace moves the `local` table's rule behind them). Brokers' connections to each other (the
metadata log's, and their Kafka requests to each other) leave from their own listener
addresses, so a cut between two addresses separates those brokers; a client's connection
binds no address and leaves from 127.0.0.100 (the namespace's loopback routes say so), which
no cut names.

`--replication-factor` is 1 (the default) or 3. With one replica a partition is unavailable
while its broker is down or fenced; with three, an in-sync follower takes over once the
victim is fenced. Either way the checks are that nothing acknowledged is lost, duplicated or
reordered across the fault.
"""

import argparse
from collections import Counter
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "blackbox"))
from history import check, safe  # noqa: E402
from rawwire import cluster_view, coordinator  # noqa: E402
from clients import (  # noqa: E402
    CLIENT_ADDRESS, CONTROLLER_PORT, COPIER_GROUP, GROUP, KAFKA_PORT, NODES, OUTPUT,
    PARTITIONS, QUIET, SESSION_TIMEOUT_MS, TOPIC, TRANSACTIONAL_ID, Copier, GroupMember,
    Workload, address, bootstrap, read_everything, wait_until)

def enter_namespace(argv):
    """Re-runs this script in a new network namespace (user namespace too, so no privilege is
    needed), with loopback up and 127.0.0.2, .3 and the clients' address on it."""
    routes = " && ".join(
        f"ip route replace table local local {target} dev lo proto kernel scope host "
        f"src {CLIENT_ADDRESS}" for target in [address(n) for n in NODES] + ["127.0.0.0/8"])
    setup = (f"ip link set lo up && ip addr add {address(2)}/8 dev lo && "
             f"ip addr add {address(3)}/8 dev lo && ip addr add {CLIENT_ADDRESS}/8 dev lo && "
             # A connection that binds no address (every client's) leaves from the clients'
             # address, which no cut names.
             f"{routes} && "
             # Cuts (pref 10) must be looked at before the loopback routes (pref 0).
             "ip rule add pref 100 lookup local && ip rule del pref 0 && exec \"$@\"")
    cmd = ["unshare", "--net", "--map-root-user", "sh", "-c", setup, "sh",
           sys.executable, __file__, *argv, "--in-namespace"]
    return subprocess.run(cmd).returncode


class Broker:
    def __init__(self, node, binary, root):
        self.node = node
        self.binary = binary
        self.data = root / f"node{node}"
        self.log_path = root / f"node{node}.log"
        self.proc = None

    def start(self):
        voters = ",".join(f"{n}@{address(n)}:{CONTROLLER_PORT}" for n in NODES)
        env = dict(os.environ, SLUICE_BROKER_SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS),
                   SLUICE_BROKER_HEARTBEAT_INTERVAL_MS="500", RUST_LOG="info")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--node-id", str(self.node), "--data-dir", str(self.data),
             "--listen", f"{address(self.node)}:{KAFKA_PORT}",
             "--controller-listen", f"{address(self.node)}:{CONTROLLER_PORT}",
             "--controllers", voters, "--http-listen", "off"],
            stdout=log, stderr=log, env=env)
        log.close()

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def cut(a, b):
    """Drops every packet between broker addresses `a` and `b`, both ways."""
    for source, target in ((a, b), (b, a)):
        subprocess.run(["ip", "rule", "add", "pref", "10", "from", address(source), "to",
                        address(target), "blackhole"], check=True)


def heal(a, b):
    for source, target in ((a, b), (b, a)):
        subprocess.run(["ip", "rule", "del", "pref", "10", "from", address(source), "to",
                        address(target), "blackhole"], check=True)


def fenced_as_seen_by(survivors, victim):
    """True once every survivor's Metadata leaves `victim` out of the live brokers."""
    views = [cluster_view(address(n), KAFKA_PORT) for n in survivors]
    return all(v is not None and victim not in v[1] for v in views)


def live_as_seen_by(survivors, victim):
    views = [cluster_view(address(n), KAFKA_PORT) for n in survivors]
    return all(v is not None and victim in v[1] for v in views)


def leaders():
    """{partition: leader} of the topic, or None while any partition lacks a leader."""
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": bootstrap(), "log_level": QUIET}).list_topics(TOPIC, timeout=5)
    topic = md.topics.get(TOPIC)
    if topic is None or topic.error is not None or len(topic.partitions) != PARTITIONS:
        return None
    found = {p: m.leader for p, m in topic.partitions.items()}
    return None if -1 in found.values() else found


def coordinator_of(key, key_type):
    """The broker FindCoordinator names for `key` (key type 0: a group, 1: a transactional
    id), as the first broker that answers says; None while none does."""
    for n in NODES:
        try:
            error, node = coordinator(address(n), KAFKA_PORT, key, key_type)
        except (OSError, AssertionError):
            continue
        if error == 0:
            return node
    return None


def create_topics(replication_factor, names):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap(), "log_level": QUIET})
    # Replicas are placed on the brokers registered and unfenced when the topic is created.
    wait_until(lambda: len(admin.list_topics(timeout=5).brokers) == len(NODES), 60,
               "every broker registered")
    created = admin.create_topics([NewTopic(n, PARTITIONS, replication_factor) for n in names])
    for future in created.values():
        future.result(30)
    return wait_until(leaders, 30, "the topic placed")


def scenario_kill_leader(brokers, rng, figures):
    """kill -9 the leader of a partition three times, restarting it each time."""
    recoveries = []
    for _ in range(3):
        time.sleep(rng.uniform(1.0, 3.0))
        partition = rng.randrange(PARTITIONS)
        victim = brokers[wait_until(leaders, 60, "every partition led")[partition]]
        victim.kill()
        killed = time.monotonic()
        time.sleep(rng.uniform(0.5, 2.0))
        victim.start()
        wait_until(leaders, 60, "the restarted broker leading again")
        recoveries.append(time.monotonic() - killed)
    figures["kills"] = 3
    figures["kill_to_led_again_s_max"] = round(max(recoveries), 2)


def fence_and_return(rng, figures, fault, undo, what):
    """Applies `fault` to the leader of a random partition until the other brokers fence it,
    a little longer, then `undo`es it and waits until they let it back and it leads again.
    Figures `<what>_to_fenced_s` and `<what>_undone_to_unfenced_s`."""
    time.sleep(rng.uniform(1.0, 3.0))
    victim = wait_until(leaders, 60, "every partition led")[rng.randrange(PARTITIONS)]
    others = [n for n in NODES if n != victim]
    fault(victim, others)
    started = time.monotonic()
    try:
        wait_until(lambda: fenced_as_seen_by(others, victim), 60, f"the {what} broker fenced")
        figures[f"{what}_to_fenced_s"] = round(time.monotonic() - started, 2)
        time.sleep(rng.uniform(0.5, 2.0))
    finally:
        undo(victim, others)
    undone = time.monotonic()
    wait_until(lambda: live_as_seen_by(others, victim), 60, f"the {what} broker back")
    figures[f"{what}_undone_to_unfenced_s"] = round(time.monotonic() - undone, 2)
    wait_until(leaders, 60, f"the {what} broker leading again")


def scenario_pause_leader(brokers, rng, figures):
    """SIGSTOP a leader past its session (it is fenced), then SIGCONT it."""
    fence_and_return(rng, figures,
                     lambda victim, _: brokers[victim].signal(signal.SIGSTOP),
                     lambda victim, _: brokers[victim].signal(signal.SIGCONT), "paused")


def scenario_kill_all(brokers, rng, figures):
    """kill -9 all three brokers at once, then restart them."""
    time.sleep(rng.uniform(1.0, 3.0))
    for b in brokers.values():
        b.kill()
    killed = time.monotonic()
    time.sleep(rng.uniform(0.5, 2.0))
    for b in brokers.values():
        b.start()
    wait_until(leaders, 90, "the cluster back")
    figures["kill_all_to_led_again_s"] = round(time.monotonic() - killed, 2)


def scenario_partition_leader(brokers, rng, figures):
    """Cut a leader off from the other two brokers past its session, then heal."""
    def cut_off(victim, others):
        for other in others:
            cut(victim, other)

    def heal_all(victim, others):
        for other in others:
            heal(victim, other)

    fence_and_return(rng, figures, cut_off, heal_all, "cut")


def in_sync(replication_factor):
    """True once every partition of the topic is led with `replication_factor` in-sync
    replicas."""
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": bootstrap(), "log_level": QUIET}).list_topics(TOPIC, timeout=5)
    topic = md.topics.get(TOPIC)
    if topic is None or topic.error is not None or len(topic.partitions) != PARTITIONS:
        return False
    return all(p.leader >= 0 and len(p.isrs) == replication_factor
               for p in topic.partitions.values())


def scenario_rolling_restart(brokers, rng, figures, replication_factor):
    """Stops each broker in turn with SIGTERM (a controlled shutdown hands its leadership
    over first) and starts it again, waiting until every partition is fully in sync before
    the next."""
    started = time.monotonic()
    for node in NODES:
        time.sleep(rng.uniform(0.5, 1.5))
        brokers[node].stop()
        brokers[node].start()
        others = [n for n in NODES if n != node]
        wait_until(lambda: live_as_seen_by(others, node), 60, f"broker {node} back")
        wait_until(lambda: in_sync(replication_factor), 60, "every partition in sync")
    figures["rolling_restart_s"] = round(time.monotonic() - started, 2)


def bounce(broker, rng):
    """kill -9, a moment down, started again."""
    broker.kill()
    time.sleep(rng.uniform(0.5, 2.0))
    broker.start()


def scenario_kill_coordinator(brokers, rng, figures, clients):
    """kill -9 the broker coordinating the consumer group, twice, once the group has
    committed; each time restarted."""
    member = clients[0]
    wait_until(member.has_committed, 60, "the group's first commit")
    victims = []
    for _ in range(2):
        time.sleep(rng.uniform(1.0, 3.0))
        victim = wait_until(lambda: coordinator_of(GROUP, 0), 60, "the group's coordinator")
        victims.append(victim)
        bounce(brokers[victim], rng)
        wait_until(leaders, 60, "every partition led again")
    figures["coordinators_killed"] = victims


def scenario_transactional_copier(brokers, rng, figures, clients):
    """kill -9 the broker coordinating the copier's transactions, then the one coordinating
    its group or leading one of its output partitions; each time restarted."""
    copier = clients[0]
    wait_until(lambda: copier.transactions > 0, 60, "the copier's first transaction")
    victims = []
    for first in (True, False):
        time.sleep(rng.uniform(1.0, 3.0))
        if first:
            find = lambda: coordinator_of(TRANSACTIONAL_ID, 1)  # noqa: E731
        elif rng.random() < 0.5:
            find = lambda: coordinator_of(COPIER_GROUP, 0)  # noqa: E731
        else:
            find = lambda: output_leader(rng.randrange(PARTITIONS))  # noqa: E731
        victim = wait_until(find, 60, "a broker the copier depends on")
        victims.append(victim)
        bounce(brokers[victim], rng)
        wait_until(leaders, 60, "every partition led again")
    figures["bounced"] = victims


def output_leader(partition):
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": bootstrap(), "log_level": QUIET}).list_topics(OUTPUT, timeout=5)
    leader = md.topics[OUTPUT].partitions[partition].leader
    return leader if leader >= 0 else None


# Clients a scenario needs beside the producer: started with it, finished after it.
CLIENTS = {
    "kill_coordinator": [GroupMember],
    "transactional_copier": [Copier],
}

SCENARIOS = {
    "kill_leader": scenario_kill_leader,
    "rolling_restart": scenario_rolling_restart,
    "pause_leader": scenario_pause_leader,
    "kill_all": scenario_kill_all,
    "partition_leader": scenario_partition_leader,
    "kill_coordinator": scenario_kill_coordinator,
    "transactional_copier": scenario_transactional_copier,
}


def run(args):
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix=f"chaos-{args.scenario}-"))
    brokers = {n: Broker(n, args.binary, root) for n in NODES}
    figures = {"scenario": args.scenario, "seed": args.seed,
               "replication_factor": args.replication_factor}
    try:
        for b in brokers.values():
            b.start()
        kinds = CLIENTS.get(args.scenario, [])
        topics = [TOPIC, OUTPUT] if Copier in kinds else [TOPIC]
        create_topics(args.replication_factor, topics)
        workload = Workload()
        workload.start()
        clients = [kind(random.Random(args.seed + 1)) if kind is Copier else kind()
                   for kind in kinds]
        for client in clients:
            client.start()
        started = time.monotonic()
        scenario = SCENARIOS[args.scenario]
        if scenario is scenario_rolling_restart:
            scenario(brokers, rng, figures, args.replication_factor)
        elif clients:
            scenario(brokers, rng, figures, clients)
        else:
            scenario(brokers, rng, figures)
        # Traffic after the last fault, for at least the rest of the run.
        time.sleep(max(2.0, args.seconds - (time.monotonic() - started)))
        workload.finish()
        history = list(workload.history)
        for client in clients:
            client.finish()
            client.figures(figures)
            history.extend(client.history)
        figures["longest_produce_outage_s"] = round(workload.longest_outage_s(), 2)
        errors = [op["error"] for op in workload.history if op["type"] == "info"]
        figures["delivery_errors"] = len(errors)
        if errors:
            figures["delivery_error_kinds"] = dict(Counter(errors).most_common(3))
        reads = read_everything("r1") + read_everything("r2")
        counts = check(history + reads)
        result = dict(figures, **counts, safe=safe(counts))
        print(json.dumps(result), flush=True)
        if not result["safe"] or args.keep:
            print(f"logs kept in {root}", file=sys.stderr)
            return 0 if result["safe"] else 1
        shutil.rmtree(root, ignore_errors=True)
        return 0
    except BaseException:
        print(f"logs kept in {root}", file=sys.stderr)
        raise
    finally:
        for b in brokers.values():
            if b.proc is not None and b.proc.poll() is None:
                b.signal(signal.SIGCONT)
                b.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.0,
                        help="run the workload at least this long (a soak)")
    parser.add_argument("--binary", default=os.environ.get("SLUICE_BIN", "target/debug/sluice"))
    parser.add_argument("--keep", action="store_true", help="keep the brokers' data and logs")
    parser.add_argument("--replication-factor", type=int, default=1, choices=[1, 3])
    parser.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.binary = str(Path(args.binary).resolve())
    if not args.in_namespace:
        argv = [a for a in sys.argv[1:]]
        return enter_namespace(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
