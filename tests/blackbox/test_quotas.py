"""Client quotas (issue 15, docs/security.md): AlterClientQuotas and DescribeClientQuotas through
Kafka's own Admin client and Sluice's CLI (`sluice quota set|list`), kept in the metadata log
across a kill -9; a producer held to its `producer_byte_rate` within 10% while another client
id runs unthrottled, with the throttle time in its responses; a consumer held to its
`consumer_byte_rate`."""

import json
import subprocess
import threading
import time

from confluent_kafka import Consumer, Producer

from conftest import SLUICE_BIN
from helpers import create_topic
from test_java_clients import javaclient


def cli(broker, *args, check=True):
    done = subprocess.run([str(SLUICE_BIN), *args, "--brokers", broker.bootstrap,
                           "--timeout", "10"], capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def quotas(broker, *args):
    return json.loads(cli(broker, "quota", "list", "--format", "json", *args).stdout)


def test_the_java_admin_client_alters_and_describes_quotas(broker):
    got = javaclient(broker, "quotas")
    alice = {"producer_byte_rate": 1048576.0}
    alice_app = {"producer_byte_rate": 4096.0, "request_percentage": 50.0}
    app = {"consumer_byte_rate": 2097152.0}
    default_client = {"producer_byte_rate": 65536.0}
    assert got["all"] == {"user=alice": alice, "client-id=app": app,
                          "client-id=app,user=alice": alice_app,
                          "client-id=<default>": default_client}
    assert got["strict_alice"] == {"user=alice": alice}
    assert got["any_with_alice"] == {"user=alice": alice, "client-id=app,user=alice": alice_app}
    assert got["default_client"] == {"client-id=<default>": default_client}
    assert got["after_remove"] == {"client-id=app,user=alice": {"producer_byte_rate": 4096.0}}
    assert got["unknown_key"] == "InvalidRequestException"
    assert got["fractional_rate"] == "InvalidRequestException"
    assert got["unknown_entity"] == "InvalidRequestException"


def test_the_cli_sets_lists_and_removes_quotas_which_survive_a_kill_9(broker):
    cli(broker, "quota", "set", "--name", "user=alice", "producer_byte_rate=1048576",
        "consumer_byte_rate=2097152")
    cli(broker, "quota", "set", "--default", "client-id", "request_percentage=25")
    cli(broker, "quota", "set", "--name", "user=bob", "--name", "client-id=app",
        "producer_byte_rate=1000")
    assert quotas(broker) == [
        {"entity": {"client-id": None}, "quotas": {"request_percentage": 25.0}},
        {"entity": {"client-id": "app", "user": "bob"}, "quotas": {"producer_byte_rate": 1000.0}},
        {"entity": {"user": "alice"},
         "quotas": {"consumer_byte_rate": 2097152.0, "producer_byte_rate": 1048576.0}},
    ]
    assert quotas(broker, "--name", "user=alice") == [
        {"entity": {"user": "alice"},
         "quotas": {"consumer_byte_rate": 2097152.0, "producer_byte_rate": 1048576.0}}]
    assert quotas(broker, "--default", "client-id") == [
        {"entity": {"client-id": None}, "quotas": {"request_percentage": 25.0}}]
    cli(broker, "quota", "set", "--name", "user=alice", "--remove", "consumer_byte_rate")
    refused = cli(broker, "quota", "set", "--name", "user=alice", "bogus=1", check=False)
    assert refused.returncode != 0 and "bogus" in refused.stderr
    text = cli(broker, "quota", "list").stdout
    assert "user=alice" in text and "producer_byte_rate" in text, text
    broker.kill()
    broker.start()
    assert quotas(broker, "--name", "user=alice") == [
        {"entity": {"user": "alice"}, "quotas": {"producer_byte_rate": 1048576.0}}]


def produce_for(broker, client_id, topic, seconds, stats):
    """Produces 16 KiB records as fast as the broker lets `client_id`, for `seconds`: the
    (time, bytes) of each delivery, and librdkafka's statistics in `stats`."""
    value = b"x" * 16384
    delivered = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id,
                  "linger.ms": 5, "queue.buffering.max.kbytes": 1024, "batch.size": 65536,
                  "statistics.interval.ms": 1000, "stats_cb": lambda s: stats.append(s)})
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            p.produce(topic, value=value, on_delivery=lambda err, msg: err is None and
                      delivered.append((time.monotonic() - start, len(msg.value()))))
        except BufferError:
            p.poll(0.05)
        p.poll(0)
    p.flush(30)
    return delivered


def rate_between(deliveries, t0, t1):
    return sum(n for t, n in deliveries if t0 <= t < t1) / (t1 - t0)


def test_a_producer_is_held_to_its_byte_rate_within_ten_percent(broker):
    quota = 256 * 1024
    create_topic(broker, "quota-in", 1)
    cli(broker, "quota", "set", "--name", "client-id=throttled", f"producer_byte_rate={quota}")
    stats, free_stats, unthrottled = [], [], {}
    free = threading.Thread(target=lambda: unthrottled.setdefault(
        "d", produce_for(broker, "free", "quota-in", 4, free_stats)))
    free.start()
    throttled = produce_for(broker, "throttled", "quota-in", 12, stats)
    free.join()
    # After the first second's burst, the rate is the quota's.
    rate = rate_between(throttled, 2, 12)
    print(f"producer held at {rate:.0f} B/s against a quota of {quota} B/s")
    assert abs(rate - quota) / quota < 0.10, f"{rate:.0f} B/s against a quota of {quota}"
    free_rate = rate_between(unthrottled["d"], 0, 4)
    assert free_rate > 4 * quota, f"another client id is not held back: {free_rate:.0f} B/s"
    throttles = [b["throttle"]["max"] for s in stats for b in json.loads(s)["brokers"].values()
                 if b["nodeid"] >= 0]
    assert max(throttles) > 0, "the responses tell the client its throttle time"


def test_a_consumer_is_held_to_its_byte_rate(broker):
    quota = 512 * 1024
    create_topic(broker, "quota-out", 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
    for _ in range(640):  # 10 MiB
        p.produce("quota-out", value=b"y" * 16384)
        p.poll(0)
    assert p.flush(30) == 0
    cli(broker, "quota", "set", "--name", "client-id=slow-reader", f"consumer_byte_rate={quota}")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "client.id": "slow-reader",
                  "group.id": "slow-readers", "auto.offset.reset": "earliest",
                  "fetch.max.bytes": 1048576})
    c.subscribe(["quota-out"])
    got, start = [], None
    deadline = time.monotonic() + 40
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error() is not None:
                continue
            start = start or time.monotonic()
            got.append((time.monotonic() - start, len(m.value())))
            if time.monotonic() - start > 10:
                break
    finally:
        c.close()
    rate = rate_between(got, 2, 10)
    print(f"consumer held at {rate:.0f} B/s against a quota of {quota} B/s")
    assert abs(rate - quota) / quota < 0.15, f"{rate:.0f} B/s against a quota of {quota}"
