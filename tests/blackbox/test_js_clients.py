"""The JavaScript clients of Node.js services against the real binary: KafkaJS and Confluent's
@confluentinc/kafka-javascript, driven through `tests/clients/js` (installed by scripts/test.sh).
What they write is read back by librdkafka (confluent-kafka), and their group consumers'
commits are checked from it too."""

import json
import subprocess

from confluent_kafka import Consumer, TopicPartition

from conftest import REPO
from helpers import consume_all, create_topic

JSCLIENT = REPO / "tests" / "clients" / "js"


def jsclient(broker, scenario, *args, timeout=90):
    assert (JSCLIENT / "node_modules").exists(), "npm packages not installed; scripts/test.sh does"
    done = subprocess.run(["node", str(JSCLIENT / "main.js"), scenario,
                           "--brokers", broker.bootstrap, *args,
                           "--timeout-ms", str((timeout - 10) * 1000)],
                          capture_output=True, timeout=timeout)
    assert done.returncode == 0, done.stderr.decode()[-6000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def committed_total(broker, topic, group, partitions):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        offsets = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(o.offset, 0) for o in offsets)
    finally:
        c.close()


def produce_then_group_consume(broker, client, n):
    topic = f"{client}-topic"
    group = f"{client}-group"
    create_topic(broker, topic, 3)
    assert jsclient(broker, f"{client}-produce", "--topic", topic, "--n", str(n)) == {"produced": n}
    expected = sorted(f"{client}-{i:06d}" for i in range(n))
    assert sorted(m.value().decode() for m in consume_all(broker, topic, n)) == expected
    got = jsclient(broker, f"{client}-consume", "--topic", topic, "--group", group, "--n", str(n))
    assert got["values"] == expected
    assert committed_total(broker, topic, group, 3) == n


def test_kafkajs_produces_and_its_group_consumer_reads_and_commits(broker):
    produce_then_group_consume(broker, "kafkajs", 300)


def test_confluent_kafka_javascript_produces_and_its_group_consumer_reads_and_commits(broker):
    produce_then_group_consume(broker, "confluent", 300)
