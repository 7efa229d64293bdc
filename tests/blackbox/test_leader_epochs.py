"""Leader epochs on a single node: every start of the broker begins a new epoch in each
partition, batches carry the epoch they were written in, OffsetForLeaderEpoch answers from the
leader-epoch cache, Fetch checks `current_leader_epoch` and answers a diverged
`last_fetched_epoch` with the epoch's end, as Kafka does. Requests are built with kafka-python's
protocol classes; records are read back with librdkafka, which validates its position with
OffsetForLeaderEpoch after an epoch change (KIP-320)."""

from confluent_kafka import Consumer, TopicPartition
from kafka.net.compat import KafkaNetClient
from kafka.protocol.consumer.fetch import FetchRequest
from kafka.protocol.consumer.offsets import ListOffsetsRequest
from kafka.protocol.consumer.offsets import OffsetForLeaderEpochRequest as Ofle

from conftest import wait_until
from helpers import consume_all, create_topic, produce_all, producer

NONE = 0
NOT_LEADER_OR_FOLLOWER = 6
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75


def ask(broker, request):
    """One request to the broker (node 1, the default `--node-id`) and its answer."""
    client = KafkaNetClient(bootstrap_servers=[broker.bootstrap])
    try:
        client.check_version(timeout_ms=10_000)
        return client.send_and_receive(1, request)
    finally:
        client.close()


def end_of_epoch(broker, topic, current, asked, version=4):
    """OffsetForLeaderEpoch for partition 0: (error code, leader epoch, end offset)."""
    part = Ofle.OffsetForLeaderTopic.OffsetForLeaderPartition(
        partition=0, current_leader_epoch=current, leader_epoch=asked)
    request = Ofle(replica_id=-1, topics=[Ofle.OffsetForLeaderTopic(topic=topic, partitions=[part])],
                   version=version)
    p = ask(broker, request).topics[0].partitions[0]
    return p.error_code, p.leader_epoch, p.end_offset


def fetch(broker, topic, offset, current=-1, last_fetched=-1, replica_id=-1):
    """Fetch v12 of partition 0: its partition data."""
    part = FetchRequest.FetchTopic.FetchPartition(
        partition=0, current_leader_epoch=current, fetch_offset=offset,
        last_fetched_epoch=last_fetched, log_start_offset=-1, partition_max_bytes=1 << 20)
    request = FetchRequest(
        replica_id=replica_id, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
        session_id=0, session_epoch=-1,
        topics=[FetchRequest.FetchTopic(topic=topic, partitions=[part])],
        forgotten_topics_data=[], rack_id="", version=12)
    return ask(broker, request).responses[0].partitions[0]


def diverging(partition):
    """The diverging epoch a fetch answer names, (epoch, end offset), or None (a tagged field,
    absent when the fetcher is in step)."""
    d = partition.diverging_epoch
    return None if d is None or d.epoch == -1 else (d.epoch, d.end_offset)


def produce_n(broker, topic, first, n):
    # Keyed, so that every batch of a 2-partition topic feeds both partitions.
    produce_all(producer(broker), topic,
                [(f"k{i}".encode(), f"v{i}".encode()) for i in range(first, first + n)])


def epochs_of_records(broker, topic, n):
    return [m.leader_epoch() for m in consume_all(broker, topic, n)]


def test_each_start_begins_an_epoch_and_offset_for_leader_epoch_answers_from_the_cache(broker):
    create_topic(broker, "ep", 1)
    produce_n(broker, "ep", 0, 10)
    assert end_of_epoch(broker, "ep", -1, 0) == (NONE, 0, 10)
    broker.stop()
    broker.start()
    produce_n(broker, "ep", 10, 5)
    assert epochs_of_records(broker, "ep", 15) == [0] * 10 + [1] * 5
    assert end_of_epoch(broker, "ep", -1, 0) == (NONE, 0, 10)
    assert end_of_epoch(broker, "ep", 1, 1) == (NONE, 1, 15)
    # An epoch never seen, newer than the latest: undefined.
    assert end_of_epoch(broker, "ep", -1, 7) == (NONE, -1, -1)
    # A stale or future current epoch is refused, whatever is asked.
    assert end_of_epoch(broker, "ep", 0, 0)[0] == FENCED_LEADER_EPOCH
    assert end_of_epoch(broker, "ep", 2, 0)[0] == UNKNOWN_LEADER_EPOCH
    assert end_of_epoch(broker, "ep", -1, 1, version=2) == (NONE, 1, 15)
    # A crash, too, begins a new epoch; the batches of every earlier epoch survive recovery.
    broker.kill()
    broker.start()
    produce_n(broker, "ep", 15, 5)
    assert epochs_of_records(broker, "ep", 20) == [0] * 10 + [1] * 5 + [2] * 5
    assert end_of_epoch(broker, "ep", 2, 1) == (NONE, 1, 15)
    assert end_of_epoch(broker, "ep", 2, 2) == (NONE, 2, 20)


def test_fetch_checks_the_current_epoch_and_answers_a_diverged_fetcher(broker):
    create_topic(broker, "fe", 1)
    produce_n(broker, "fe", 0, 10)
    broker.stop()
    broker.start()
    produce_n(broker, "fe", 10, 5)
    assert fetch(broker, "fe", 0, current=0).error_code == FENCED_LEADER_EPOCH
    assert fetch(broker, "fe", 0, current=2).error_code == UNKNOWN_LEADER_EPOCH
    served = fetch(broker, "fe", 0, current=1)
    assert served.error_code == NONE and served.high_watermark == 15 and served.records
    # A fetcher that last saw epoch 0 at offset 12 has a tail the leader never had in epoch 0:
    # it is told where epoch 0 ended, and given nothing.
    diverged = fetch(broker, "fe", 12, current=1, last_fetched=0)
    assert diverged.error_code == NONE
    assert diverging(diverged) == (0, 10)
    assert not diverged.records
    # At the end of epoch 0, or within epoch 1, the fetcher is in step.
    in_step = fetch(broker, "fe", 10, current=1, last_fetched=0)
    assert diverging(in_step) is None and in_step.records
    assert diverging(fetch(broker, "fe", 12, last_fetched=1)) is None
    # A fetch as a replica is refused: this node has no followers.
    assert fetch(broker, "fe", 0, replica_id=2).error_code == NOT_LEADER_OR_FOLLOWER


def list_latest(broker, topic, current, version=4):
    """ListOffsets (latest) of partition 0: (error code, offset, leader epoch)."""
    L = ListOffsetsRequest
    part = L.ListOffsetsTopic.ListOffsetsPartition(
        partition_index=0, current_leader_epoch=current, timestamp=-1)
    request = L(replica_id=-1, isolation_level=0,
                topics=[L.ListOffsetsTopic(name=topic, partitions=[part])], version=version)
    p = ask(broker, request).topics[0].partitions[0]
    return p.error_code, p.offset, p.leader_epoch


def test_list_offsets_checks_the_current_epoch_as_fetch_does(broker):
    create_topic(broker, "lo", 1)
    produce_n(broker, "lo", 0, 4)
    broker.stop()
    broker.start()
    produce_n(broker, "lo", 4, 3)
    assert list_latest(broker, "lo", 0)[0] == FENCED_LEADER_EPOCH
    assert list_latest(broker, "lo", 2)[0] == UNKNOWN_LEADER_EPOCH
    assert list_latest(broker, "lo", 1) == (NONE, 7, 1)
    assert list_latest(broker, "lo", -1) == (NONE, 7, 1)


def test_a_librdkafka_group_consumer_reads_on_across_restarts_that_begin_new_epochs(broker):
    create_topic(broker, "across", 2)
    produce_n(broker, "across", 0, 100)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "across",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "topic.metadata.refresh.interval.ms": 500})
    seen = []

    def read_until(count):
        def more():
            m = c.poll(0.2)
            if m is not None:
                assert m.error() is None, m.error()
                seen.append(m.value().decode())
            return len(seen) >= count
        wait_until(more, timeout=60, interval=0, what=f"{count} records")

    try:
        c.subscribe(["across"])
        read_until(100)
        c.commit(asynchronous=False)
        for restart, clean in enumerate([True, False]):
            if clean:
                broker.stop()
            else:
                broker.kill()
            broker.start()
            produce_n(broker, "across", 100 + 50 * restart, 50)
            read_until(150 + 50 * restart)
            c.commit(asynchronous=False)
    finally:
        c.close()
    # Every record once: no reset to the start, no skip, across two epoch changes.
    assert sorted(seen, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(200)]
    assert len(seen) == 200
    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "across"})
    try:
        committed = check.committed([TopicPartition("across", p) for p in range(2)], timeout=10)
        assert sum(tp.offset for tp in committed) == 200
        assert all(tp.leader_epoch == 2 for tp in committed if tp.offset > 0), committed
    finally:
        check.close()
