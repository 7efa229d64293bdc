"""Replicated partitions on three `sluice serve` processes: a topic with replication factor 3
is copied byte for byte to every replica; `acks=all` answers once every in-sync replica has the
records on disk; `kill -9` of a leader elects an in-sync follower and loses no acknowledged
record; a follower that was down leaves the in-sync set and joins it again once it caught up;
`min.insync.replicas` counts live in-sync replicas."""

import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_until
from test_cluster import agreed, launch_cluster

SESSION_TIMEOUT_MS = 3000


@pytest.fixture
def cluster(tmp_path):
    nodes = launch_cluster(tmp_path, 3, SESSION_TIMEOUT_MS)
    wait_until(lambda: agreed(nodes.values(), [1, 2, 3]), timeout=30,
               what="three brokers agreeing")
    yield nodes
    for b in nodes.values():
        if b.alive():
            b.proc.kill()
            b.proc.wait(timeout=10)


def create(broker, name, partitions, replication_factor, config=None):
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = client.create_topics(
        [NewTopic(name, partitions, replication_factor, config=config or {})])
    futures[name].result(timeout=30)


def partitions_of(broker, topic):
    """{partition: (leader, replicas, isrs)} as `broker` answers Metadata."""
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return {}
    return {p: (m.leader, sorted(m.replicas), sorted(m.isrs)) for p, m in t.partitions.items()}


def led_everywhere(brokers, topic, partitions, isr_size):
    """The partition map once every broker in `brokers` answers the same one, every partition
    led with `isr_size` in-sync replicas."""
    try:
        maps = [partitions_of(b, topic) for b in brokers]
    except KafkaException:
        return None
    first = maps[0]
    if len(first) != partitions or any(m != first for m in maps):
        return None
    if any(leader == -1 or len(isrs) != isr_size for leader, _, isrs in first.values()):
        return None
    return first


def produce_acked(broker, topic, values, partition=0, extra=None):
    """Produces `values` with acks=all, idempotent; returns the (value, offset) of every
    acknowledged record, in the order acknowledged."""
    config = {"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True,
              "linger.ms": 5, "message.timeout.ms": 30000}
    config.update(extra or {})
    p = Producer(config)
    acked, failed = [], []

    def report(err, msg):
        if err is None:
            acked.append((msg.value(), msg.offset()))
        else:
            failed.append(err)

    for v in values:
        while True:
            try:
                p.produce(topic, v, partition=partition, on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60)
    assert left == 0, f"{left} records still in flight"
    return acked, failed


def read_from(broker, topic, partition, until_count, timeout=30):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                  "enable.auto.commit": False})
    got = []
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + timeout
        while len(got) < until_count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append((m.value(), m.offset()))
        return got
    finally:
        c.close()


def segment_bytes(broker, topic, partition):
    """The concatenated bytes of a replica's segment files, oldest first."""
    d = Path(broker.data_dir) / "topics" / topic / str(partition)
    return b"".join(f.read_bytes() for f in sorted(d.glob("*.log")))


def test_a_replicated_topic_is_copied_byte_for_byte_to_every_replica(cluster):
    nodes = list(cluster.values())
    create(cluster[1], "copied", 3, 3)
    placed = wait_until(lambda: led_everywhere(nodes, "copied", 3, 3), timeout=30,
                        what="every partition led with three in-sync replicas")
    assert {leader for leader, _, _ in placed.values()} == {1, 2, 3}, placed
    assert all(replicas == [1, 2, 3] for _, replicas, _ in placed.values()), placed
    started = time.monotonic()
    for partition in range(3):
        acked, failed = produce_acked(cluster[2], "copied",
                                      [b"v%d" % n for n in range(2000)], partition)
        assert not failed and len(acked) == 2000, failed[:3]
    took = time.monotonic() - started

    def identical(partition):
        copies = [segment_bytes(b, "copied", partition) for b in nodes]
        return copies[0] if copies[0] and all(c == copies[0] for c in copies) else None

    for partition in range(3):
        wait_until(lambda: identical(partition), timeout=20,
                   what=f"partition {partition} identical on every replica")
    assert [v for v, _ in read_from(cluster[3], "copied", 1, 2000)] == \
        [b"v%d" % n for n in range(2000)]
    print(f"6000 acks=all records over three replicas in {took:.2f}s")


def test_killing_a_leader_elects_a_follower_and_loses_no_acknowledged_record(cluster):
    nodes = list(cluster.values())
    create(cluster[1], "failover", 1, 3)
    placed = wait_until(lambda: led_everywhere(nodes, "failover", 1, 3), timeout=30,
                        what="the partition led with three in-sync replicas")
    leader = placed[0][0]
    before, failed = produce_acked(cluster[leader], "failover", [b"a%d" % n for n in range(3000)])
    assert not failed and len(before) == 3000
    cluster[leader].kill()
    survivors = [b for i, b in cluster.items() if i != leader]
    moved = wait_until(lambda: led_everywhere(survivors, "failover", 1, 2), timeout=30,
                       what="a follower leading with the other in sync")
    new_leader = moved[0][0]
    assert new_leader != leader
    after, failed = produce_acked(cluster[new_leader], "failover",
                                  [b"b%d" % n for n in range(1000)])
    assert not failed and len(after) == 1000
    acked = before + after
    got = read_from(cluster[new_leader], "failover", 0, len(acked))
    assert got == acked, (len(got), len(acked))
    # The old leader comes back as a follower, catches up and is in sync again.
    cluster[leader].start()
    wait_until(lambda: led_everywhere(nodes, "failover", 1, 3), timeout=60,
               what="the old leader back in sync")
    wait_until(lambda: segment_bytes(cluster[leader], "failover", 0)
               == segment_bytes(cluster[new_leader], "failover", 0),
               timeout=20, what="the old leader's copy identical")


def test_a_lagging_follower_leaves_the_isr_and_min_insync_guards_acks_all(cluster):
    nodes = list(cluster.values())
    create(cluster[1], "guarded", 1, 3, config={"min.insync.replicas": "3"})
    placed = wait_until(lambda: led_everywhere(nodes, "guarded", 1, 3), timeout=30,
                        what="three in-sync replicas")
    leader = placed[0][0]
    acked, failed = produce_acked(cluster[leader], "guarded", [b"x%d" % n for n in range(100)])
    assert not failed and len(acked) == 100
    follower = next(i for i in cluster if i != leader)
    cluster[follower].kill()
    survivors = [b for i, b in cluster.items() if i != follower]
    wait_until(lambda: led_everywhere(survivors, "guarded", 1, 2), timeout=30,
               what="the killed follower out of the in-sync set")
    acked, failed = produce_acked(cluster[leader], "guarded", [b"y"],
                                  extra={"message.timeout.ms": 3000, "retries": 0,
                                         "enable.idempotence": False})
    assert not acked and failed and failed[0].name() == "NOT_ENOUGH_REPLICAS", failed
    # acks=1 still takes records.
    p = Producer({"bootstrap.servers": cluster[leader].bootstrap, "acks": "1"})
    p.produce("guarded", b"z", partition=0)
    assert p.flush(10) == 0
    cluster[follower].start()
    wait_until(lambda: led_everywhere(nodes, "guarded", 1, 3), timeout=60,
               what="the follower back in sync")
    acked, failed = produce_acked(cluster[leader], "guarded", [b"w"])
    assert not failed and len(acked) == 1
    wait_until(lambda: segment_bytes(cluster[follower], "guarded", 0)
               == segment_bytes(cluster[leader], "guarded", 0),
               timeout=20, what="the returned follower's copy identical")

