"""Replicated partitions on three `sluice serve` processes: a topic with replication factor 3
is copied byte for byte to every replica; `acks=all` answers once every in-sync replica has the
records on disk; `kill -9` of a leader elects an in-sync follower and loses no acknowledged
record; a follower that was down leaves the in-sync set and joins it again once it caught up;
`min.insync.replicas` counts live in-sync replicas."""

import shutil
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                  NewTopic)

from conftest import wait_until
from test_cluster import metadata_brokers, running_cluster
from test_http import scrape

SESSION_TIMEOUT_MS = 3000


@pytest.fixture
def cluster(tmp_path):
    with running_cluster(tmp_path, 3, SESSION_TIMEOUT_MS) as nodes:
        yield nodes


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


def led_and_written(cluster, topic, prefix, count, config=None):
    """Creates `topic` (one partition, three replicas, `config`), waits until it is led with
    three in-sync replicas, and writes `count` records `prefix0`, `prefix1`, ... with acks=all
    through its leader; returns the leader and the (value, offset) acknowledged."""
    create(cluster[1], topic, 1, 3, config=config)
    placed = wait_until(lambda: led_everywhere(list(cluster.values()), topic, 1, 3), timeout=30,
                        what=f"{topic} led with three in-sync replicas")
    leader = placed[0][0]
    acked, failed = produce_acked(cluster[leader], topic,
                                  [prefix + b"%d" % n for n in range(count)])
    assert not failed and len(acked) == count, failed[:3]
    return leader, acked


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


def under_replicated(broker):
    return scrape(broker)["sluice_under_replicated_partitions"]


def led_out_of_sync(broker, node):
    """Partitions `node` leads whose in-sync set is smaller than their replicas, as Metadata
    from `broker` says."""
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    return sum(1 for t in md.topics.values() for p in t.partitions.values()
               if p.leader == node and len(p.isrs) < len(p.replicas))


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
    leader, before = led_and_written(cluster, "failover", b"a", 3000)
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
    leader, _ = led_and_written(cluster, "guarded", b"x", 100, {"min.insync.replicas": "3"})
    follower = next(i for i in cluster if i != leader)
    cluster[follower].kill()
    survivors = [b for i, b in cluster.items() if i != follower]
    wait_until(lambda: led_everywhere(survivors, "guarded", 1, 2), timeout=30,
               what="the killed follower out of the in-sync set")
    # The leader's metrics say what Metadata says: every partition it leads with a replica
    # out of sync is under-replicated ("guarded" below its min.insync.replicas too).
    wait_until(lambda: under_replicated(cluster[leader]) == led_out_of_sync(cluster[leader], leader),
               timeout=30, what="the leader's under-replicated partitions in its metrics")
    m = scrape(cluster[leader])
    assert m["sluice_under_replicated_partitions"] >= 1, m
    assert m["sluice_under_min_isr_partitions"] >= 1, m
    assert m["sluice_offline_partitions"] == 0, m
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
    wait_until(lambda: under_replicated(cluster[leader]) == 0, timeout=60,
               what="no under-replicated partition left on the leader")
    acked, failed = produce_acked(cluster[leader], "guarded", [b"w"])
    assert not failed and len(acked) == 1
    wait_until(lambda: segment_bytes(cluster[follower], "guarded", 0)
               == segment_bytes(cluster[leader], "guarded", 0),
               timeout=20, what="the returned follower's copy identical")




def test_unclean_election_lets_an_out_of_sync_replica_lead_only_where_enabled(tmp_path):
    """A follower down, then its leader: with `unclean.leader.election.enable=true` the
    follower, back, leads (the records only the old leader had are lost, as Kafka warns);
    without it the partition waits for its last in-sync replica, and keeps its records. Five
    nodes, so that the metadata log keeps its majority with two down."""
    with running_cluster(tmp_path, 5, SESSION_TIMEOUT_MS) as nodes:
        admin = AdminClient({"bootstrap.servers": nodes[3].bootstrap})
        topics = [NewTopic("clean", 1, replica_assignment=[[1, 2]]),
                  NewTopic("later", 1, replica_assignment=[[1, 2]]),
                  NewTopic("unclean", 1, replica_assignment=[[1, 2]],
                           config={"unclean.leader.election.enable": "true"})]
        for future in admin.create_topics(topics).values():
            future.result(30)
        seen_by_3 = lambda topic: partitions_of(nodes[3], topic).get(0)  # noqa: E731
        for topic in ("clean", "later", "unclean"):
            wait_until(lambda: seen_by_3(topic) == (1, [1, 2], [1, 2]), timeout=30,
                       what=f"{topic} led by 1 with 2 in sync")
        nodes[2].kill()
        for topic in ("clean", "later", "unclean"):
            wait_until(lambda: seen_by_3(topic) == (1, [1, 2], [1]), timeout=30,
                       what=f"{topic}'s in-sync set down to its leader")
            p = Producer({"bootstrap.servers": nodes[1].bootstrap, "acks": "1"})
            p.produce(topic, b"only-on-1", partition=0)
            assert p.flush(10) == 0
        nodes[1].kill()
        nodes[2].start()
        # One wait for the three together: each look is its own Metadata request, which the
        # client may send to any broker it knows, and another broker's image may lag broker 3's.
        wait_until(lambda: (seen_by_3("unclean"), seen_by_3("clean"), seen_by_3("later"))
                   == ((2, [1, 2], [2]), (-1, [1, 2], [1]), (-1, [1, 2], [1])), timeout=60,
                   what="the unclean topic led by the follower, alone in sync, while the "
                        "clean ones wait for broker 1")
        # Turned on while the partition waits, the config elects at once.
        later = ConfigResource("topic", "later", incremental_configs=[ConfigEntry(
            "unclean.leader.election.enable", "true",
            incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([later])[later].result(30)
        wait_until(lambda: seen_by_3("later") == (2, [1, 2], [2]), timeout=30,
                   what="the topic turned unclean led by the follower")
        nodes[1].start()
        wait_until(lambda: seen_by_3("clean") == (1, [1, 2], [1, 2]), timeout=60,
                   what="the clean topic led by its last in-sync replica again")
        assert [v for v, _ in read_from(nodes[3], "clean", 0, 1)] == [b"only-on-1"]
        wait_until(lambda: seen_by_3("unclean") == (2, [1, 2], [1, 2]), timeout=60,
                   what="the old leader following the unclean one")
        assert read_from(nodes[3], "unclean", 0, 1, timeout=3) == [], "its record is gone"


def test_a_broker_back_without_its_data_does_not_lead_what_it_lost(tmp_path):
    """Broker 2 comes back with its data directory emptied (a disk replaced; the metadata log
    kept, as Kafka keeps `metadata.log.dir` apart): it registers with a new directory id.
    Where it was the last in-sync replica it must not lead, or broker 1 would truncate what it
    holds to match nothing: the partition waits without a leader or an in-sync replica, and
    broker 1 keeps its records. Where it followed, it copies the partition again from the
    leader and is back in sync. Five nodes, so the metadata log keeps its majority."""
    with running_cluster(tmp_path, 5, SESSION_TIMEOUT_MS) as nodes:
        admin = AdminClient({"bootstrap.servers": nodes[3].bootstrap})
        topics = [NewTopic("lost", 1, replica_assignment=[[2, 1]]),
                  NewTopic("rebuilt", 1, replica_assignment=[[4, 2]])]
        for future in admin.create_topics(topics).values():
            future.result(30)
        seen_by_3 = lambda topic: partitions_of(nodes[3], topic).get(0)  # noqa: E731
        wait_until(lambda: seen_by_3("lost") == (2, [1, 2], [1, 2]), timeout=30,
                   what="lost led by 2 with 1 in sync")
        wait_until(lambda: seen_by_3("rebuilt") == (4, [2, 4], [2, 4]), timeout=30,
                   what="rebuilt led by 4 with 2 in sync")
        for topic, leader in (("lost", 2), ("rebuilt", 4)):
            acked, failed = produce_acked(nodes[leader], topic, [b"r%d" % n for n in range(50)])
            assert not failed and len(acked) == 50
        nodes[1].kill()
        wait_until(lambda: seen_by_3("lost") == (2, [1, 2], [2]), timeout=30,
                   what="broker 1 out of the in-sync set")
        p = Producer({"bootstrap.servers": nodes[2].bootstrap, "acks": "1"})
        p.produce("lost", b"only-on-2", partition=0)
        assert p.flush(10) == 0
        nodes[2].kill()
        wait_until(lambda: seen_by_3("lost") == (-1, [1, 2], [2]), timeout=30,
                   what="the partition waiting for broker 2")
        data = Path(nodes[2].data_dir)
        shutil.rmtree(data / "topics")
        (data / "meta.json").unlink()
        nodes[2].start()
        wait_until(lambda: 2 in metadata_brokers(nodes[3]), timeout=30, what="broker 2 back")
        assert seen_by_3("lost") == (-1, [1, 2], []), "broker 2 holds nothing it could lead"
        nodes[1].start()
        wait_until(lambda: 1 in metadata_brokers(nodes[3]), timeout=30, what="broker 1 back")
        assert seen_by_3("lost") == (-1, [1, 2], []), "broker 1 is not known to hold it all"
        assert b"r49" in segment_bytes(nodes[1], "lost", 0), "broker 1 kept its records"
        wait_until(lambda: seen_by_3("rebuilt") == (4, [2, 4], [2, 4]), timeout=60,
                   what="the emptied follower back in sync")
        wait_until(lambda: segment_bytes(nodes[2], "rebuilt", 0)
                   == segment_bytes(nodes[4], "rebuilt", 0), timeout=20,
                   what="the emptied follower's copy identical to its leader's")


def committed(broker, group, topic, partitions):
    """{partition: committed offset} of `group` as its coordinator answers through `broker`;
    None while that fails (the coordinator moving)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        found = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=5)
        return {tp.partition: tp.offset for tp in found}
    except KafkaException:
        return None
    finally:
        c.close()


def test_group_offsets_survive_the_coordinators_broker(cluster):
    """`__consumer_offsets` has three replicas on three brokers: offsets committed through a
    coordinator are on every in-sync replica before the commit is answered, and a follower
    that becomes the coordinator serves them."""
    from test_cluster_topics import find_coordinator
    nodes = list(cluster.values())
    create(cluster[1], "work", 3, 3)
    wait_until(lambda: led_everywhere(nodes, "work", 3, 3), timeout=30, what="work placed")
    wait_until(lambda: find_coordinator(cluster[1], "billing", 0)[0] == 0, timeout=30,
               what="a coordinator for the group")
    offsets = wait_until(lambda: led_everywhere(nodes, "__consumer_offsets", 50, 3),
                         timeout=60, what="__consumer_offsets with three in-sync replicas")
    assert all(len(replicas) == 3 for _, replicas, _ in offsets.values())
    expected = {p: 100 + p for p in range(3)}
    c = Consumer({"bootstrap.servers": cluster[1].bootstrap, "group.id": "billing",
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("work", p, o) for p, o in expected.items()],
             asynchronous=False)
    c.close()
    _, coordinator = find_coordinator(cluster[1], "billing", 0)
    cluster[coordinator].kill()
    survivor = next(b for i, b in cluster.items() if i != coordinator)
    moved = wait_until(lambda: find_coordinator(survivor, "billing", 0)[1] != coordinator
                       and find_coordinator(survivor, "billing", 0)[0] == 0,
                       timeout=30, what="the group's coordinator on another broker")
    assert moved
    got = wait_until(lambda: committed(survivor, "billing", "work", 3), timeout=30,
                     what="the committed offsets from the new coordinator")
    assert got == expected, got


def test_delete_records_moves_the_log_start_on_every_replica(cluster):
    """DeleteRecords on the leader: each follower moves its log start offset with the leader's
    (it learns it from its fetches), so a new leader after a failover starts there too."""
    nodes = list(cluster.values())
    leader, _ = led_and_written(cluster, "trimmed", b"t", 100)
    admin = AdminClient({"bootstrap.servers": cluster[leader].bootstrap})
    result = admin.delete_records([TopicPartition("trimmed", 0, 60)])
    assert list(result.values())[0].result(30).low_watermark == 60

    def start_offset(broker):
        path = Path(broker.data_dir) / "topics" / "trimmed" / "0" / "log-start-offset"
        return int(path.read_text()) if path.exists() else None

    wait_until(lambda: all(start_offset(b) == 60 for b in nodes), timeout=20,
               what="every replica's log start offset at 60")
    cluster[leader].kill()
    survivor = next(b for i, b in cluster.items() if i != leader)
    wait_until(lambda: led_everywhere([b for i, b in cluster.items() if i != leader],
                                      "trimmed", 1, 2), timeout=30, what="a new leader")
    c = Consumer({"bootstrap.servers": survivor.bootstrap, "group.id": "unused"})

    def watermarks():
        # A new client may not know the partition yet right after the failover
        # (librdkafka's "Unknown partition"): asked again until its metadata has it.
        try:
            return c.get_watermark_offsets(TopicPartition("trimmed", 0), timeout=10)
        except KafkaException:
            return None

    try:
        low, high = wait_until(watermarks, timeout=30, what="the watermarks after the failover")
    finally:
        c.close()
    assert (low, high) == (60, 100)
