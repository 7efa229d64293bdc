"""The JavaScript clients of Node.js services against the real binary: KafkaJS and Confluent's
@confluentinc/kafka-javascript, driven through `tests/clients/js` (installed by scripts/test.sh).
What they write is read back by librdkafka (confluent-kafka), and their group consumers'
commits are checked from it too."""

from conftest import REPO
from helpers import produce_then_group_consume, run_driver

JSCLIENT = REPO / "tests" / "clients" / "js"


def jsclient(broker, scenario, *args, timeout=90):
    assert (JSCLIENT / "node_modules").exists(), "npm packages not installed; scripts/test.sh does"
    return run_driver(["node", str(JSCLIENT / "main.js"), scenario,
                       "--brokers", broker.bootstrap, *args,
                       "--timeout-ms", str((timeout - 10) * 1000)], timeout)


def js_produce_then_group_consume(broker, client, n):
    produce_then_group_consume(broker, lambda *a: jsclient(broker, *a), client,
                               f"{client}-topic", f"{client}-group", n)


def test_kafkajs_produces_and_its_group_consumer_reads_and_commits(broker):
    js_produce_then_group_consume(broker, "kafkajs", 300)


def test_confluent_kafka_javascript_produces_and_its_group_consumer_reads_and_commits(broker):
    js_produce_then_group_consume(broker, "confluent", 300)
