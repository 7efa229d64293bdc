"""Consumer groups against the real binary, with real clients: librdkafka (confluent-kafka),
kafka-python and aiokafka each run their own group protocol code against Sluice's
coordinator."""

import asyncio
import select
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions

from conftest import wait_until
from helpers import admin, create_topic, producer

# Short enough that a test does not wait long for the first rebalance, long enough that
# members created together land in one generation.
INITIAL_DELAY_MS = 1000
SESSION_MS = 6000  # Kafka's group.min.session.timeout.ms


@pytest.fixture
def groups_broker(start_broker):
    return start_broker({
        "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS": str(INITIAL_DELAY_MS),
        # KIP-848 groups: Kafka's defaults are 45 s and 5 s; shorter keeps the tests short.
        "SLUICE_GROUP_CONSUMER_SESSION_TIMEOUT_MS": str(SESSION_MS),
        "SLUICE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS": "500",
    })


def member(broker, group, **conf):
    return Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 500,
        **conf,
    })


def fill(broker, topic, partitions, count, start=0):
    """Produces the values start..start+count, spread evenly over the partitions."""
    p = producer(broker)
    for i in range(start, start + count):
        p.produce(topic, str(i).encode(), partition=i % partitions)
    assert p.flush(30) == 0


def poll_until(consumers, done, seen, timeout=30, what="records"):
    """Polls every consumer in turn until done(); seen[i] collects consumer i's values."""
    def step():
        for i, c in enumerate(consumers):
            for m in c.consume(num_messages=1000, timeout=0.05):
                assert m.error() is None, m.error()
                seen[i].append(int(m.value()))
        return done()
    wait_until(step, timeout=timeout, interval=0, what=what)


def assigned(c):
    return sorted(tp.partition for tp in c.assignment())


def test_three_members_share_six_partitions_then_survivors_take_over(groups_broker, tmp_path):
    b = groups_broker
    create_topic(b, "orders", partitions=6)
    fill(b, "orders", 6, 600)
    members = [member(b, "billing") for _ in range(3)]
    for c in members:
        c.subscribe(["orders"])
    seen = [[], [], []]
    poll_until(members, lambda: sum(map(len, seen)) >= 600, seen)
    everything = sorted(v for s in seen for v in s)
    assert everything == list(range(600)), "every record exactly once across the group"
    assert all(len(assigned(c)) == 2 for c in members), [assigned(c) for c in members]
    assert sorted(p for c in members for p in assigned(c)) == list(range(6))

    # One member leaves cleanly: the other two take over its partitions.
    members[2].close()
    survivors = members[:2]
    wait_until(lambda: [c.poll(0.05) for c in survivors] and
               sorted(p for c in survivors for p in assigned(c)) == list(range(6)),
               timeout=30, interval=0, what="survivors owning all six partitions")
    assert [len(assigned(c)) for c in survivors] == [3, 3]
    fill(b, "orders", 6, 300, start=600)
    seen = [[], []]
    poll_until(survivors, lambda: sum(map(len, seen)) >= 300, seen)
    assert sorted(v for s in seen for v in s) == list(range(600, 900))
    for c in survivors:
        c.close()


KILLABLE_MEMBER = r"""
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.1)
    if c.assignment():
        print("assigned", flush=True)
"""


def test_a_killed_member_loses_its_partitions_after_the_session_timeout(groups_broker, tmp_path):
    b = groups_broker
    create_topic(b, "jobs", partitions=4)
    script = tmp_path / "member.py"
    script.write_text(KILLABLE_MEMBER)
    doomed = subprocess.Popen([sys.executable, str(script), b.bootstrap, "workers", "jobs"],
                              stdout=subprocess.PIPE, text=True)
    try:
        survivor = member(b, "workers")
        survivor.subscribe(["jobs"])
        wait_until(lambda: survivor.poll(0.05) is None and
                   select.select([doomed.stdout], [], [], 0)[0], timeout=30, interval=0,
                   what="the doomed member's assignment")
        assert doomed.stdout.readline().strip() == "assigned"
        wait_until(lambda: survivor.poll(0.05) is None and len(assigned(survivor)) == 2,
                   timeout=30, interval=0, what="an even split")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        killed_at = time.monotonic()
        wait_until(lambda: survivor.poll(0.05) is None and assigned(survivor) == [0, 1, 2, 3],
                   timeout=SESSION_MS / 1000 + 20, interval=0, what="the survivor owning all")
        took = time.monotonic() - killed_at
        assert took >= SESSION_MS / 1000 - 1.5, f"took over after {took:.1f}s, before the session ended"
        survivor.close()
    finally:
        if doomed.poll() is None:
            doomed.kill()


def test_committed_offsets_survive_a_crash_and_a_new_member_resumes(groups_broker):
    b = groups_broker
    create_topic(b, "events", partitions=1)
    fill(b, "events", 1, 100)
    c = member(b, "resumer", **{"enable.auto.commit": False})
    c.subscribe(["events"])
    got = []
    while len(got) < 40:
        m = c.poll(1)
        if m is not None and m.error() is None:
            got.append(m)
    c.commit(message=got[-1], asynchronous=False)
    committed = c.committed([TopicPartition("events", 0)], timeout=10)[0].offset
    assert committed == got[-1].offset() + 1 == 40
    c.close()
    b.kill()  # acknowledged commits are in the log: kill -9 loses none
    b.start()
    c = member(b, "resumer", **{"enable.auto.commit": False})
    c.subscribe(["events"])
    first = None
    deadline = time.monotonic() + 30
    while first is None and time.monotonic() < deadline:
        m = c.poll(1)
        if m is not None and m.error() is None:
            first = m
    assert first is not None and first.offset() == 40
    c.close()


def test_kafka_python_and_aiokafka_groups(groups_broker):
    from kafka import KafkaConsumer

    b = groups_broker
    create_topic(b, "clicks", partitions=4)
    fill(b, "clicks", 4, 400)
    seen = [set(), set()]
    fed_from = [set(), set()]  # partitions each member received records from

    errors = []

    def commit_through_rebalance(c):
        # The other member may leave first: the group then rebalances under this member's
        # commit, which Kafka answers REBALANCE_IN_PROGRESS. Polling completes the rebalance;
        # the commit is then tried again, as a kafka-python application would.
        from kafka.errors import CommitFailedError, RebalanceInProgressError
        deadline = time.monotonic() + 30
        while True:
            try:
                c.commit()
                return
            except (RebalanceInProgressError, CommitFailedError):
                if time.monotonic() > deadline:
                    raise
                c.poll(timeout_ms=200)

    def run(i):
        try:
            c = KafkaConsumer("clicks", bootstrap_servers=b.bootstrap, group_id="kp",
                              auto_offset_reset="earliest", session_timeout_ms=SESSION_MS,
                              heartbeat_interval_ms=500, enable_auto_commit=False)
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and len(seen[0]) + len(seen[1]) < 400:
                for tp, records in c.poll(timeout_ms=500).items():
                    seen[i].update(int(r.value) for r in records)
                    fed_from[i].add(tp.partition)
            commit_through_rebalance(c)
            c.close()
        except Exception as e:  # surfaced below: a thread's failure fails the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert seen[0] | seen[1] == set(range(400))
    # Both members got work, and together they covered every partition.
    assert fed_from[0] and fed_from[1] and fed_from[0] | fed_from[1] == {0, 1, 2, 3}, fed_from

    from aiokafka import AIOKafkaConsumer

    async def aio():
        c = AIOKafkaConsumer("clicks", bootstrap_servers=b.bootstrap, group_id="aio",
                             auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        values = set()
        deadline = time.monotonic() + 30
        while len(values) < 400 and time.monotonic() < deadline:
            for records in (await c.getmany(timeout_ms=500)).values():
                values.update(int(r.value) for r in records)
        await c.commit()
        owned = sorted(p.partition for p in c.assignment())
        await c.stop()
        return values, owned

    values, owned = asyncio.run(aio())
    assert values == set(range(400)) and owned == [0, 1, 2, 3]
    offsets = committed_offsets(b, "aio", "clicks", 4)
    assert offsets == {p: 100 for p in range(4)}, offsets


def committed_offsets(broker, group, topic, partitions):
    client = admin(broker)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    result = client.list_consumer_group_offsets([request])[group].result(timeout=15)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def test_cooperative_sticky_rebalances_are_incremental(groups_broker):
    b = groups_broker
    create_topic(b, "coop", partitions=4)
    revoked = {0: [], 1: []}

    def on_revoke(i):
        return lambda consumer, partitions: revoked[i].extend(tp.partition for tp in partitions)

    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    first = member(b, "coop", **conf)
    first.subscribe(["coop"], on_revoke=on_revoke(0))
    wait_until(lambda: first.poll(0.05) is None and assigned(first) == [0, 1, 2, 3],
               timeout=30, interval=0, what="the first member owning everything")
    second = member(b, "coop", **conf)
    second.subscribe(["coop"], on_revoke=on_revoke(1))
    wait_until(lambda: [first.poll(0.05), second.poll(0.05)] and len(assigned(second)) == 2
               and len(assigned(first)) == 2,
               timeout=40, interval=0, what="an incremental split")
    kept = assigned(first)
    # Incremental: the first member gave up only what moved, and kept the rest throughout.
    assert sorted(revoked[0]) == assigned(second)
    assert not set(revoked[0]) & set(kept)
    assert revoked[1] == []
    first.close()
    second.close()


def test_a_restarted_static_member_keeps_its_partitions(groups_broker):
    b = groups_broker
    create_topic(b, "static", partitions=4)
    revoked_b = []
    a = member(b, "st", **{"group.instance.id": "a"})
    other = member(b, "st", **{"group.instance.id": "b"})
    a.subscribe(["static"])
    other.subscribe(["static"], on_revoke=lambda c, ps: revoked_b.extend(ps))
    wait_until(lambda: [a.poll(0.05), other.poll(0.05)] and len(assigned(a)) == 2
               and len(assigned(other)) == 2, timeout=30, interval=0, what="two static members")
    before = assigned(a)
    a.close()  # a static member leaves no LeaveGroup behind: its place is kept
    a = member(b, "st", **{"group.instance.id": "a"})
    a.subscribe(["static"])
    wait_until(lambda: [a.poll(0.05), other.poll(0.05)] and assigned(a),
               timeout=30, interval=0, what="the restarted member's assignment")
    assert assigned(a) == before
    for _ in range(20):
        other.poll(0.05)
    assert revoked_b == [], "no rebalance: the other member never lost its partitions"
    a.close()
    other.close()


def test_admin_api_lists_describes_and_shows_lag(groups_broker):
    b = groups_broker
    create_topic(b, "ledger", partitions=2)
    fill(b, "ledger", 2, 100)
    c = member(b, "auditors", **{"enable.auto.commit": False})
    c.subscribe(["ledger"])
    got = 0
    deadline = time.monotonic() + 30
    while got < 100 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got += 1
    c.commit(offsets=[TopicPartition("ledger", 0, 30), TopicPartition("ledger", 1, 20)],
             asynchronous=False)
    client = admin(b)
    listed = client.list_consumer_groups().result(timeout=15)
    states = {g.group_id: str(g.state) for g in listed.valid}
    assert "auditors" in states and "STABLE" in states["auditors"]
    described = client.describe_consumer_groups(["auditors"])["auditors"].result(timeout=15)
    assert described.partition_assignor == "range" or described.partition_assignor
    assert len(described.members) == 1
    assert sorted(tp.partition for tp in described.members[0].assignment.topic_partitions) == [0, 1]
    deleting = client.delete_consumer_groups(["auditors"])["auditors"]
    with pytest.raises(KafkaException) as e:
        deleting.result(timeout=15)
    assert "NON_EMPTY_GROUP" in str(e.value)

    c.close()
    wait_until(lambda: "EMPTY" in str(client.describe_consumer_groups(["auditors"])["auditors"]
                                      .result(timeout=15).state), what="an empty group")
    # Lag with no live member: log end offset minus committed offset, per partition.
    offsets = committed_offsets(b, "auditors", "ledger", 2)
    probe = member(b, "unused")
    ends = {p: probe.get_watermark_offsets(TopicPartition("ledger", p), timeout=10)[1] for p in (0, 1)}
    probe.close()
    assert {p: ends[p] - offsets[p] for p in (0, 1)} == {0: ends[0] - 30, 1: ends[1] - 20}
    assert ends[0] + ends[1] == 100

    client.delete_consumer_groups(["auditors"])["auditors"].result(timeout=15)
    listed = client.list_consumer_groups().result(timeout=15)
    assert "auditors" not in {g.group_id for g in listed.valid}
    assert committed_offsets(b, "auditors", "ledger", 2) == {0: -1001, 1: -1001}


def test_internal_offsets_topic_is_read_only_for_clients(groups_broker):
    b = groups_broker
    client = admin(b)
    meta = client.list_topics(timeout=10)
    assert "__consumer_offsets" in meta.topics
    p = producer(b)
    errors = []
    p.produce("__consumer_offsets", b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    # INVALID_TOPIC_EXCEPTION, which librdkafka names TOPIC_EXCEPTION.
    assert errors and errors[0] is not None and errors[0].code() == 17, errors
    with pytest.raises(KafkaException):
        client.delete_topics(["__consumer_offsets"])["__consumer_offsets"].result(timeout=15)


def test_kip848_members_share_partitions_and_take_over_incrementally(groups_broker, tmp_path):
    """group.protocol=consumer: the broker assigns; members reconcile without a group-wide
    pause, and a killed member's partitions move after the session timeout."""
    b = groups_broker
    create_topic(b, "kip848", partitions=6)
    fill(b, "kip848", 6, 600)
    conf = {"group.protocol": "consumer"}
    consumer = lambda: Consumer({"bootstrap.servers": b.bootstrap, "group.id": "next-gen",
                                 "auto.offset.reset": "earliest", **conf})
    members = [consumer() for _ in range(3)]
    for c in members:
        c.subscribe(["kip848"])
    seen = [[], [], []]
    poll_until(members, lambda: sum(map(len, seen)) >= 600, seen)
    assert sorted(v for s in seen for v in s) == list(range(600))
    wait_until(lambda: [c.poll(0.05) for c in members] and
               sorted(len(assigned(c)) for c in members) == [2, 2, 2],
               timeout=30, interval=0, what="two partitions each")
    for c in members:
        c.commit(asynchronous=False)

    client = admin(b)  # must outlive its futures
    described = client.describe_consumer_groups(["next-gen"])["next-gen"].result(timeout=15)
    assert "CONSUMER" in str(described.type) and len(described.members) == 3
    assert described.partition_assignor == "uniform"

    # A leaving member's partitions go to the others; nothing is read twice (its offsets were
    # committed) and nothing is lost.
    members[2].close()
    survivors = members[:2]
    wait_until(lambda: [c.poll(0.05) for c in survivors] and
               sorted(p for c in survivors for p in assigned(c)) == list(range(6)),
               timeout=30, interval=0, what="the survivors owning all six partitions")
    fill(b, "kip848", 6, 60, start=600)
    seen = [[], []]
    poll_until(survivors, lambda: sum(map(len, seen)) >= 60, seen)
    assert sorted(v for s in seen for v in s) == list(range(600, 660))

    # A member killed with SIGKILL loses its partitions once its session times out.
    script = tmp_path / "kip848_member.py"
    script.write_text(KILLABLE_MEMBER.replace('"session.timeout.ms": 6000', '"group.protocol": "consumer"'))
    doomed = subprocess.Popen([sys.executable, str(script), b.bootstrap, "next-gen", "kip848"],
                              stdout=subprocess.PIPE, text=True)
    try:
        # The survivors must keep polling: they give up partitions for the newcomer as they go.
        wait_until(lambda: [c.poll(0.05) for c in survivors] and
                   select.select([doomed.stdout], [], [], 0)[0], timeout=30, interval=0,
                   what="the third member's assignment")
        assert doomed.stdout.readline().strip() == "assigned"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        wait_until(lambda: [c.poll(0.05) for c in survivors] and
                   sorted(p for c in survivors for p in assigned(c)) == list(range(6)),
                   timeout=SESSION_MS / 1000 + 20, interval=0, what="partitions back after the kill")
    finally:
        if doomed.poll() is None:
            doomed.kill()
    listed = client.list_consumer_groups().result(timeout=15)
    assert "next-gen" in {g.group_id for g in listed.valid}
    for c in survivors:
        c.close()


def test_kip848_regex_subscription_follows_new_topics(groups_broker):
    b = groups_broker
    for name in ("rx-a", "rx-b", "other"):
        create_topic(b, name, partitions=2)
        fill(b, name, 2, 10)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "rx", "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 500})
    c.subscribe(["^rx-.*"])
    topics = set()

    def read(n):
        def step():
            for m in c.consume(100, 0.1):
                assert m.error() is None, m.error()
                topics.add(m.topic())
            return len(topics) >= n
        return step

    wait_until(read(2), timeout=30, interval=0, what="records from both matching topics")
    assert topics == {"rx-a", "rx-b"}
    create_topic(b, "rx-c", partitions=1)
    fill(b, "rx-c", 1, 5)
    wait_until(read(3), timeout=30, interval=0, what="records from the new matching topic")
    assert topics == {"rx-a", "rx-b", "rx-c"}, "never the topic that does not match"
    c.close()


def test_offset_delete_is_refused_while_subscribed_and_works_after(groups_broker):
    from kafka import KafkaAdminClient, TopicPartition as KTP
    from kafka.errors import GroupSubscribedToTopicError, NoError

    b = groups_broker
    create_topic(b, "od", partitions=1)
    create_topic(b, "od-other", partitions=1)
    c = member(b, "deleter", **{"enable.auto.commit": False})
    c.subscribe(["od"])
    wait_until(lambda: c.poll(0.05) is None and assigned(c) == [0], timeout=30, interval=0,
               what="an assignment")
    c.commit(offsets=[TopicPartition("od", 0, 3), TopicPartition("od-other", 0, 4)],
             asynchronous=False)
    kadmin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        result = kadmin.delete_group_offsets("deleter", [KTP("od", 0), KTP("od-other", 0)])
        assert result[KTP("od", 0)] is GroupSubscribedToTopicError
        assert result[KTP("od-other", 0)] is NoError, "not subscribed: deletable"
        c.close()
        result = kadmin.delete_group_offsets("deleter", [KTP("od", 0)])
        assert result[KTP("od", 0)] is NoError
        assert committed_offsets(b, "deleter", "od", 1) == {0: -1001}
    finally:
        kadmin.close()


def test_roundrobin_members_split_the_partitions(groups_broker):
    b = groups_broker
    create_topic(b, "rr", partitions=4)
    fill(b, "rr", 4, 40)
    members = [member(b, "rr", **{"partition.assignment.strategy": "roundrobin"}) for _ in range(2)]
    for c in members:
        c.subscribe(["rr"])
    seen = [[], []]
    poll_until(members, lambda: sum(map(len, seen)) >= 40, seen)
    assert sorted(v for s in seen for v in s) == list(range(40))
    assert sorted(assigned(members[0]) + assigned(members[1])) == [0, 1, 2, 3]
    assert all(len(assigned(c)) == 2 for c in members)
    for c in members:
        c.close()


def test_kip848_members_carry_on_across_a_broker_restart(groups_broker):
    b = groups_broker
    create_topic(b, "steady", partitions=4)
    fill(b, "steady", 4, 40)
    members = [Consumer({"bootstrap.servers": b.bootstrap, "group.id": "steady",
                         "group.protocol": "consumer", "auto.offset.reset": "earliest"})
               for _ in range(2)]
    for c in members:
        c.subscribe(["steady"])
    seen = [[], []]
    poll_until(members, lambda: sum(map(len, seen)) >= 40, seen)
    wait_until(lambda: [c.poll(0.05) for c in members] and
               sorted(len(assigned(c)) for c in members) == [2, 2],
               timeout=30, interval=0, what="an even split")
    for c in members:
        c.commit(asynchronous=False)
    before = [assigned(c) for c in members]
    b.stop()
    b.start()
    fill(b, "steady", 4, 40, start=40)
    seen = [[], []]
    poll_until(members, lambda: sum(map(len, seen)) >= 40, seen, timeout=60)
    assert sorted(v for s in seen for v in s) == list(range(40, 80)), "nothing lost or repeated"
    assert [assigned(c) for c in members] == before, "the restored group kept its assignment"
    for c in members:
        c.close()
