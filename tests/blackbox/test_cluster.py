"""Several `sluice serve` processes form one cluster through the metadata log (openraft):
every node is a voter and a broker; brokers register and heartbeat; DescribeCluster and
Metadata name every live broker and the active controller, from whichever broker is asked;
`kill -9` of the active controller elects another; a killed broker is fenced after the session
timeout and let back in when it returns. Topics in the metadata log: test_cluster_topics.py."""

import contextlib
import struct
import time

import pytest
from confluent_kafka.admin import AdminClient

from conftest import Broker, free_port, wait_until
from rawwire import raw, read_frame, request

SESSION_TIMEOUT_MS = 3000


@pytest.fixture
def start_cluster(tmp_path):
    started = []

    def start(size=3, session_timeout_ms=SESSION_TIMEOUT_MS):
        nodes = launch_cluster(tmp_path, size, session_timeout_ms)
        started.append(nodes)
        return nodes

    yield start
    for nodes in started:
        for b in nodes.values():
            if b.alive():
                b.proc.kill()
                b.proc.wait(timeout=10)


@pytest.fixture
def cluster(start_cluster):
    return start_cluster()


def launch_cluster(tmp_path, size, session_timeout_ms, node_env=None):
    """`node_env(i)`: more environment for node `i`."""
    controller_ports = {i: free_port() for i in range(1, size + 1)}
    voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in controller_ports.items())
    nodes = {}
    for i, port in controller_ports.items():
        nodes[i] = Broker(
            tmp_path / f"node{i}", free_port(),
            extra_env={"SLUICE_BROKER_SESSION_TIMEOUT_MS": str(session_timeout_ms),
                       "SLUICE_BROKER_HEARTBEAT_INTERVAL_MS": "500",
                       **(node_env(i) if node_env else {})},
            extra_args=["--node-id", str(i), "--controller-listen", f"127.0.0.1:{port}",
                        "--controllers", voters],
        )
    for b in nodes.values():
        b.launch()
    try:
        for b in nodes.values():
            wait_until(b._accepting, timeout=30, what=f"node on {b.bootstrap}")
    except BaseException:
        # A node that failed to start must not leave the others running past the test.
        for b in nodes.values():
            if b.alive():
                b.proc.kill()
                b.proc.wait(timeout=10)
        raise
    return nodes


@contextlib.contextmanager
def running_cluster(tmp_path, size, session_timeout_ms, node_env=None):
    """`size` nodes (each a controller and a broker) once they agree on one cluster of all
    of them; killed on the way out."""
    nodes = launch_cluster(tmp_path, size, session_timeout_ms, node_env)
    try:
        wait_until(lambda: agreed(nodes.values(), list(range(1, size + 1))), timeout=60,
                   what=f"{size} brokers agreeing")
        yield nodes
    finally:
        for b in nodes.values():
            if b.alive():
                b.proc.kill()
                b.proc.wait(timeout=10)


def describe(broker):
    """(cluster id, controller id, sorted broker ids), as `broker` answers DescribeCluster."""
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    cluster = client.describe_cluster(request_timeout=3).result(5)
    controller = cluster.controller.id if cluster.controller is not None else -1
    return cluster.cluster_id, controller, tuple(sorted(n.id for n in cluster.nodes))


def metadata_brokers(broker):
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    return sorted(client.list_topics(timeout=10).brokers)


def agreed(nodes, brokers):
    """The (cluster id, controller) every live node in `nodes` answers, once they agree and
    each lists exactly `brokers`; None until then."""
    try:
        answers = {describe(b) for b in nodes}
    except Exception:  # noqa: BLE001 - librdkafka asks the controller it last knew: a dead one
        return None
    if len(answers) != 1:
        return None
    cluster_id, controller, listed = answers.pop()
    if list(listed) != brokers or controller == -1:
        return None
    return cluster_id, controller


def test_three_nodes_form_one_cluster(cluster):
    cluster_id, controller = wait_until(lambda: agreed(cluster.values(), [1, 2, 3]),
                                        timeout=30, what="three brokers agreeing")
    assert controller in cluster
    for b in cluster.values():
        assert metadata_brokers(b) == [1, 2, 3]
        assert b.data_dir.joinpath("metadata", "raft-log").exists()
    # Each node's own data directory had its own id; the cluster has one.
    assert len(cluster_id) > 0


def test_killing_the_active_controller_elects_another_and_fences_its_broker(cluster):
    _, controller = wait_until(lambda: agreed(cluster.values(), [1, 2, 3]),
                               timeout=30, what="three brokers agreeing")
    killed = cluster[controller]
    killed.kill()
    killed_at = time.monotonic()
    survivors = [b for i, b in cluster.items() if i != controller]
    # A new controller, and the killed broker fenced once its session has expired.
    expected = sorted(i for i in cluster if i != controller)
    _, new_controller = wait_until(lambda: agreed(survivors, expected), timeout=30,
                                   what="a new controller and the dead broker fenced")
    fenced_after = time.monotonic() - killed_at
    assert new_controller != controller
    assert fenced_after >= SESSION_TIMEOUT_MS / 1000 * 0.9, \
        f"fenced after {fenced_after:.1f}s, before its session could expire"
    # `sluice cluster info` shows it fenced, and names the new controller.
    states = cluster_info_states(survivors[0])
    assert states[controller] == "fenced", states
    assert states[new_controller] == "serving, controller", states
    # It comes back as a new incarnation and is let in again.
    killed.start()
    wait_until(lambda: agreed(cluster.values(), [1, 2, 3]), timeout=30,
               what="the restarted broker back in the cluster")


def test_a_broker_that_stops_cleanly_leaves_at_once(start_cluster):
    session_timeout_s = 20
    cluster = start_cluster(session_timeout_ms=session_timeout_s * 1000)
    _, controller = wait_until(lambda: agreed(cluster.values(), [1, 2, 3]), timeout=30,
                               what="three brokers agreeing")
    leaving_id = next(i for i in cluster if i != controller)
    staying = [b for i, b in cluster.items() if i != leaving_id]
    started = time.monotonic()
    assert cluster[leaving_id].stop() == 0
    # A controlled shutdown fences it without waiting for its session to expire.
    wait_until(lambda: agreed(staying, sorted(i for i in cluster if i != leaving_id)),
               timeout=session_timeout_s, what="the stopped broker gone from the cluster")
    assert time.monotonic() - started < session_timeout_s / 2


def test_controller_only_and_broker_only_nodes(tmp_path):
    """Voters 1, 2 and 3, of which 3 serves no Kafka clients (`--roles controller`); node 4 is
    a broker only (`--roles broker`): it receives the metadata log as a learner and is a
    broker like the others."""
    ports = {i: free_port() for i in range(1, 5)}
    voters = ",".join(f"{i}@127.0.0.1:{ports[i]}" for i in (1, 2, 3))
    roles = {1: "broker,controller", 2: "broker,controller", 3: "controller", 4: "broker"}
    nodes = {i: Broker(tmp_path / f"node{i}", free_port(),
                       extra_args=["--node-id", str(i), "--roles", roles[i],
                                   "--controller-listen", f"127.0.0.1:{ports[i]}",
                                   "--controllers", voters])
             for i in roles}
    try:
        for b in nodes.values():
            b.launch()
        for i in (1, 2, 4):
            wait_until(nodes[i]._accepting, timeout=30, what=f"node {i} serving")
        nodes[3].wait_for_log("controller only", timeout=30)
        brokers = [nodes[1], nodes[2], nodes[4]]
        wait_until(lambda: all(metadata_brokers(b) == [1, 2, 4] for b in brokers),
                   timeout=30, what="brokers 1, 2 and 4 in every broker's Metadata")
        # Clients are told of a controller they can reach: the active one if it is a broker,
        # else the broker asked (node 3 has no Kafka listener).
        for b in brokers:
            _, controller, listed = wait_until(lambda: describe_or_none(b), timeout=15,
                                               what="DescribeCluster")
            assert listed == (1, 2, 4) and controller in (1, 2, 4), (controller, listed)
        # The controller-only node has no Kafka listener.
        with pytest.raises(OSError):
            socket_probe(nodes[3].port)
    finally:
        for b in nodes.values():
            if b.alive():
                b.proc.kill()
                b.proc.wait(timeout=10)


def describe_or_none(broker):
    try:
        return describe(broker)
    except Exception:  # noqa: BLE001 - a controller not known yet
        return None


def socket_probe(port):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_cluster_flags_are_checked(tmp_path):
    import subprocess
    from conftest import SLUICE_BIN

    def refused(*args):
        run = subprocess.run([str(SLUICE_BIN), "serve", "--data-dir", str(tmp_path / "d"),
                              "--http-listen", "off", "--listen", f"127.0.0.1:{free_port()}",
                              *args], capture_output=True, text=True, timeout=30)
        assert run.returncode != 0
        return run.stderr

    assert "needs --controllers" in refused("--roles", "broker")
    assert "neither broker nor controller" in refused("--roles", "broker,witness")
    assert "not one of them" in refused("--node-id", "4", "--controllers", "1@127.0.0.1:1")
    assert "has no controller" in refused("--roles", "broker", "--controllers", "1@127.0.0.1:1")
    assert "--controller-listen" in refused(
        "--controllers", "1@127.0.0.1:1,2@127.0.0.1:2")
    assert "ID@HOST:PORT" in refused("--controllers", "one")


def init_producer_id(broker):
    """InitProducerId v0 without a transactional id: (error code, producer id)."""
    s = raw(broker)
    try:
        s.sendall(request(22, 0, 7, struct.pack(">hi", -1, 60_000)))
        frame = read_frame(s)
    finally:
        s.close()
    _, _, error, producer_id, _ = struct.unpack(">iihqh", frame)
    return error, producer_id


def test_producer_ids_are_unique_across_the_cluster(cluster):
    wait_until(lambda: agreed(cluster.values(), [1, 2, 3]), timeout=30,
               what="three brokers agreeing")
    ids = {}
    for node, b in cluster.items():
        answers = [wait_until(lambda: (a := init_producer_id(b)) and a[0] == 0 and a,
                              timeout=15, what="a producer id") for _ in range(3)]
        ids[node] = [pid for _, pid in answers]
    every = [pid for pids in ids.values() for pid in pids]
    assert len(set(every)) == len(every), ids
    # Each broker hands out its own block: consecutive ids on one broker, far apart across.
    for pids in ids.values():
        assert pids == list(range(pids[0], pids[0] + 3)), ids


def test_a_single_node_data_directory_keeps_its_producer_ids(tmp_path):
    """A data directory from before the metadata log handed out producer ids below its
    `producer-id-block`; taken over, it never hands those out again."""
    data = tmp_path / "old"
    data.mkdir()
    (data / "producer-id-block").write_text("7000")
    b = Broker(data, free_port()).start()
    try:
        error, pid = init_producer_id(b)
        assert error == 0 and pid >= 7000, (error, pid)
        b.stop()
        b.start()
        error, again = init_producer_id(b)
        assert error == 0 and again > pid, (error, pid, again)
    finally:
        if b.alive():
            b.kill()


def test_a_data_directory_from_before_the_metadata_log_is_taken_over(tmp_path):
    """A single-node data directory without `metadata/` (as the binary before the controller
    quorum left it): its topics, records and cluster id are all there after the upgrade."""
    import shutil
    from helpers import consume_all, create_topic, produce_all, producer

    b = Broker(tmp_path / "data", free_port()).start()
    try:
        create_topic(b, "kept", 3)
        produce_all(producer(b), "kept", [(b"k%d" % i, b"v%d" % i) for i in range(30)])
        cluster_id, _, _ = describe(b)
        assert b.stop() == 0
        shutil.rmtree(b.data_dir / "metadata")
        b.start()
        wait_until(lambda: describe(b)[2] == (1,), what="the node registered")
        assert describe(b)[0] == cluster_id
        got = consume_all(b, "kept", 30)
        assert sorted(m.value() for m in got) == sorted(b"v%d" % i for i in range(30))
    finally:
        if b.alive():
            b.kill()


def cluster_info_states(broker):
    """{broker id: state} as `sluice cluster info` prints them."""
    import subprocess
    from conftest import SLUICE_BIN
    out = subprocess.run([str(SLUICE_BIN), "cluster", "info", "--brokers", broker.bootstrap],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    rows = out.split("BROKER")[1].splitlines()[1:]
    states = {}
    for row in filter(None, rows):
        broker_id, _address, _rack, state = row.split(None, 3)
        states[int(broker_id)] = state
    return states
