"""Views on a cluster of three nodes: each view runs on one node (the coordinator of its
group), every node answers about it (requests go on to the node keeping it, a change stream
included), and when that node is killed (`kill -9`) another takes the view over from the
committed offsets: the balances count every payment once."""

import json
import urllib.parse
import urllib.request

from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_until
from helpers import produce_all, producer
from test_cluster import agreed, running_cluster
from test_views import BALANCES, call, payments, sql


def home_of(nodes, view):
    """The node id whose own list says it runs `view` (the others say `on node N`)."""
    for node_id, node in nodes.items():
        if not node.alive():
            continue
        try:
            status, listed = call(node, "GET", "/v1/views")
        except OSError:
            continue
        for item in listed.get("views", []) if status == 200 else []:
            if item["name"] == view and not item["state"].startswith(("on node", "placing")):
                return node_id
    return None


def balance_everywhere(nodes, account, want):
    """True once every live node answers `account`'s row as `want`."""
    for node in nodes.values():
        if not node.alive():
            continue
        try:
            status, body = call(node, "GET", f"/v1/views/balances/keys/{account}")
        except OSError:
            return False
        if status != 200 or body["row"] != want:
            return False
    return True


def create_balances(nodes, via):
    """Creates topic `payments` (3 partitions, 3 replicas) and the view `balances` through node
    `via`; returns the node that keeps it."""
    admin = AdminClient({"bootstrap.servers": nodes[1].bootstrap})
    admin.create_topics([NewTopic("payments", 3, 3, config={"min.insync.replicas": "2"})])[
        "payments"].result(timeout=30)
    # Each node knows where the view will run once it has read the catalog and the others'
    # HTTP APIs are in it: until then it says 503 rather than answer for a view it does not
    # keep.
    wait_until(lambda: all(call(n, "GET", "/v1/views/balances")[0] == 404
                           for n in nodes.values()),
               timeout=30, what="every node knowing every node's HTTP API")
    status, body = sql(nodes[via], BALANCES)
    assert status == 200, body
    return wait_until(lambda: home_of(nodes, "balances"), timeout=30,
                      what="a node running balances")


def test_a_view_runs_on_one_node_answers_on_all_and_moves_when_that_node_dies(tmp_path):
    with running_cluster(tmp_path, 3, 3000) as nodes:
        # Created through node 2, whichever node keeps it.
        home = create_balances(nodes, via=2)

        records, expected = payments(300)
        reports = produce_all(producer(nodes[1], acks="all"), "payments",
                              records)
        last = reports[-1]
        position = urllib.parse.quote(f"payments:{last.partition()}:{last.offset()}")
        for node in nodes.values():
            status, body = call(node, "GET", f"/v1/views/balances/keys/acct-1?min_position="
                                             f"{position}&wait_ms=20000")
            assert status == 200, (node.http, body)
            assert body["row"] == {"account": "acct-1", "balance": expected["acct-1"][0],
                                   "payments": expected["acct-1"][1]}
        # A change stream through another node: the snapshot comes from the home node.
        other = next(n for i, n in nodes.items() if i != home)
        request = urllib.request.Request(other.http + "/v1/views/balances/changes?snapshot=true")
        with urllib.request.urlopen(request, timeout=30) as stream:
            rows = 0
            for line in stream:
                if line.startswith(b"data: ") and b'"row"' in line:
                    rows += 1
                if rows == len(expected):
                    break
        assert rows == len(expected)

        nodes[home].kill()
        survivors = {i: n for i, n in nodes.items() if i != home}
        wait_until(lambda: agreed(survivors.values(), sorted(survivors)), timeout=60,
                   what="the survivors fence the dead node")
        more, more_expected = payments(120, accounts=2)
        produce_all(producer(next(iter(survivors.values())), acks="all"), "payments", more)
        want = {"account": "acct-0",
                "balance": expected["acct-0"][0] + more_expected["acct-0"][0],
                "payments": expected["acct-0"][1] + more_expected["acct-0"][1]}
        wait_until(lambda: balance_everywhere(survivors, "acct-0", want), timeout=90,
                   what="another node took balances over, counting every payment once")
        new_home = home_of(survivors, "balances")
        assert new_home in survivors, new_home
        status, listed = call(survivors[new_home], "GET", "/v1/views")
        assert [v["name"] for v in listed["views"]] == ["balances"]


def output_counts(node, topic):
    """Every committed record of a view's output topic, read by librdkafka `read_committed`:
    (key, payments) in offset order."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "reader",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        out = []
        while True:
            message = consumer.poll(1.0)
            if message is None:
                return out
            assert message.error() is None, message.error()
            if message.value() is not None:
                out.append((message.key().decode(), json.loads(message.value())["payments"]))
    finally:
        consumer.close()


def test_a_paused_node_keeping_a_view_is_fenced_and_gives_it_up_when_it_wakes(tmp_path):
    """`kill -STOP` of the node keeping a view: another takes it over; when the paused node
    wakes (`kill -CONT`), its engine finds its transactional id fenced (and can publish
    nothing), and the node learns the view moved and stops keeping it. Every payment counts once, on every node, and
    the output topic never shows an account's count twice or going back."""
    import signal
    with running_cluster(tmp_path, 3, 3000) as nodes:
        paused = create_balances(nodes, via=1)
        records, expected = payments(300)
        produce_all(producer(nodes[1], acks="all"), "payments", records)
        want = {"account": "acct-0", "balance": expected["acct-0"][0],
                "payments": expected["acct-0"][1]}
        wait_until(lambda: balance_everywhere(nodes, "acct-0", want), timeout=30,
                   what="every node answering the folded balance")

        nodes[paused].proc.send_signal(signal.SIGSTOP)
        try:
            awake = {i: n for i, n in nodes.items() if i != paused}
            wait_until(lambda: agreed(awake.values(), sorted(awake)), timeout=60,
                       what="the awake nodes fence the paused one")
            more, more_expected = payments(120, accounts=2)
            produce_all(producer(next(iter(awake.values())), acks="all"), "payments", more)
            balance = expected["acct-0"][0] + more_expected["acct-0"][0]
            count = expected["acct-0"][1] + more_expected["acct-0"][1]
            want = {"account": "acct-0", "balance": balance, "payments": count}
            wait_until(lambda: balance_everywhere(awake, "acct-0", want), timeout=90,
                       what="an awake node took balances over, counting every payment once")
        finally:
            nodes[paused].proc.send_signal(signal.SIGCONT)

        last, last_expected = payments(30, accounts=1)
        produce_all(producer(nodes[paused], acks="all"), "payments", last)
        want = {"account": "acct-0", "balance": balance + last_expected["acct-0"][0],
                "payments": count + last_expected["acct-0"][1]}
        wait_until(lambda: balance_everywhere(nodes, "acct-0", want), timeout=90,
                   what="every node, the woken one too, answering each payment counted once")
        wait_until(lambda: sum(1 for i in nodes if home_of({i: nodes[i]}, "balances")) == 1,
                   timeout=30, what="one node keeping balances")
        counts = {}
        for account, n in output_counts(nodes[1], "balances"):
            assert n > counts.get(account, 0), \
                f"{account}'s count {n} published after {counts[account]}: a zombie's commit"
            counts[account] = n
        assert counts["acct-0"] == want["payments"]
