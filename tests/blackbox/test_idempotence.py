"""Idempotent producers against the real binary: librdkafka streaming through a kill -9 and
restart writes every record exactly once and in order; kafka-python's idempotent producer;
and, through kafka-python's own protocol codec, the broker's answers to a retried batch, a gap
and a stale epoch, before and after restarts."""

import socket
import struct
import threading
import time

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec
from kafka import KafkaProducer
from kafka.net.compat import KafkaNetClient
from kafka.protocol.producer import InitProducerIdRequest, ProduceRequest
from kafka.record.memory_records import MemoryRecordsBuilder

from conftest import wait_until
from helpers import admin, consume_all, create_topic

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


def end_offsets(broker, topic, partitions):
    a = admin(broker)
    ends = {}
    for p in range(partitions):
        tp = TopicPartition(topic, p)
        ends[p] = a.list_offsets({tp: OffsetSpec.latest()})[tp].result(10).offset
    return ends


def test_idempotent_librdkafka_stream_through_kill_9_writes_each_record_once_in_order(broker):
    create_topic(broker, "exactly", 2)
    total = 60_000
    delivered = []
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered.append(msg.value())

    p = Producer({
        "bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 2,
        "message.timeout.ms": 120_000, "retry.backoff.ms": 20, "retry.backoff.max.ms": 200,
        "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200,
    })
    killed_at = None
    for i in range(total):
        while True:
            try:
                p.produce("exactly", value=str(i).encode(), partition=i % 2, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
        # Keep a few thousand records outstanding: a steady stream, not one queued burst.
        while i - len(delivered) > 5_000 and not errors:
            p.poll(0.005)
        if killed_at is None and len(delivered) >= 15_000:
            # Mid-stream, with requests in flight: their batches may be in the log without an
            # answer, and librdkafka will send them again to the restarted broker.
            broker.kill()
            killed_at = len(delivered)
            broker.start()
    assert killed_at is not None, "the stream ended before the broker was killed"
    assert p.flush(120) == 0, "records left undelivered"
    assert not errors, errors[:5]
    assert len(delivered) == total

    ends = end_offsets(broker, "exactly", 2)
    assert ends == {0: total // 2, 1: total // 2}, f"duplicates or losses in the log: {ends}"
    by_partition = {0: [], 1: []}
    for m in consume_all(broker, "exactly", total, timeout=60):
        by_partition[m.partition()].append(int(m.value()))
    for part in (0, 1):
        assert by_partition[part] == list(range(part, total, 2)), f"partition {part} out of order"


class ResponseDropper:
    """A TCP proxy in front of the broker that forwards every frame, except that instead of
    delivering the `nth` Produce response it cuts the connection: the broker has written the
    batch, the client never hears so, and must send it again."""

    def __init__(self, nth):
        self.broker_port = None  # set once the broker runs
        self.nth = nth
        self.produce_responses = 0
        self.dropped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _frame(sock):
        def exactly(n):
            buf = b""
            while len(buf) < n:
                chunk = sock.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            return buf
        head = exactly(4)
        return head + exactly(struct.unpack(">i", head)[0])

    def _serve(self, client):
        upstream = socket.create_connection(("127.0.0.1", self.broker_port))
        produce_ids = set()

        def requests():
            try:
                while True:
                    frame = self._frame(client)
                    api_key, _, correlation_id = struct.unpack(">hhi", frame[4:12])
                    if api_key == 0:
                        produce_ids.add(correlation_id)
                    upstream.sendall(frame)
            except OSError:
                pass
            finally:
                upstream.close()

        threading.Thread(target=requests, daemon=True).start()
        try:
            while True:
                frame = self._frame(upstream)
                (correlation_id,) = struct.unpack(">i", frame[4:8])
                if correlation_id in produce_ids:
                    self.produce_responses += 1
                    if self.produce_responses == self.nth and not self.dropped.is_set():
                        self.dropped.set()
                        return
                client.sendall(frame)
        except OSError:
            pass
        finally:
            # shutdown, not just close: the other thread's recv holds the sockets open.
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self):
        self.listener.close()


def test_a_lost_produce_response_makes_librdkafka_retry_and_the_retry_is_not_written_again(
        start_broker):
    dropper = ResponseDropper(nth=10)
    try:
        # Clients must reach the broker through the proxy, so the broker advertises its port.
        b = start_broker({"SLUICE_ADVERTISED_LISTENER": f"127.0.0.1:{dropper.port}"})
        dropper.broker_port = b.port
        create_topic(b, "lost", 1)
        p = Producer({"bootstrap.servers": f"127.0.0.1:{dropper.port}",
                      "enable.idempotence": True, "linger.ms": 1, "batch.num.messages": 500,
                      "retry.backoff.ms": 20,
                      "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 100})
        total = 20_000
        errors = []
        for i in range(total):
            while True:
                try:
                    p.produce("lost", value=str(i).encode(),
                              on_delivery=lambda err, msg: err and errors.append(err))
                    break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
        assert p.flush(60) == 0
        assert not errors, errors[:5]
        assert dropper.dropped.is_set(), "no Produce response was dropped"
        assert end_offsets(b, "lost", 1) == {0: total}, "the retried batch was written twice"
        values = [int(m.value()) for m in consume_all(b, "lost", total)]
        assert values == list(range(total))
    finally:
        dropper.close()


def test_kafka_python_idempotent_producer_writes_each_record_once(broker):
    create_topic(broker, "kp-idem", 3)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all",
                      linger_ms=2)
    futures = [p.send("kp-idem", value=f"r{i}".encode(), partition=i % 3) for i in range(3_000)]
    p.flush(30)
    offsets = [f.get(timeout=30).offset for f in futures]
    p.close(timeout=10)
    assert sorted(offsets[0::3]) == list(range(1_000))
    assert end_offsets(broker, "kp-idem", 3) == {0: 1_000, 1: 1_000, 2: 1_000}
    values = sorted(m.value() for m in consume_all(broker, "kp-idem", 3_000))
    assert values == sorted(f"r{i}".encode() for i in range(3_000))


class RawProducer:
    """An idempotent producer driven request by request with kafka-python's protocol codec,
    so a test can resend a batch exactly as a retrying client would."""

    def __init__(self, broker, topic):
        self.broker = broker
        self.topic = topic
        self.connect()
        r = self.client.send_and_receive(
            1, InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000, version=2))
        assert r.error_code == 0, r
        self.producer_id, self.epoch = r.producer_id, r.producer_epoch

    def connect(self):
        self.client = KafkaNetClient(bootstrap_servers=[self.broker.bootstrap])
        self.client.check_version(timeout_ms=10_000)

    def batch(self, sequence, count, epoch=None):
        b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
        b.set_producer_state(self.producer_id, self.epoch if epoch is None else epoch, sequence, False)
        for i in range(count):
            b.append(timestamp=int(time.time() * 1000), key=None, value=f"s{sequence + i}".encode())
        b.close()
        return b.buffer()

    def produce(self, records):
        partition = ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=records)
        request = ProduceRequest(
            transactional_id=None, acks=-1, timeout_ms=10_000, version=8,
            topic_data=[ProduceRequest.TopicProduceData(name=self.topic, partition_data=[partition])])
        answer = self.client.send_and_receive(1, request).responses[0].partition_responses[0]
        return answer.error_code, answer.base_offset


def test_retried_batches_get_their_original_offsets_across_restarts_and_crashes(broker):
    create_topic(broker, "raw", 1)
    raw = RawProducer(broker, "raw")
    first = raw.batch(0, 3)
    assert raw.produce(first) == (0, 0)
    assert raw.produce(raw.batch(3, 2)) == (0, 3)
    assert raw.produce(first) == (0, 0), "a retry is answered with the original offset"
    assert raw.produce(raw.batch(9, 1))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert raw.produce(raw.batch(5, 1, epoch=raw.epoch + 1))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert raw.produce(raw.batch(5, 1)) == (0, 5)

    # The state outlives a clean restart (snapshot) and a kill -9 (rebuilt from the log).
    for restart in ("sigterm", "kill"):
        if restart == "sigterm":
            assert broker.stop() == 0
        else:
            broker.kill()
        broker.start()
        raw.connect()
        assert raw.produce(first) == (0, 0), f"after {restart}"
        assert raw.produce(raw.batch(5, 1)) == (0, 5), f"after {restart}"
    assert raw.produce(raw.batch(6, 1)) == (0, 6)

    # A new epoch starts at sequence 0 and fences the old one.
    assert raw.produce(raw.batch(0, 1, epoch=raw.epoch + 1)) == (0, 7)
    assert raw.produce(raw.batch(7, 1))[0] == INVALID_PRODUCER_EPOCH
    assert end_offsets(broker, "raw", 1) == {0: 8}


def test_producer_ids_are_never_reused(broker):
    create_topic(broker, "ids", 1)
    first = RawProducer(broker, "ids").producer_id
    second = RawProducer(broker, "ids").producer_id
    assert second != first
    broker.kill()
    broker.start()
    after_crash = RawProducer(broker, "ids").producer_id
    assert after_crash not in (first, second)
    # A transactional id gets its own producer id from the same sequence.
    client = KafkaNetClient(bootstrap_servers=[broker.bootstrap])
    client.check_version(timeout_ms=10_000)
    r = client.send_and_receive(
        1, InitProducerIdRequest(transactional_id="tx", transaction_timeout_ms=60_000, version=2))
    assert r.error_code == 0
    assert r.producer_id not in (first, second, after_crash)


def test_idle_producer_state_expires(start_broker):
    b = start_broker({"SLUICE_PRODUCER_ID_EXPIRATION_MS": "300",
                      "SLUICE_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS": "100"})
    create_topic(b, "expire", 1)
    raw = RawProducer(b, "expire")
    first = raw.batch(0, 1)
    assert raw.produce(first) == (0, 0)
    # Once expired, the broker has no record of the batch: the same bytes are a new write.
    wait_until(lambda: raw.produce(first) == (0, 1), timeout=10, interval=0.2,
               what="the producer's state to expire")
