"""The Go clients of a microservice shop against the real binary: franz-go (kgo and kadm) and
sarama, driven through `tests/clients/go` (built by scripts/test.sh into target/goclient).
What they write is read back by librdkafka, an independent client."""

import json
import subprocess

from confluent_kafka import Consumer, TopicPartition

from conftest import REPO
from helpers import admin, consume_all, create_topic

GOCLIENT = REPO / "target" / "goclient"


def goclient(broker, scenario, *args, timeout=90):
    assert GOCLIENT.exists(), f"{GOCLIENT} not built; scripts/test.sh builds it"
    done = subprocess.run([str(GOCLIENT), scenario, "-brokers", broker.bootstrap, *args,
                           "-timeout", f"{timeout - 10}s"],
                          capture_output=True, timeout=timeout)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def committed_total(broker, topic, group, partitions):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        offsets = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(o.offset, 0) for o in offsets)
    finally:
        c.close()


def produce_then_group_consume(broker, client, n, group):
    """`client` (franz or sarama) writes n records to a 3-partition topic; librdkafka reads
    them all back; the client's own group consumer reads and commits them."""
    topic = client
    create_topic(broker, topic, 3)
    assert goclient(broker, f"{client}-produce", "-topic", topic, "-n", str(n)) == {"produced": n}
    expected = sorted(f"{client}-{i:06d}" for i in range(n))
    assert sorted(m.value().decode() for m in consume_all(broker, topic, n)) == expected
    got = goclient(broker, f"{client}-consume", "-topic", topic, "-group", group, "-n", str(n))
    assert got["values"] == expected
    assert committed_total(broker, topic, group, 3) == n


def test_franz_go_produces_and_its_group_consumer_reads_and_commits(broker):
    produce_then_group_consume(broker, "franz", 300, "kgo")


def test_franz_go_transactions_commit_and_abort(broker):
    create_topic(broker, "franz-txn", 2)
    assert goclient(broker, "franz-txn", "-topic", "franz-txn", "-txn", "go-txn", "-n", "50") \
        == {"committed": 50, "aborted": 50}
    committed = consume_all(broker, "franz-txn", 50, **{"isolation.level": "read_committed"})
    assert sorted(m.value().decode() for m in committed) == [f"committed-{i:06d}" for i in range(50)]
    everything = consume_all(broker, "franz-txn", 100, **{"isolation.level": "read_uncommitted"})
    assert len(everything) == 100
    # franz-go's own read_committed group consumer sees only the committed half.
    got = goclient(broker, "franz-consume", "-topic", "franz-txn", "-group", "kgo-rc", "-n", "50")
    assert got["values"] == [f"committed-{i:06d}" for i in range(50)]


def test_kadm_creates_lists_and_describes(broker):
    got = goclient(broker, "franz-admin", "-topic", "made-by-kadm", "-group", "nobody")
    assert got == {"partitions": 3, "end_offsets": 3, "group_state": "Dead"}
    topics = admin(broker).list_topics(timeout=10).topics
    assert len(topics["made-by-kadm"].partitions) == 3


def test_sarama_produces_and_its_group_consumer_reads_and_commits(broker):
    produce_then_group_consume(broker, "sarama", 200, "sarama-group")
