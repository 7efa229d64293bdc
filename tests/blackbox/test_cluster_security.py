"""A secured cluster (issue 15, docs/security.md, "Between brokers"): three nodes enforcing
ACLs reach each other over a SASL_SSL inter-broker listener (`inter_broker_listener_name`),
logged in as a `broker` user that is a super user, and their controllers speak mutual TLS
(`controller_listener_security_protocol SSL`). `User:ANONYMOUS` is allowed nothing, so
replication, transaction markers and the HTTP API's requests to other brokers work only if they
authenticate: followers stay in sync under `min.insync.replicas=3`, a transaction spanning
partitions led by every broker commits, and an HTTP caller acts as itself on every broker."""

import base64
import json
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from conftest import SLUICE_BIN, Broker, free_port, wait_until
from test_tls import make_certificates

ADMIN = ("admin", "admin-secret")
ALICE = ("alice", "alice-secret")
BROKER_PASSWORD = "broker-secret"


def node_env(certs, sasl_ssl_port):
    scram = (f'SCRAM-SHA-512=[name=admin,password="{ADMIN[1]}"],'
             f'SCRAM-SHA-512=[name=broker,password="{BROKER_PASSWORD}"]')
    return {
        "SLUICE_LISTENERS": f"SASL_SSL://127.0.0.1:{sasl_ssl_port}",
        "SLUICE_SSL_KEYSTORE_LOCATION": str(certs / "keystore.pem"),
        "SLUICE_SSL_TRUSTSTORE_LOCATION": str(certs / "ca.pem"),
        "SLUICE_SASL_ENABLED_MECHANISMS": "SCRAM-SHA-512",
        "SLUICE_SASL_BOOTSTRAP_SCRAM": scram,
        "SLUICE_AUTHORIZER_CLASS_NAME": "StandardAuthorizer",
        "SLUICE_SUPER_USERS": "User:admin;User:broker",
        "SLUICE_INTER_BROKER_LISTENER_NAME": "SASL_SSL",
        "SLUICE_INTER_BROKER_SASL_USERNAME": "broker",
        "SLUICE_INTER_BROKER_SASL_PASSWORD": BROKER_PASSWORD,
        "SLUICE_CONTROLLER_LISTENER_SECURITY_PROTOCOL": "SSL",
        "SLUICE_HTTP_AUTH": "basic",
        "SLUICE_BROKER_SESSION_TIMEOUT_MS": "3000",
        "SLUICE_BROKER_HEARTBEAT_INTERVAL_MS": "500",
        "SLUICE_DEFAULT_REPLICATION_FACTOR": "3",
    }


class SecuredCluster:
    def __init__(self, nodes, sasl_ports, controller_ports, certs):
        self.nodes, self.sasl_ports, self.certs = nodes, sasl_ports, certs
        self.controller_ports = controller_ports

    def conf(self, who=ADMIN, node=1):
        return {"bootstrap.servers": f"127.0.0.1:{self.sasl_ports[node]}",
                "security.protocol": "SASL_SSL", "ssl.ca.location": str(self.certs / "ca.pem"),
                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": who[0],
                "sasl.password": who[1]}

    def admin(self, who=ADMIN, node=1):
        return AdminClient(self.conf(who, node))


def all_registered(cluster):
    """Whether every node answers Metadata (as admin) with all three brokers."""
    try:
        return all(sorted(cluster.admin(node=i).list_topics(timeout=5).brokers) == [1, 2, 3]
                   for i in cluster.nodes)
    except Exception:  # noqa: BLE001 - a node still starting
        return False


@pytest.fixture
def secured_cluster(tmp_path):
    (tmp_path / "certs").mkdir()
    certs = make_certificates(tmp_path / "certs")
    controller_ports = {i: free_port() for i in (1, 2, 3)}
    sasl_ports = {i: free_port() for i in (1, 2, 3)}
    voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in controller_ports.items())
    nodes = {i: Broker(tmp_path / f"node{i}", free_port(),
                       extra_env=node_env(certs, sasl_ports[i]),
                       extra_args=["--node-id", str(i), "--controller-listen",
                                   f"127.0.0.1:{controller_ports[i]}", "--controllers", voters])
             for i in (1, 2, 3)}
    try:
        for b in nodes.values():
            b.launch()
        for b in nodes.values():
            wait_until(b._accepting, timeout=60, what=f"node on {b.bootstrap}")
        cluster = SecuredCluster(nodes, sasl_ports, controller_ports, certs)
        wait_until(lambda: all_registered(cluster), timeout=60, what="three brokers")
        yield cluster
    finally:
        for b in nodes.values():
            if b.alive():
                b.proc.kill()
                b.proc.wait(timeout=10)


def leaders(admin, topic):
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    return {p.id: (p.leader, sorted(p.isrs)) for p in meta.partitions.values()}


def create_spread_topic(cluster, topic, config=None):
    """`topic` with three partitions, replicated three times, led by three brokers."""
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, 3, 3, config=config or {})])[topic].result(30)
    wait_until(lambda: {l for l, _ in leaders(admin, topic).values()} == {1, 2, 3},
               timeout=30, what=f"{topic} led by every broker")


def test_followers_replicate_over_the_authenticated_inter_broker_listener(secured_cluster):
    cluster = secured_cluster
    # min.insync.replicas=3: an acks=all write is answered only once both followers fetched it,
    # which they do only logged in as `broker` (ANONYMOUS may not fetch as a replica).
    create_spread_topic(cluster, "replicated", {"min.insync.replicas": "3"})
    producer = Producer({**cluster.conf(), "acks": "all", "message.timeout.ms": 30000})
    failures = []
    for i in range(300):
        producer.produce("replicated", key=str(i).encode(), value=b"v" * 100,
                         on_delivery=lambda err, _m: err and failures.append(err))
    assert producer.flush(60) == 0 and not failures, failures
    admin = cluster.admin()
    assert all(isr == [1, 2, 3] for _, isr in leaders(admin, "replicated").values())
    consumer = Consumer({**cluster.conf(), "group.id": "c", "auto.offset.reset": "earliest"})
    consumer.subscribe(["replicated"])
    keys = set()

    def read_all():
        for m in consumer.consume(100, timeout=1):
            assert m.error() is None, m.error()
            keys.add(m.key())
        return len(keys) == 300

    wait_until(read_all, timeout=60, what="300 records")
    consumer.close()


def test_a_killed_broker_comes_back_in_sync_through_the_secured_doors(secured_cluster):
    # kill -9 of a follower: the others go on (min.insync.replicas=2); restarted, it must
    # rejoin the controllers over mutual TLS and fetch over SASL_SSL to be in sync again.
    cluster = secured_cluster
    create_spread_topic(cluster, "survives", {"min.insync.replicas": "2"})
    victim = cluster.nodes[3]
    victim.proc.kill()
    victim.proc.wait(timeout=10)
    producer = Producer({**cluster.conf(), "acks": "all", "message.timeout.ms": 60000})
    failures = []
    for i in range(200):
        producer.produce("survives", key=str(i).encode(), value=b"v",
                         on_delivery=lambda err, _m: err and failures.append(err))
    assert producer.flush(90) == 0 and not failures, failures
    victim.launch()
    admin = cluster.admin()
    wait_until(lambda: all(isr == [1, 2, 3] for _, isr in leaders(admin, "survives").values()),
               timeout=90, what="the restarted broker back in every in-sync set")


def test_a_transaction_across_every_broker_commits(secured_cluster):
    cluster = secured_cluster
    create_spread_topic(cluster, "txn-spread")
    producer = Producer({**cluster.conf(), "transactional.id": f"t-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for partition in range(3):
        producer.produce("txn-spread", value=f"p{partition}".encode(), partition=partition)
    # The markers go from the coordinator to each partition's leader over the inter-broker
    # listener, as `broker`.
    producer.commit_transaction(30)
    consumer = Consumer({**cluster.conf(), "group.id": "txn-reader",
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    consumer.subscribe(["txn-spread"])
    values = set()

    def read():
        for m in consumer.consume(10, timeout=1):
            if m.error() is None:
                values.add(m.value())
        return values == {b"p0", b"p1", b"p2"}

    wait_until(read, timeout=60, what="the committed records")
    consumer.close()


def basic(who):
    token = base64.b64encode(f"{who[0]}:{who[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def http_call(node, method, path, body, who):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{node.http}{path}", data=data, method=method,
                                 headers=basic(who))
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def http_produce(node, topic, partition, who):
    body = {"records": [{"value": "v", "partition": partition}]}
    return http_call(node, "POST", f"/v1/topics/{topic}/records", body, who)


def test_an_http_caller_acts_as_itself_on_every_broker(secured_cluster):
    cluster = secured_cluster
    create_spread_topic(cluster, "orders-http")
    create_spread_topic(cluster, "payments-http")
    admin = cluster.admin()
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(ALICE[0], info, ALICE[1].encode())])[ALICE[0]].result(15)
    grant = AclBinding(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, "User:alice",
                       "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    for future in admin.create_acls([grant]).values():
        future.result(15)
    node = cluster.nodes[1]

    def written_everywhere():
        return all(http_produce(node, "orders-http", p, ALICE)[0] == 200 for p in range(3))

    # The user and ACL reach every broker through the metadata log.
    wait_until(written_everywhere, timeout=30, what="alice's writes to every leader")
    for partition in range(3):
        status, body = http_produce(node, "payments-http", partition, ALICE)
        assert status == 403 and body["error_code"] == "TOPIC_AUTHORIZATION_FAILED", body
        status, body = http_produce(node, "payments-http", partition, ADMIN)
        assert status == 200, body


def test_the_controller_listener_speaks_only_mutual_tls(secured_cluster):
    cluster = secured_cluster
    port = cluster.controller_ports[1]
    # Plain bytes (a frame of the controllers' own protocol) get no answer but a TLS alert
    # (0x15) and the end of the connection.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x00\x00\x00\x04ping")
        try:
            answer = s.recv(64)
        except ConnectionResetError:
            answer = b""
        assert answer == b"" or answer[0] == 0x15, answer
    ca = str(cluster.certs / "ca.pem")
    # TLS without a client certificate is refused.
    anonymous = ssl.create_default_context(cafile=ca)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with anonymous.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"\x00\x00\x00\x04ping")
                assert tls.recv(64) != b"", "answered without a client certificate"
    # A certificate from a CA the controllers do not trust is refused too.
    rogue = ssl.create_default_context(cafile=ca)
    rogue.load_cert_chain(str(cluster.certs / "rogue.pem"), str(cluster.certs / "rogue.key"))
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with rogue.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"\x00\x00\x00\x04ping")
                assert tls.recv(64) != b"", "answered a rogue certificate"


def test_settings_that_cannot_work_stop_the_start(tmp_path):
    (tmp_path / "certs").mkdir()
    certs = make_certificates(tmp_path / "certs")
    base = node_env(certs, free_port())
    for change, says in [
        ({"SLUICE_INTER_BROKER_LISTENER_NAME": "SSL"}, "names no listener"),
        ({"SLUICE_INTER_BROKER_SASL_PASSWORD": None}, "inter_broker_sasl_password"),
        ({"SLUICE_SASL_MECHANISM_INTER_BROKER_PROTOCOL": "PLAIN"},
         "not in sasl_enabled_mechanisms"),
        ({"SLUICE_CONTROLLER_LISTENER_SECURITY_PROTOCOL": "SASL_SSL"}, "PLAINTEXT or SSL"),
    ]:
        env = {k: v for k, v in {**base, **change}.items() if v is not None}
        b = Broker(tmp_path / f"bad-{len(says)}", free_port(), extra_env=env)
        b.launch()
        assert b.proc.wait(timeout=30) != 0, change
        assert says in b.log(), (change, b.log()[-2000:])


def test_views_fold_partitions_led_by_every_broker(secured_cluster):
    cluster = secured_cluster
    create_spread_topic(cluster, "payments-v")
    producer = Producer(cluster.conf())
    for i in range(90):
        producer.produce("payments-v", key=f"acct-{i % 3}".encode(), partition=i % 3,
                         value=json.dumps({"account": f"acct-{i % 3}", "amount": 1}).encode())
    assert producer.flush(30) == 0
    node = cluster.nodes[1]
    view = ("CREATE MATERIALIZED VIEW spend AS SELECT account, COUNT(*) AS payments "
            "FROM \"payments-v\" GROUP BY account")
    status, body = http_call(node, "POST", "/v1/sql", {"sql": view}, ADMIN)
    assert status == 200, body

    def folded():
        rows = [http_call(node, "GET", f"/v1/views/spend/keys/acct-{a}", None, ADMIN)
                for a in range(3)]
        return all(s == 200 and (b.get("row") or {}).get("payments") == 30 for s, b in rows)

    # The view's node reads the partitions the other brokers lead as the `broker` user.
    wait_until(folded, timeout=60, what="30 payments per account, from every partition")


def test_a_view_worker_reaches_a_sasl_ssl_broker(tmp_path, start_broker):
    (tmp_path / "certs").mkdir()
    certs = make_certificates(tmp_path / "certs")
    port = free_port()
    env = node_env(certs, port)
    for key in ("SLUICE_INTER_BROKER_LISTENER_NAME", "SLUICE_INTER_BROKER_SASL_USERNAME",
                "SLUICE_INTER_BROKER_SASL_PASSWORD", "SLUICE_CONTROLLER_LISTENER_SECURITY_PROTOCOL",
                "SLUICE_HTTP_AUTH"):
        env.pop(key)
    broker = start_broker({**env, "SLUICE_VIEWS": "off"})
    wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True,
               timeout=30, what="the SASL_SSL listener")
    conf = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(certs / "ca.pem"), "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": ADMIN[0], "sasl.password": ADMIN[1]}
    admin = AdminClient(conf)
    admin.create_topics([NewTopic("clicks", 1, 1)])["clicks"].result(30)
    producer = Producer(conf)
    for i in range(10):
        producer.produce("clicks", key=b"page", value=json.dumps({"page": "home"}).encode())
    assert producer.flush(30) == 0
    http_port = free_port()
    worker = subprocess.Popen(
        [str(SLUICE_BIN), "view", "worker", "--brokers", f"127.0.0.1:{port}",
         "--tls-ca", str(certs / "ca.pem"), "--user", ADMIN[0], "--password", ADMIN[1],
         "--http-listen", f"127.0.0.1:{http_port}", "--data-dir", str(tmp_path / "worker")],
        stdout=open(tmp_path / "worker.log", "ab"), stderr=subprocess.STDOUT)
    try:
        class Node:
            http = f"http://127.0.0.1:{http_port}"

        def sql_answers():
            try:
                view = ("CREATE MATERIALIZED VIEW hits AS SELECT page, COUNT(*) AS n "
                        "FROM clicks GROUP BY page")
                return http_call(Node, "POST", "/v1/sql", {"sql": view}, ADMIN)[0] == 200
            except OSError:
                return False

        wait_until(sql_answers, timeout=60, what="the worker's view made through SASL_SSL")

        def counted():
            status, body = http_call(Node, "GET", "/v1/views/hits/keys/home", None, ADMIN)
            return status == 200 and (body.get("row") or {}).get("n") == 10

        wait_until(counted, timeout=60, what="ten clicks folded by the worker")
    finally:
        worker.kill()
        worker.wait(timeout=10)
    assert broker.alive()
