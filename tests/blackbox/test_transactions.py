"""Transactions against the real binary with real clients: an aborted and a committed
transaction as read_committed and read_uncommitted readers (librdkafka and kafka-python) see
them, zombie fencing, the broker aborting a transaction past its timeout, and a
consume-transform-produce loop killed with SIGKILL mid-transaction and restarted."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from confluent_kafka import Consumer, IsolationLevel, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec
from kafka import KafkaConsumer, KafkaProducer

from conftest import wait_until
from helpers import admin, consume_all, create_topic, produce_all, producer

WORKER = Path(__file__).with_name("txn_worker.py")


def txn_producer(broker, txn_id, **conf):
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": txn_id, **conf})
    p.init_transactions(15)
    return p


def read_librdkafka(broker, topic, partitions, isolation, expect):
    """Every value readable from the start with this isolation level, once `expect` arrived
    (then a short quiet period shows nothing more comes)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"r-{isolation}",
                  "isolation.level": isolation, "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got = []
        quiet_until = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None:
                assert m.error() is None, m.error()
                got.append(m.value())
            if len(got) >= expect:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() >= quiet_until:
                    break
        return sorted(got)
    finally:
        c.close()


def read_kafka_python(broker, topic, isolation, expect):
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, isolation_level=isolation,
                      consumer_timeout_ms=3000)
    try:
        got = []
        deadline = time.monotonic() + 30
        while len(got) < expect and time.monotonic() < deadline:
            got.extend(m.value for m in c)
        return sorted(got)
    finally:
        c.close()


def latest(broker, topic, partition, committed):
    a = admin(broker)
    tp = TopicPartition(topic, partition)
    level = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    return a.list_offsets({tp: OffsetSpec.latest()}, isolation_level=level)[tp].result(10).offset


def test_read_committed_sees_only_committed_transactions(broker):
    create_topic(broker, "tx", 2)
    p = txn_producer(broker, "t1")
    p.begin_transaction()
    for i in range(20):
        p.produce("tx", value=f"aborted-{i}".encode(), partition=i % 2)
    p.flush(10)
    # While open, read_committed readers stop before it.
    assert latest(broker, "tx", 0, committed=True) == 0
    assert latest(broker, "tx", 0, committed=False) == 10
    p.abort_transaction(10)
    p.begin_transaction()
    for i in range(20):
        p.produce("tx", value=f"committed-{i}".encode(), partition=i % 2)
    p.commit_transaction(10)

    committed = sorted(f"committed-{i}".encode() for i in range(20))
    everything = sorted(committed + [f"aborted-{i}".encode() for i in range(20)])
    assert read_librdkafka(broker, "tx", 2, "read_committed", 20) == committed
    assert read_librdkafka(broker, "tx", 2, "read_uncommitted", 40) == everything
    assert read_kafka_python(broker, "tx", "read_committed", 20) == committed
    assert read_kafka_python(broker, "tx", "read_uncommitted", 40) == everything
    # Two markers per partition, each taking an offset.
    assert latest(broker, "tx", 0, committed=True) == latest(broker, "tx", 0, committed=False) == 22


def test_kafka_python_transactional_producer_commits_and_aborts(broker):
    create_topic(broker, "kp-tx", 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="kp-tx")
    p.init_transactions()
    p.begin_transaction()
    for i in range(5):
        p.send("kp-tx", value=f"aborted-{i}".encode())
    p.flush(10)
    p.abort_transaction()
    p.begin_transaction()
    for i in range(5):
        p.send("kp-tx", value=f"committed-{i}".encode())
    p.commit_transaction()
    p.close(timeout=10)
    committed = sorted(f"committed-{i}".encode() for i in range(5))
    assert read_librdkafka(broker, "kp-tx", 1, "read_committed", 5) == committed
    assert read_kafka_python(broker, "kp-tx", "read_committed", 5) == committed
    assert len(read_librdkafka(broker, "kp-tx", 1, "read_uncommitted", 10)) == 10


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(broker):
    create_topic(broker, "fence", 1)
    zombie = txn_producer(broker, "shared")
    zombie.begin_transaction()
    zombie.produce("fence", value=b"zombie")
    zombie.flush(10)
    successor = txn_producer(broker, "shared")  # aborts the zombie's open transaction
    successor.begin_transaction()
    successor.produce("fence", value=b"successor")
    successor.commit_transaction(10)
    # The zombie still believes its transaction open: its commit is refused as fenced.
    with pytest.raises(KafkaException) as fenced:
        zombie.produce("fence", value=b"late")
        zombie.commit_transaction(10)
    error = fenced.value.args[0]
    assert error.fatal() or error.txn_requires_abort(), error
    assert read_librdkafka(broker, "fence", 1, "read_committed", 1) == [b"successor"]
    # Its records were aborted: a read_uncommitted reader sees them, read_committed does not.
    assert b"zombie" in read_librdkafka(broker, "fence", 1, "read_uncommitted", 2)


def left_open(start_broker, topic, txn_id, timeout_ms, value):
    """A broker checking transaction timeouts every 100 ms, and a producer whose transaction
    holds one record of `topic` and stays open."""
    b = start_broker({"SLUICE_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS": "100"})
    create_topic(b, topic, 1)
    p = txn_producer(b, txn_id, **{"transaction.timeout.ms": timeout_ms})
    p.begin_transaction()
    p.produce(topic, value=value)
    p.flush(10)
    return b, p


def test_the_broker_aborts_a_transaction_left_open_past_its_timeout(start_broker):
    b, p = left_open(start_broker, "stuck", "slow", 1500, b"never committed")
    # Open (0) or, on a slow machine, already aborted (2); never readable as committed (1).
    assert latest(b, "stuck", 0, committed=True) in (0, 2)
    # The abort marker moves the last stable offset past the record.
    wait_until(lambda: latest(b, "stuck", 0, committed=True) == 2, timeout=15, interval=0.1,
               what="the broker to abort the timed-out transaction")
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    plain = producer(b)
    produce_all(plain, "stuck", [(None, b"after")])
    assert read_librdkafka(b, "stuck", 1, "read_committed", 1) == [b"after"]


def test_consume_transform_produce_killed_mid_transaction_outputs_each_input_once(broker):
    create_topic(broker, "input", 2)
    create_topic(broker, "output", 2)
    total = 3_000
    produce_all(producer(broker), "input",
                [(f"k{i}".encode(), f"record-{i}".encode()) for i in range(total)])

    def worker(*extra):
        return subprocess.Popen(
            [sys.executable, str(WORKER), "--bootstrap", broker.bootstrap, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    first = worker("--pause-before-commit", "0.5")
    try:
        lines = []
        while "begun 4" not in lines:
            line = first.stdout.readline()
            assert line, "the worker exited early"
            lines.append(line.strip())
        assert "committed 3" in lines
        first.kill()  # SIGKILL with transaction 4 produced but not committed
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    second = worker("--idle-exit-seconds", "5")
    try:
        assert second.wait(120) == 0
    finally:
        if second.poll() is None:
            second.kill()
    got = read_librdkafka(broker, "output", 2, "read_committed", total)
    expected = sorted(f"RECORD-{i}".encode() for i in range(total))
    assert got == expected, f"{len(got)} outputs, {len(set(got))} distinct, {total} inputs"


def test_a_transaction_open_when_the_broker_is_killed_is_aborted_after_restart(start_broker):
    b, _ = left_open(start_broker, "crash-tx", "crashing", 2000, b"in flight")
    b.kill()
    b.start()
    # The partition's open transaction was rebuilt: its record is never readable as committed
    # (a stable offset of 1 would mean the broker forgot it). Whether the timeout has already
    # passed by now depends on how long the restart took, so 0 (still open) and 2 (aborted,
    # the marker at 1) are both right. It is not left hanging: the broker aborts it.
    assert latest(b, "crash-tx", 0, committed=True) in (0, 2)
    wait_until(lambda: latest(b, "crash-tx", 0, committed=True) == 2, timeout=20, interval=0.1,
               what="the transaction open at the crash to be aborted")
    successor = txn_producer(b, "crashing")
    successor.begin_transaction()
    successor.produce("crash-tx", value=b"after")
    successor.commit_transaction(10)
    assert read_librdkafka(b, "crash-tx", 1, "read_committed", 1) == [b"after"]


def test_a_read_committed_consumer_waits_for_offsets_pending_in_a_transaction(broker):
    """KIP-447: OffsetFetch with require_stable (librdkafka sends it when read_committed)
    answers UNSTABLE_OFFSET_COMMIT while a transaction holds an offset for the partition, so a
    consumer taking over never starts from the offset about to be replaced; read_uncommitted
    consumers get the committed offset at once."""
    topic, group = "kip447", "kip447-group"
    create_topic(broker, topic, 1)
    tp = TopicPartition(topic, 0)

    def committed(isolation, timeout):
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                      "isolation.level": isolation, "enable.auto.commit": False})
        try:
            return c.committed([tp], timeout=timeout)[0]
        finally:
            c.close()

    plain = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                      "enable.auto.commit": False})
    plain.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    plain.close()

    p = txn_producer(broker, "kip447-txn")
    p.begin_transaction()
    p.produce(topic, b"x", partition=0)
    member = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    meta = member.consumer_group_metadata()
    member.close()
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 9)], meta)

    assert committed("read_uncommitted", 10).offset == 5
    with ThreadPoolExecutor(1) as pool:
        stable = pool.submit(committed, "read_committed", 30)
        # Long enough for the fetch to have been answered many times over; it must still be
        # retrying: an answer now could only be the offset the transaction replaces.
        time.sleep(1.0)
        assert not stable.done(), stable.result()
        p.commit_transaction(15)
        assert stable.result(30).offset == 9
    assert committed("read_uncommitted", 10).offset == 9


def test_kafka_python_admin_lists_and_describes_transactions_and_producers(broker):
    """ListTransactions, DescribeTransactions and DescribeProducers as kafka-python's admin
    client (the KIP-664 hanging-transaction tooling) reads them, before and after a commit."""
    from kafka import KafkaAdminClient, TopicPartition as KTP
    from kafka.errors import UnknownTopicOrPartitionError

    topic, txn_id = "admin-txn", "admin-txn-id"
    create_topic(broker, topic, 2)
    plain = producer(broker, **{"enable.idempotence": True})
    produce_all(plain, topic, [(None, b"a"), (None, b"b"), (None, b"c")], partition=0)
    p = txn_producer(broker, txn_id)
    p.begin_transaction()
    p.produce(topic, b"t1", partition=1)
    p.produce(topic, b"t2", partition=1)
    p.flush(15)

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        listed = [t for ts in a.list_transactions().values() for t in ts]
        mine = [t for t in listed if t.transactional_id == txn_id]
        assert len(mine) == 1 and mine[0].state.value == "Ongoing", listed
        described = a.describe_transactions([txn_id])[txn_id]
        assert described.state.value == "Ongoing"
        assert described.producer_id == mine[0].producer_id
        assert described.topic_partitions == {KTP(topic, 1)}

        states = a.describe_producers([KTP(topic, 0), KTP(topic, 1)])
        [idempotent] = states[KTP(topic, 0)].active_producers
        assert idempotent.last_sequence == 2
        assert idempotent.current_transaction_start_offset == -1
        [transactional] = states[KTP(topic, 1)].active_producers
        assert transactional.producer_id == described.producer_id
        assert transactional.producer_epoch == described.producer_epoch
        assert transactional.last_sequence == 1
        assert transactional.current_transaction_start_offset == 0
        with pytest.raises(UnknownTopicOrPartitionError):
            a.describe_producers([KTP(topic, 7)], broker_id=1)

        p.commit_transaction(15)
        assert a.describe_transactions([txn_id])[txn_id].state.value == "CompleteCommit"
        [after] = a.describe_producers([KTP(topic, 1)])[KTP(topic, 1)].active_producers
        assert after.current_transaction_start_offset == -1
        assert after.coordinator_epoch == 0
    finally:
        a.close()


def test_markers_a_partition_refused_are_written_once_it_accepts_them(broker):
    """A marker the partition refuses (here its max.message.bytes is below the marker batch's
    size) leaves the transaction ending, not lost: once the partition accepts it again, the
    broker writes it without a restart, and read_committed readers see the records. The
    partition that took its marker the first time (topics are marked in name order) gets no
    second one from the retries."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    from kafka import KafkaAdminClient

    topic, accepting, txn_id = "marker-retry", "marker-a-ok", "marker-retry-id"
    create_topic(broker, topic, 1)
    create_topic(broker, accepting, 1)

    def set_max_message_bytes(value):
        res = ConfigResource("topic", topic, incremental_configs=[
            ConfigEntry("max.message.bytes", value,
                        incremental_operation=AlterConfigOpType.SET)])
        a = admin(broker)
        a.incremental_alter_configs([res])[res].result(10)

    p = txn_producer(broker, txn_id)
    p.begin_transaction()
    p.produce(topic, b"kept", partition=0)
    p.produce(accepting, b"also kept", partition=0)
    p.flush(15)
    set_max_message_bytes("10")
    p.commit_transaction(15)  # the decision is durable: the transaction is committed

    k = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        state = lambda: k.describe_transactions([txn_id])[txn_id].state.value  # noqa: E731
        assert state() == "PrepareCommit", "the marker cannot have been written yet"
        assert latest(broker, topic, 0, committed=True) == 0
        wait_until(lambda: latest(broker, accepting, 0, committed=True) == 2,
                   what="the accepting partition's marker")
        time.sleep(0.5)  # a few retry rounds (every 200 ms), each refused by the other partition
        set_max_message_bytes("1048588")
        wait_until(lambda: state() == "CompleteCommit", what="the marker written on a retry")
    finally:
        k.close()
    assert latest(broker, topic, 0, committed=True) == 2
    assert latest(broker, accepting, 0, committed=False) == 2, "one marker, not one per retry"
    assert read_librdkafka(broker, topic, 1, "read_committed", 1) == [b"kept"]


def test_a_produce_pipelined_after_add_partitions_to_txn_finds_its_partition_in_the_transaction(
        broker):
    """Requests of one connection take effect in order, as in Kafka: an AddPartitionsToTxn and
    the transactional Produce sent right behind it, before any answer, both succeed."""
    from kafka.net.compat import KafkaNetClient
    from kafka.protocol.producer import (AddPartitionsToTxnRequest, EndTxnRequest,
                                         InitProducerIdRequest, ProduceRequest)
    from kafka.record.memory_records import MemoryRecordsBuilder

    create_topic(broker, "pipelined", 1)
    client = KafkaNetClient(bootstrap_servers=[broker.bootstrap])
    client.check_version(timeout_ms=10_000)
    init = client.send_and_receive(1, InitProducerIdRequest(
        transactional_id="pipe", transaction_timeout_ms=60_000, version=2))
    assert init.error_code == 0
    pid, epoch = init.producer_id, init.producer_epoch
    topic = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name="pipelined", partitions=[0])
    add = AddPartitionsToTxnRequest(
        v3_and_below_transactional_id="pipe", v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch, v3_and_below_topics=[topic], version=3)
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    builder.set_producer_state(pid, epoch, 0, True)
    builder.append(timestamp=int(time.time() * 1000), key=None, value=b"in-txn")
    builder.close()
    data = ProduceRequest.TopicProduceData(name="pipelined", partition_data=[
        ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=builder.buffer())])
    produce = ProduceRequest(transactional_id="pipe", acks=-1, timeout_ms=10_000, version=8,
                             topic_data=[data])
    added, produced = client.send(1, add), client.send(1, produce)
    client.poll(timeout_ms=10_000, future=produced)
    assert added.succeeded() and produced.succeeded()
    added_code = added.value.results_by_topic_v3_and_below[0].results_by_partition[0]
    assert added_code.partition_error_code == 0
    assert produced.value.responses[0].partition_responses[0].error_code == 0
    end = client.send_and_receive(1, EndTxnRequest(
        transactional_id="pipe", producer_id=pid, producer_epoch=epoch, committed=True,
        version=3))
    assert end.error_code == 0
    client.close()
    read = consume_all(broker, "pipelined", 1, **{"isolation.level": "read_committed"})
    assert [m.value() for m in read] == [b"in-txn"]
