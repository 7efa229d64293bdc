"""The Go clients of a microservice shop against the real binary: franz-go (kgo and kadm) and
sarama, driven through `tests/clients/go` (built by scripts/test.sh into target/goclient).
What they write is read back by librdkafka, an independent client."""

from conftest import REPO
from helpers import admin, consume_all, create_topic, produce_then_group_consume, run_driver

GOCLIENT = REPO / "target" / "goclient"


def goclient(broker, scenario, *args, timeout=90):
    assert GOCLIENT.exists(), f"{GOCLIENT} not built; scripts/test.sh builds it"
    return run_driver([str(GOCLIENT), scenario, "-brokers", broker.bootstrap, *args,
                       "-timeout", f"{timeout - 10}s"], timeout)


def go_produce_then_group_consume(broker, client, n, group):
    """`client` (franz or sarama) on a topic of its own name."""
    produce_then_group_consume(broker, lambda *a: goclient(broker, *a), client, client, group, n,
                               dash="-")


def test_franz_go_produces_and_its_group_consumer_reads_and_commits(broker):
    go_produce_then_group_consume(broker, "franz", 300, "kgo")


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
    go_produce_then_group_consume(broker, "sarama", 200, "sarama-group")
