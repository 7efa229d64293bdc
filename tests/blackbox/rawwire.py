"""Kafka's wire format by hand, for tests that must send what no client would: raw sockets,
request frames, record batches with lying fields, and CRC-32C."""

import gzip
import socket
import struct


def raw(broker, timeout=5):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def closed_by_peer(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def request(api_key, version, correlation_id, body=b"", client_id=b"t"):
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(s):
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            assert chunk, "connection closed"
            buf += chunk
        return buf
    (length,) = struct.unpack(">i", exactly(4))
    return exactly(length)


def cluster_view(host, port):
    """(controller id, sorted live broker ids) as the broker at `host:port` answers Metadata
    v1 (no topics), or None if it cannot be asked."""
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.settimeout(1)
            s.sendall(request(3, 1, 1, struct.pack(">i", 0)))
            data = read_frame(s)
    except (OSError, AssertionError):
        return None
    r = Reader(data)
    r.take(">i")  # correlation id
    brokers = []
    for _ in range(r.take(">i")):
        brokers.append(r.take(">i"))
        host_bytes = r.take(">h")
        r.at += host_bytes
        r.take(">i")  # port
        rack_bytes = r.take(">h")
        r.at += max(rack_bytes, 0)
    return r.take(">i"), sorted(brokers)


def coordinator(host, port, key, key_type):
    """(error, node id) as the broker at `host:port` answers FindCoordinator v1 for `key` (key
    type 0: a group, 1: a transactional id)."""
    encoded = key.encode()
    body = struct.pack(">h", len(encoded)) + encoded + struct.pack(">b", key_type)
    with socket.create_connection((host, port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(request(10, 1, 3, body))
        frame = read_frame(s)
    r = Reader(frame)
    assert r.take(">i") == 3
    r.take(">i")  # throttle time
    error = r.take(">h")
    length = r.take(">h")
    r.at += max(length, 0)
    return error, r.take(">i")


def _crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def varint(n):
    """Zig-zag varint, as inside records."""
    z = (n << 1) ^ (n >> 63)
    z &= (1 << 64) - 1
    out = b""
    while z >= 0x80:
        out += bytes([(z & 0x7F) | 0x80])
        z >>= 7
    return out + bytes([z])


def uvarint(n):
    """Unsigned varint, as flexible versions encode lengths and tagged fields."""
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


class Reader:
    """Reads a response frame field by field, flexible versions included."""

    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        (value,) = struct.unpack(fmt, self.data[self.at:self.at + size])
        self.at += size
        return value

    def uvarint(self):
        shift = value = 0
        while True:
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def compact_bytes(self):
        n = self.uvarint() - 1
        out = self.data[self.at:self.at + max(n, 0)]
        self.at += max(n, 0)
        return None if n < 0 else out

    def tagged(self):
        """{tag: bytes} of a tagged-field section."""
        fields = {}
        for _ in range(self.uvarint()):
            tag, size = self.uvarint(), self.uvarint()
            fields[tag] = self.data[self.at:self.at + size]
            self.at += size
        return fields


def record(value=b"v", key=None, key_length=None, headers=0, offset_delta=0):
    """One record; `key_length` and `headers` may lie about what follows."""
    klen = (len(key) if key is not None else -1) if key_length is None else key_length
    fields = (b"\x00" + varint(0) + varint(offset_delta) + varint(klen) + (key or b"")
              + varint(len(value)) + value + varint(headers))
    return varint(len(fields)) + fields


def batch(body, records_count, attributes=0):
    """A v2 batch around `body` (records, compressed or not, as given) with a correct CRC."""
    header = struct.pack(">qiibIhiqqqhii", 0, 0, 0, 2, 0, attributes, records_count - 1,
                         0, 0, -1, -1, -1, records_count)
    b = bytearray(header + body)
    struct.pack_into(">i", b, 8, len(b) - 12)
    struct.pack_into(">I", b, 17, crc32c(bytes(b[21:])))
    return bytes(b)


def gzip_batch(body, records_count):
    return batch(gzip.compress(body), records_count, attributes=1)


def produce(s, topic, records, correlation_id=1, acks=1):
    """Produce v3 of one batch run to partition 0; returns the partition's error code."""
    name = topic.encode()
    body = struct.pack(">hhi", -1, acks, 5000)
    body += struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
    body += struct.pack(">i", 1) + struct.pack(">ii", 0, len(records)) + records
    s.sendall(request(0, 3, correlation_id, body))
    frame = read_frame(s)
    assert struct.unpack(">i", frame[:4])[0] == correlation_id
    at = 4 + 4 + 2 + len(name) + 4 + 4
    (error_code,) = struct.unpack(">h", frame[at:at + 2])
    return error_code
