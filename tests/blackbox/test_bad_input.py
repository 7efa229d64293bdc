"""Malformed and hostile input over a raw socket: the broker answers what it can, closes the
connection otherwise, and keeps serving everyone else."""

import struct

from helpers import consume_all, create_topic, produce_all, producer
from rawwire import closed_by_peer, raw, read_frame, request, uvarint


def still_serving(broker):
    create_topic(broker, "alive")
    produce_all(producer(broker), "alive", [(None, b"ok")])
    assert consume_all(broker, "alive", 1)[0].value() == b"ok"
    assert broker.alive()


def test_oversized_frame_is_refused_before_allocation(broker):
    s = raw(broker)
    s.sendall(struct.pack(">i", 2_000_000_000) + b"\x00" * 16)
    assert closed_by_peer(s)
    still_serving(broker)


def test_huge_array_count_does_not_exhaust_memory(broker):
    # Metadata v1 with a topics array claiming 2^31-1 entries and holding none.
    s = raw(broker)
    s.sendall(request(3, 1, 7, struct.pack(">i", 0x7FFFFFFF)))
    assert closed_by_peer(s)
    still_serving(broker)


def test_garbage_and_truncated_frames_close_the_connection(broker):
    for payload in [b"\xff" * 64, struct.pack(">i", 3) + b"abc", request(0, 9, 1, b"\x01\x02")]:
        s = raw(broker)
        s.sendall(payload)
        assert closed_by_peer(s)
    still_serving(broker)


def test_unknown_api_versions_version_gets_a_v0_unsupported_answer(broker):
    s = raw(broker)
    s.sendall(request(18, 99, 1234))
    frame = read_frame(s)
    correlation_id, error_code, count = struct.unpack(">ihi", frame[:10])
    assert correlation_id == 1234
    assert error_code == 35  # UNSUPPORTED_VERSION
    keys = [struct.unpack(">hhh", frame[10 + 6 * i:16 + 6 * i]) for i in range(count)]
    assert (18, 0, 3) in keys
    # Transactions as librdkafka and kafka-python speak them; the KIP-890 (transactions V2)
    # versions are not offered. AddPartitionsToTxn v4 is the brokers' verification form
    # (KIP-890 part 1, `verify_only`), which clients do not use.
    transaction_apis = [(22, 0, 4), (24, 0, 4), (25, 0, 3), (26, 0, 3), (28, 0, 3), (61, 0, 0),
                        (65, 0, 0), (66, 0, 1)]
    for api in transaction_apis:
        assert api in keys, f"{api} not advertised as expected"


def test_pipelined_requests_are_answered_in_order(broker):
    s = raw(broker)
    s.sendall(b"".join(request(18, 0, cid) for cid in range(50)))
    got = [struct.unpack(">i", read_frame(s)[:4])[0] for _ in range(50)]
    assert got == list(range(50))


def test_corrupt_batch_gets_corrupt_message(broker):
    create_topic(broker, "crc")
    # Produce v3 by hand: a batch whose CRC does not match.
    batch = bytearray(struct.pack(">qiibIhiqqqhii", 0, 49 + 12 - 12, 0, 2, 0, 0, 0, 1, 1, -1, -1, -1, 1))
    record = b"\x0e\x00\x00\x00\x01\x02\x01\x02x\x00"
    batch += record
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    struct.pack_into(">I", batch, 17, 0xDEADBEEF)
    topic = b"crc"
    body = struct.pack(">hhi", -1, 1, 5000)  # transactional_id null, acks=1, timeout
    body += struct.pack(">i", 1) + struct.pack(">h", len(topic)) + topic
    body += struct.pack(">i", 1) + struct.pack(">ii", 0, len(batch)) + bytes(batch)
    s = raw(broker)
    s.sendall(request(0, 3, 77, body))
    frame = read_frame(s)
    assert struct.unpack(">i", frame[:4])[0] == 77
    # responses: [topic name, [partition, error_code, ...]]
    off = 4 + 4 + 2 + len(topic) + 4 + 4
    (error_code,) = struct.unpack(">h", frame[off:off + 2])
    assert error_code == 2  # CORRUPT_MESSAGE
    still_serving(broker)


def test_describe_producers_answers_a_repeated_partition_once(broker):
    # DescribeProducers v0 (flexible): a partition named 10,000 times. Each answer copies the
    # partition's producer state, so repeats must not multiply the answer.
    create_topic(broker, "repeated")
    produce_all(producer(broker, **{"enable.idempotence": True}), "repeated", [(None, b"x")])
    repeats = 10_000

    name = b"repeated"
    body = (uvarint(2) + uvarint(len(name) + 1) + name
            + uvarint(repeats + 1) + struct.pack(">i", 0) * repeats
            + b"\x00"  # topic tagged fields
            + b"\x00")  # request tagged fields
    # Request header v2: key, version, correlation id, client id, tagged fields.
    header = struct.pack(">hhih", 61, 0, 42, 1) + b"t" + b"\x00"
    s = raw(broker)
    s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    frame = read_frame(s)
    # Response header v1 (correlation id, tagged fields), throttle time, topics array.
    assert struct.unpack(">i", frame[:4])[0] == 42
    at = 4 + 1 + 4
    assert frame[at] == 2, "one topic"
    at += 1
    assert frame[at] == len(name) + 1 and frame[at + 1:at + 1 + len(name)] == name
    at += 1 + len(name)
    assert frame[at] == 2, "one partition answered, not one per repeat"
    assert len(frame) < 200, len(frame)
    still_serving(broker)
