"""Topics in the metadata log, on three `sluice serve` processes: CreateTopics and
CreatePartitions (from any broker, librdkafka's and kafka-python's admin clients) place
partitions round-robin over the three brokers; every broker lists every partition with its
leader; records produced and consumed through any broker reach the right leader; a group of
three members on different brokers shares a topic; `kill -9` of a broker leaves its partitions
without a leader until it is back; `kill -9` of the active controller loses no topic;
DeleteTopics removes every broker's logs."""

import json
import re
import signal
import struct
import time
import urllib.request
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from conftest import wait_until
from helpers import produce_all, producer, read_kafka_python
from rawwire import Reader, coordinator, raw, read_frame, request, uvarint
from test_cluster import agreed, running_cluster

SESSION_TIMEOUT_MS = 3000


@pytest.fixture
def cluster(tmp_path):
    with running_cluster(tmp_path, 3, SESSION_TIMEOUT_MS) as nodes:
        yield nodes


def create(broker, name, partitions, replication_factor=-1):
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = client.create_topics([NewTopic(name, partitions, replication_factor)])
    futures[name].result(timeout=30)


def leaders(broker, topic):
    """{partition: leader} as `broker` answers Metadata; partitions without a leader are -1."""
    # Every topic: asking for one by name would auto-create it.
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None and not t.partitions:
        return {}
    return {p: m.leader for p, m in t.partitions.items()}


def leaders_by_topic(broker):
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    return md.topics


def every_broker_sees(nodes, topic, partitions):
    """The {partition: leader} map, once every live broker lists `partitions` of them led."""
    maps = [leaders(b, topic) for b in nodes]
    first = maps[0]
    if len(first) != partitions or any(m != first for m in maps) or -1 in first.values():
        return None
    return first


def test_created_topics_spread_over_the_brokers_and_every_broker_lists_them(cluster):
    nodes = list(cluster.values())
    create(cluster[2], "spread", 12)
    started = time.monotonic()
    placed = wait_until(lambda: every_broker_sees(nodes, "spread", 12), timeout=20,
                        what="every broker listing the topic")
    usable_after = time.monotonic() - started
    assert Counter(placed.values()) == {1: 4, 2: 4, 3: 4}, placed
    # kafka-python's admin, through another broker, and CreatePartitions the same way.
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic
    kadmin = KafkaAdminClient(bootstrap_servers=cluster[3].bootstrap)
    try:
        kadmin.create_topics([KNewTopic("spread-kp", 12, 1)])
    finally:
        kadmin.close()
    placed = wait_until(lambda: every_broker_sees(nodes, "spread-kp", 12), timeout=20,
                        what="every broker listing kafka-python's topic")
    assert Counter(placed.values()) == {1: 4, 2: 4, 3: 4}, placed
    client = AdminClient({"bootstrap.servers": cluster[1].bootstrap})
    client.create_partitions([NewPartitions("spread", 15)])["spread"].result(timeout=30)
    placed = wait_until(lambda: every_broker_sees(nodes, "spread", 15), timeout=20,
                        what="every broker listing the new partitions")
    assert set(placed[p] for p in (12, 13, 14)) == {1, 2, 3}, placed
    print(f"CreateTopics to usable on every broker: {usable_after:.2f}s")


def test_a_replication_factor_above_the_broker_count_is_refused(cluster):
    with pytest.raises(KafkaException) as refused:
        create(cluster[1], "replicated", 3, replication_factor=4)
    assert refused.value.args[0].name() == "INVALID_REPLICATION_FACTOR"


def read_all(broker, topic, partitions, count, timeout=30, isolation="read_uncommitted"):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                  "enable.auto.commit": False, "isolation.level": isolation})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                got.append(m.value())
        return got
    finally:
        c.close()


def test_records_go_through_every_broker_to_their_leaders(cluster):
    nodes = list(cluster.values())
    create(cluster[1], "routed", 6)
    wait_until(lambda: every_broker_sees(nodes, "routed", 6), timeout=20, what="topic placed")
    for i, b in cluster.items():
        produce_all(producer(b), "routed", [(b"%d-%d" % (i, n), b"%d-%d" % (i, n))
                                            for n in range(30)])
    expected = sorted(b"%d-%d" % (i, n) for i in cluster for n in range(30))
    for b in nodes:
        assert sorted(read_all(b, "routed", 6, 90)) == expected
    # kafka-python too, bootstrapped on one broker, reading every partition from its leader.
    from kafka import KafkaConsumer, KafkaProducer
    kp = KafkaProducer(bootstrap_servers=cluster[3].bootstrap)
    for n in range(12):
        kp.send("routed", key=b"kp-%d" % n, value=b"kp-%d" % n)
    kp.flush(30)
    kp.close()
    kc = KafkaConsumer("routed", bootstrap_servers=cluster[2].bootstrap,
                       auto_offset_reset="earliest", consumer_timeout_ms=15000,
                       enable_auto_commit=False)
    values = sorted(m.value for m in read_kafka_python(kc, len(expected) + 12))
    kc.close()
    assert values == sorted(expected + [b"kp-%d" % n for n in range(12)])
    # Each broker holds the logs of the partitions it leads, and only those.
    placed = every_broker_sees(nodes, "routed", 6)
    for i, b in cluster.items():
        held = sorted(int(p.name) for p in (b.data_dir / "topics" / "routed").iterdir()
                      if p.is_dir())
        assert held == sorted(p for p, leader in placed.items() if leader == i), (i, held)


def test_a_group_spread_over_brokers_shares_a_topic(cluster):
    nodes = list(cluster.values())
    create(cluster[1], "shared", 12)
    wait_until(lambda: every_broker_sees(nodes, "shared", 12), timeout=20, what="topic placed")
    produce_all(producer(cluster[1]), "shared", [(b"k%d" % n, b"v%d" % n) for n in range(120)])
    members = [Consumer({"bootstrap.servers": b.bootstrap, "group.id": "spread-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
               for b in nodes]
    for m in members:
        m.subscribe(["shared"])
    seen = {}
    deadline = time.monotonic() + 60
    while len(seen) < 120 and time.monotonic() < deadline:
        for i, m in enumerate(members):
            msg = m.poll(0.2)
            if msg is not None and msg.error() is None:
                seen[msg.value()] = i
                m.commit(msg, asynchronous=False)
    try:
        assert len(seen) == 120, f"read {len(seen)} of 120"
        # Once the group settled, all three members had partitions.
        wait_until(lambda: all(m.assignment() for m in members) or
                   [m.poll(0.1) for m in members] and False, timeout=30,
                   what="every member assigned")
        owned = [set(tp.partition for tp in m.assignment()) for m in members]
        assert set().union(*owned) == set(range(12)) and sum(map(len, owned)) == 12, owned
    finally:
        for m in members:
            m.close()
    # The committed offsets are the coordinator's, wherever it is: every broker finds them.
    for b in nodes:
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "spread-group"})
        committed = c.committed([TopicPartition("shared", p) for p in range(12)], timeout=15)
        c.close()
        assert sum(max(o.offset, 0) for o in committed) == 120


def test_a_killed_broker_leaves_its_partitions_leaderless_until_it_returns(cluster):
    nodes = list(cluster.values())
    create(cluster[1], "fenced", 6)
    placed = wait_until(lambda: every_broker_sees(nodes, "fenced", 6), timeout=20,
                        what="topic placed")
    produce_all(producer(cluster[1]), "fenced", [(b"k%d" % n, b"v%d" % n) for n in range(60)])
    victim = 3
    cluster[victim].kill()
    survivors = [b for i, b in cluster.items() if i != victim]
    orphans = {p for p, leader in placed.items() if leader == victim}

    def leaderless():
        now = [leaders(b, "fenced") for b in survivors]
        return all({p for p, leader in m.items() if leader == -1} == orphans for m in now)

    wait_until(leaderless, timeout=30, what="the killed broker's partitions without a leader")
    # The other partitions still take records.
    kept = [p for p in placed if p not in orphans]
    produce_all(producer(cluster[1]), "fenced", [(b"x", b"after")], partition=kept[0])
    cluster[victim].start()
    back = wait_until(lambda: every_broker_sees(nodes, "fenced", 6), timeout=30,
                      what="the restarted broker leading again")
    assert back == placed
    assert len(read_all(cluster[1], "fenced", 6, 61)) == 61


def test_killing_the_active_controller_loses_no_topic(cluster):
    nodes = list(cluster.values())
    create(cluster[1], "before", 3)
    wait_until(lambda: every_broker_sees(nodes, "before", 3), timeout=20, what="topic placed")
    _, controller = agreed(nodes, [1, 2, 3])
    cluster[controller].kill()
    survivors = [b for i, b in cluster.items() if i != controller]
    expected = sorted(i for i in cluster if i != controller)
    wait_until(lambda: agreed(survivors, expected), timeout=30, what="a new controller")
    create(survivors[0], "after", 2)
    for b in survivors:
        wait_until(lambda b=b: len(leaders(b, "after")) == 2, timeout=20, what="new topic listed")
        assert len(leaders(b, "before")) == 3


def test_deleting_a_topic_removes_every_brokers_logs(cluster):
    nodes = list(cluster.values())
    create(cluster[1], "doomed", 6)
    wait_until(lambda: every_broker_sees(nodes, "doomed", 6), timeout=20, what="topic placed")
    assert all((b.data_dir / "topics" / "doomed").exists() for b in nodes)
    client = AdminClient({"bootstrap.servers": cluster[2].bootstrap})
    client.delete_topics(["doomed"])["doomed"].result(timeout=30)
    wait_until(lambda: not any((b.data_dir / "topics" / "doomed").exists() for b in nodes),
               timeout=20, what="every broker's logs removed")
    # A broker deletes the logs, then publishes the image without the topic: Metadata follows
    # a moment after the files go.
    wait_until(lambda: all(leaders(b, "doomed") == {} for b in nodes), timeout=20,
               what="every broker's Metadata without the topic")


def produce_v10(broker, topic, partition):
    """A flexible Produce v10 of one record: (error code, current leader (id, epoch) or None,
    {node id: (host, port)} from node_endpoints)."""
    from rawwire import batch, record
    name = topic.encode()
    records = batch(record(b"v"), 1)
    body = b"\x00" + struct.pack(">hi", 1, 5000)  # no transactional id, acks=1
    body += uvarint(2) + uvarint(len(name) + 1) + name
    body += uvarint(2) + struct.pack(">i", partition) + uvarint(len(records) + 1) + records
    body += b"\x00" + b"\x00" + b"\x00"
    header = struct.pack(">hhih", 0, 10, 7, 1) + b"t" + b"\x00"
    s = raw(broker)
    try:
        s.sendall(struct.pack(">i", len(header + body)) + header + body)
        r = Reader(read_frame(s))
    finally:
        s.close()
    assert r.take(">i") == 7
    r.tagged()
    assert r.uvarint() == 2
    r.compact_bytes()
    assert r.uvarint() == 2
    r.take(">i")
    error = r.take(">h")
    r.take(">q"), r.take(">q"), r.take(">q")
    assert r.uvarint() == 1  # no record errors
    r.compact_bytes()
    leader = None
    if 0 in (fields := r.tagged()):
        leader = struct.unpack(">ii", fields[0][:8])
    r.tagged()
    r.take(">i")
    endpoints = {}
    if 0 in (fields := r.tagged()):
        e = Reader(fields[0])
        for _ in range(e.uvarint() - 1):
            node, host, port = e.take(">i"), e.compact_bytes().decode(), None
            port = e.take(">i")
            e.compact_bytes()
            e.tagged()
            endpoints[node] = (host, port)
    return error, leader, endpoints


def test_not_leader_names_the_current_leader(cluster):
    """KIP-951: Produce v10+ refused with NOT_LEADER_OR_FOLLOWER carries the leader's id,
    epoch and endpoint, so a client moves without a Metadata round trip."""
    nodes = list(cluster.values())
    create(cluster[1], "pointed", 3)
    placed = wait_until(lambda: every_broker_sees(nodes, "pointed", 3), timeout=20,
                        what="topic placed")
    partition, leader = next((p, l) for p, l in placed.items() if l != 1)
    error, current, endpoints = produce_v10(cluster[1], "pointed", partition)
    assert error == 6, error  # NOT_LEADER_OR_FOLLOWER
    assert current is not None and current[0] == leader, current
    assert endpoints == {leader: ("127.0.0.1", cluster[leader].port)}, endpoints
    # Its leader takes the same request.
    error, current, endpoints = produce_v10(cluster[leader], "pointed", partition)
    assert (error, endpoints) == (0, {}), (error, current, endpoints)


def test_a_transaction_spans_partitions_of_every_broker(cluster):
    """The transaction coordinator sits on one broker; the transaction's partitions and its
    group's offsets on all three. Markers travel as WriteTxnMarkers: a read_committed
    consumer sees the committed records on every partition, never the aborted ones, and the
    offsets sent to the transaction are the group's once it commits."""
    from confluent_kafka import Producer
    nodes = list(cluster.values())
    create(cluster[1], "txn-in", 3)
    create(cluster[1], "txn-out", 6)
    placed = wait_until(lambda: every_broker_sees(nodes, "txn-out", 6), timeout=20,
                        what="topic placed")
    assert set(placed.values()) == {1, 2, 3}, placed
    wait_until(lambda: every_broker_sees(nodes, "txn-in", 3), timeout=20, what="topic placed")
    produce_all(producer(cluster[2]), "txn-in", [(b"in-%d" % n, b"in-%d" % n) for n in range(12)])

    p = Producer({"bootstrap.servers": cluster[1].bootstrap, "transactional.id": "cross",
                  "linger.ms": 5})
    p.init_transactions(30)
    p.begin_transaction()
    for n in range(60):
        p.produce("txn-out", key=b"c%d" % n, value=b"committed-%d" % n, partition=n % 6)
    p.commit_transaction(30)
    p.begin_transaction()
    for n in range(30):
        p.produce("txn-out", key=b"a%d" % n, value=b"aborted-%d" % n, partition=n % 6)
    p.abort_transaction(30)

    # Consume-transform-produce: the group's offsets commit with the transaction.
    c = Consumer({"bootstrap.servers": cluster[3].bootstrap, "group.id": "cross-group",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.subscribe(["txn-in"])
    consumed = []
    deadline = time.monotonic() + 60
    while len(consumed) < 12 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            consumed.append(m)
    assert len(consumed) == 12
    p.begin_transaction()
    for m in consumed:
        p.produce("txn-out", key=m.key(), value=b"moved-" + m.value(), partition=0)
    p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
    p.commit_transaction(30)
    c.close()

    for b in nodes:
        got = read_all(b, "txn-out", 6, 72, timeout=30, isolation="read_committed")
        values = sorted(v for v in got)
        assert len(values) == 72, len(values)
        assert not any(v.startswith(b"aborted") for v in values)
    check = Consumer({"bootstrap.servers": cluster[2].bootstrap, "group.id": "cross-group"})
    committed = check.committed([TopicPartition("txn-in", i) for i in range(3)], timeout=15)
    check.close()
    assert sum(max(o.offset, 0) for o in committed) == 12


def find_coordinator(broker, key, key_type):
    """(error, node id) FindCoordinator v1 answers for `key` (key type 0: a group, 1: a
    transactional id)."""
    return coordinator("127.0.0.1", broker.port, key, key_type)


def transaction_coordinator(broker, transactional_id):
    """The (error, node id) FindCoordinator names for `transactional_id`."""
    return find_coordinator(broker, transactional_id, 1)


def coordinator_shards(broker, kind):
    """`sluice_coordinator_shards{kind=...}` on `broker`'s /metrics."""
    text = urllib.request.urlopen(broker.http + "/metrics", timeout=10).read().decode()
    found = re.search(r'^sluice_coordinator_shards\{kind="%s"\} (\d+)' % kind, text, re.M)
    assert found, f"no coordinator_shards gauge for {kind}"
    return int(found.group(1))


def test_coordinators_leave_a_fenced_broker_for_in_sync_followers(cluster):
    """A broker fenced while alive (stopped past its session) stops coordinating: its
    `__consumer_offsets` and `__transaction_state` partitions (three replicas each) are led by
    in-sync followers in a new epoch, whose coordinators load them with every committed
    offset and transactional id replayed, and the fenced broker unloads its coordinators once
    it runs again."""
    from confluent_kafka import Producer
    nodes = list(cluster.values())
    create(cluster[1], "moving", 3)
    wait_until(lambda: every_broker_sees(nodes, "moving", 3), timeout=20, what="topic placed")
    produce_all(producer(cluster[1]), "moving", [(b"k%d" % n, b"v%d" % n) for n in range(30)])
    offsets = wait_until(lambda: every_broker_sees(nodes, "__consumer_offsets", 50), timeout=30,
                         what="__consumer_offsets placed")
    transaction_coordinator(cluster[1], "first")
    states = wait_until(lambda: every_broker_sees(nodes, "__transaction_state", 50), timeout=30,
                        what="__transaction_state placed")
    group = "moving-group"
    coordinator = wait_until(lambda: (lambda a: a[1] if a[0] == 0 else None)(
        find_coordinator(cluster[1], group, 0)), timeout=20, what="a group coordinator")
    victim = cluster[coordinator]
    other = next(b for i, b in cluster.items() if i != coordinator)
    tid = next(f"moving-txn-{n}" for n in range(1000)
               if transaction_coordinator(cluster[1], f"moving-txn-{n}") == (0, coordinator))
    led = {
        "group": sum(1 for leader in offsets.values() if leader == coordinator),
        "transaction": sum(1 for leader in states.values() if leader == coordinator),
    }
    assert {kind: coordinator_shards(victim, kind) for kind in led} == led

    def commit_all(broker, expected):
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            c.subscribe(["moving"])
            got = 0
            deadline = time.monotonic() + 30
            while got < expected and time.monotonic() < deadline:
                msg = c.poll(0.2)
                if msg is not None and msg.error() is None:
                    got += 1
            assert got == expected, f"read {got} of {expected}"
            c.commit(asynchronous=False)
        finally:
            c.close()

    def committed(broker):
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
        try:
            found = c.committed([TopicPartition("moving", p) for p in range(3)], timeout=15)
        finally:
            c.close()
        return sum(max(o.offset, 0) for o in found)

    def transaction(value):
        p = Producer({"bootstrap.servers": other.bootstrap, "transactional.id": tid})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce("moving", value=value, partition=0)
        p.commit_transaction(30)

    commit_all(other, 30)
    transaction(b"before")
    victim.proc.send_signal(signal.SIGSTOP)
    try:
        moved = wait_until(lambda: (lambda a: a[1] if a[0] == 0 and a[1] != coordinator
                                    else None)(find_coordinator(other, group, 0)),
                           timeout=30, what="the group's coordinator on an in-sync follower")
        assert cluster[moved].alive()
        wait_until(lambda: (lambda a: a[0] == 0 and a[1] != coordinator)(
            transaction_coordinator(other, tid)), timeout=30,
            what="the transactional id's coordinator on an in-sync follower")
        assert committed(other) == 30
    finally:
        victim.proc.send_signal(signal.SIGCONT)
    for kind in led:
        victim.wait_for_log(f'coordinator unloaded kind="{kind}"', timeout=30)
    transaction(b"after")
    commit_all(other, 2)
    # Past both records (and the markers after them, whose offsets a position may include).
    assert committed(victim) >= 32
    got = read_all(cluster[1], "moving", 3, 32, isolation="read_committed")
    assert b"before" in got and b"after" in got


def test_transaction_coordinators_spread_over_the_brokers(cluster):
    """`__transaction_state` has 50 partitions spread like any topic; each transactional id's
    coordinator is the leader of its partition, and transactions on every one of them
    commit."""
    from confluent_kafka import Producer
    nodes = list(cluster.values())
    # The first transactional client has it created (FindCoordinator), as in Kafka.
    assert "__transaction_state" not in leaders_by_topic(cluster[1])
    transaction_coordinator(cluster[1], "first")
    placed = wait_until(lambda: every_broker_sees(nodes, "__transaction_state", 50), timeout=30,
                        what="__transaction_state placed")
    assert sorted(Counter(placed.values()).values()) == [16, 17, 17], placed
    create(cluster[1], "spread-txn", 3)
    wait_until(lambda: every_broker_sees(nodes, "spread-txn", 3), timeout=20, what="topic placed")
    ids = [f"spread-{n}" for n in range(9)]
    coordinators = {}
    for tid in ids:
        error, node = wait_until(lambda tid=tid: (lambda a: a if a[0] == 0 else None)(
            transaction_coordinator(cluster[1], tid)), timeout=20, what="a coordinator")
        coordinators[tid] = node
    assert set(coordinators.values()) == {1, 2, 3}, coordinators
    for tid in ids:
        p = Producer({"bootstrap.servers": cluster[2].bootstrap, "transactional.id": tid})
        p.init_transactions(30)
        p.begin_transaction()
        for n in range(3):
            p.produce("spread-txn", value=f"{tid}-{n}".encode(), partition=n)
        p.commit_transaction(30)
    got = read_all(cluster[3], "spread-txn", 3, 27, isolation="read_committed")
    assert sorted(got) == sorted(f"{tid}-{n}".encode() for tid in ids for n in range(3))


def test_the_cli_and_the_http_api_follow_partition_leaders(cluster):
    """`sluice produce`/`consume` and the HTTP API reach each partition's leader, whichever
    broker they start from."""
    from test_cli import sluice
    from test_http import call
    nodes = list(cluster.values())
    create(cluster[1], "doors", 6)
    placed = wait_until(lambda: every_broker_sees(nodes, "doors", 6), timeout=20,
                        what="topic placed")
    assert set(placed.values()) == {1, 2, 3}
    lines = "".join(f"cli-{n}\n" for n in range(60)).encode()
    sluice(cluster[1], "produce", "doors", input=lines)
    status, body = call(cluster[3], "POST", "/v1/topics/doors/records",
                        {"records": [{"value": f"http-{n}", "partition": n % 6}
                                     for n in range(12)]})
    assert status == 200, body
    out = sluice(cluster[2], "consume", "doors", "--format", "json").stdout.decode()
    values = sorted(json.loads(line)["value"] for line in out.splitlines())
    assert values == sorted([f"cli-{n}" for n in range(60)] + [f"http-{n}" for n in range(12)])
    over_http = []
    for p in range(6):
        status, body = call(cluster[1], "GET", f"/v1/topics/doors/partitions/{p}/records?offset=0&max=100")
        assert status == 200, body
        over_http += [r["value"] for r in body["records"]]
    assert sorted(over_http) == values


def test_a_partition_leader_verifies_a_transactional_batch_with_a_remote_coordinator(cluster):
    """KIP-890 across brokers: a transactional batch for a partition not in the producer's
    transaction is refused (INVALID_TXN_STATE) by a leader whose transaction coordinator is
    another broker; once the partition is added, batches pipelined on one connection all land,
    in order."""
    from kafka.net.compat import KafkaNetClient
    from kafka.protocol.producer import (AddPartitionsToTxnRequest, EndTxnRequest,
                                         InitProducerIdRequest, ProduceRequest)
    from kafka.record.memory_records import MemoryRecordsBuilder
    nodes = list(cluster.values())
    create(cluster[1], "verified", 3)
    placed = wait_until(lambda: every_broker_sees(nodes, "verified", 3), timeout=20,
                        what="topic placed")
    _, coordinator = wait_until(lambda: (lambda a: a if a[0] == 0 else None)(
        transaction_coordinator(cluster[1], "zombie")), timeout=20, what="a coordinator")
    partition, leader = next((p, l) for p, l in placed.items() if l != coordinator)
    client = KafkaNetClient(bootstrap_servers=[cluster[1].bootstrap])
    client.check_version(timeout_ms=10_000)
    init = client.send_and_receive(coordinator, InitProducerIdRequest(
        transactional_id="zombie", transaction_timeout_ms=60_000, version=2))
    assert init.error_code == 0
    pid, epoch = init.producer_id, init.producer_epoch

    def produce(sequence):
        builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
        builder.set_producer_state(pid, epoch, sequence, True)
        builder.append(timestamp=int(time.time() * 1000), key=None, value=b"v%d" % sequence)
        builder.close()
        data = ProduceRequest.TopicProduceData(name="verified", partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(
                index=partition, records=builder.buffer())])
        return client.send(leader, ProduceRequest(
            transactional_id="zombie", acks=-1, timeout_ms=10_000, version=8, topic_data=[data]))

    def code(future):
        client.poll(timeout_ms=15_000, future=future)
        assert future.succeeded(), future.exception
        return future.value.responses[0].partition_responses[0].error_code

    assert code(produce(0)) == 48  # INVALID_TXN_STATE: not in the transaction
    topic = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name="verified",
                                                               partitions=[partition])
    added = client.send_and_receive(coordinator, AddPartitionsToTxnRequest(
        v3_and_below_transactional_id="zombie", v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch, v3_and_below_topics=[topic], version=3))
    assert added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code == 0
    pipelined = [produce(s) for s in range(3)]
    assert [code(f) for f in pipelined] == [0, 0, 0]
    end = client.send_and_receive(coordinator, EndTxnRequest(
        transactional_id="zombie", producer_id=pid, producer_epoch=epoch, committed=True,
        version=3))
    assert end.error_code == 0
    client.close()
    got = read_all(cluster[2], "verified", 3, 3, isolation="read_committed")
    assert got == [b"v0", b"v1", b"v2"]


def test_an_internal_topic_cannot_grow(cluster):
    """`__consumer_offsets`' partition count places every group (Kafka's hash of its id):
    CreatePartitions refuses to change it, as DeleteTopics refuses to delete it, and a client
    cannot create `__transaction_state` its own way; asking Metadata for it creates it as the
    broker does."""
    nodes = list(cluster.values())
    with pytest.raises(KafkaException) as refused:
        create(cluster[1], "__transaction_state", 1)
    assert refused.value.args[0].name() == "INVALID_REQUEST"
    # As with Kafka, a client may have to ask again: one answer can come from its cache, or
    # before the topic is in the answering broker's metadata.
    asker = AdminClient({"bootstrap.servers": cluster[3].bootstrap})
    wait_until(lambda: len(asker.list_topics("__transaction_state", timeout=10)
                           .topics["__transaction_state"].partitions) == 50,
               timeout=30, what="__transaction_state created by asking Metadata for it")
    wait_until(lambda: every_broker_sees(nodes, "__consumer_offsets", 50), timeout=30,
               what="__consumer_offsets placed")
    client = AdminClient({"bootstrap.servers": cluster[1].bootstrap})
    with pytest.raises(KafkaException) as refused:
        client.create_partitions([NewPartitions("__consumer_offsets", 60)])[
            "__consumer_offsets"].result(timeout=30)
    assert refused.value.args[0].name() == "TOPIC_EXCEPTION"  # librdkafka's name for 17
    assert len(leaders(cluster[2], "__consumer_offsets")) == 50


def test_a_topic_deleted_while_a_broker_was_down_is_removed_when_it_returns(cluster):
    """A stray: broker 3 is killed, its topic is deleted and a topic of the same name created
    while it is down; back, it deletes its old logs (the image no longer holds that topic id)
    and serves the new topic's partitions from the brokers that hold them."""
    nodes = list(cluster.values())
    create(cluster[1], "stray", 6)
    wait_until(lambda: every_broker_sees(nodes, "stray", 6), timeout=20, what="topic placed")
    old_dir = cluster[3].data_dir / "topics" / "stray"
    assert any(p.is_dir() for p in old_dir.iterdir())
    cluster[3].kill()
    survivors = [cluster[1], cluster[2]]
    wait_until(lambda: agreed(survivors, [1, 2]), timeout=30, what="broker 3 fenced")
    client = AdminClient({"bootstrap.servers": cluster[1].bootstrap})
    client.delete_topics(["stray"])["stray"].result(timeout=30)
    create(cluster[2], "stray", 4)
    placed = wait_until(lambda: every_broker_sees(survivors, "stray", 4), timeout=20,
                        what="the new topic placed")
    assert set(placed.values()) == {1, 2}
    produce_all(producer(cluster[1]), "stray", [(b"k%d" % n, b"new-%d" % n) for n in range(20)])
    assert old_dir.exists(), "broker 3 was down: its old logs are still there"
    cluster[3].start()
    wait_until(lambda: agreed(nodes, [1, 2, 3]), timeout=30, what="broker 3 back")
    assert not old_dir.exists(), "the stray's logs stayed on broker 3"
    assert sorted(read_all(cluster[3], "stray", 4, 20)) == sorted(b"new-%d" % n for n in range(20))
