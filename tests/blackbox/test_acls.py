"""ACLs (issue 15, docs/security.md): Kafka's ACL admin API (CreateAcls, DescribeAcls,
DeleteAcls) over ACLs kept in the metadata log, enforced with the principal of a SASL login:
a producer allowed on `orders-` by prefix writes `orders-eu` and is refused `payments`; a
consumer without READ on its group is refused; Metadata leaves out what the principal may not
describe; a deny beats an allow; only a principal with the cluster's ALTER manages ACLs and
users; ACLs survive a restart; each refusal is an audit line and a metric."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from conftest import free_port, wait_until
from test_sasl import counter
from test_tls import _listening

ADMIN = ("admin", "admin-secret")
ALICE = ("alice", "alice-secret")
BOB = ("bob", "bob-secret")


@pytest.fixture
def secured(start_broker):
    """A broker enforcing ACLs on a SASL_PLAINTEXT listener: `admin` a super user, `alice` and
    `bob` users with no rights, topics `orders-eu`, `orders-secret` and `payments`."""
    port = free_port()
    broker = start_broker({
        "SLUICE_LISTENERS": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "SLUICE_SASL_ENABLED_MECHANISMS": "SCRAM-SHA-512",
        "SLUICE_SASL_BOOTSTRAP_SCRAM": f'SCRAM-SHA-512=[name=admin,password="{ADMIN[1]}"]',
        "SLUICE_AUTHORIZER_CLASS_NAME": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "SLUICE_SUPER_USERS": "User:admin",
    })
    broker.sasl_port = port
    wait_until(lambda: _listening(port), what="the SASL listener")
    admin = AdminClient(conf(broker, ADMIN))
    for user, password in (ALICE, BOB):
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        upsert = UserScramCredentialUpsertion(user, info, password.encode())
        admin.alter_user_scram_credentials([upsert])[user].result(15)
    topics = [NewTopic(t, 1, 1) for t in ("orders-eu", "orders-secret", "payments")]
    for future in admin.create_topics(topics).values():
        future.result(15)
    broker.admin = admin
    return broker


def conf(broker, who):
    user, password = who
    return {"bootstrap.servers": f"127.0.0.1:{broker.sasl_port}",
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user, "sasl.password": password}


def acl(resource_type, name, pattern, principal, operation, permission=AclPermissionType.ALLOW):
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


def grant(broker, *bindings):
    for future in broker.admin.create_acls(list(bindings)).values():
        future.result(15)


def produce_one(broker, who, topic):
    """The delivery error of one record, or None."""
    p = Producer({**conf(broker, who), "message.timeout.ms": 10000})
    outcome = []
    p.produce(topic, value=b"x", on_delivery=lambda err, msg: outcome.append(err))
    p.flush(15)
    assert outcome, "no delivery report"
    return outcome[0]


def test_a_prefix_acl_lets_a_producer_write_orders_and_not_payments(secured):
    grant(secured, acl(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, "User:alice",
                       AclOperation.WRITE))
    assert produce_one(secured, ALICE, "orders-eu") is None
    refused = produce_one(secured, ALICE, "payments")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused
    # librdkafka asks Metadata first: the topic is refused there (DESCRIBE).
    assert counter(secured, "sluice_authorization_denied_total", operation="Describe",
                   resource_type="Topic") >= 1
    log = secured.log()
    assert 'event="authorization_denied"' in log or "event=authorization_denied" in log
    assert "principal=User:alice" in log and 'resource_name="payments"' in log, log[-2000:]


def test_a_deny_beats_an_allow(secured):
    grant(secured,
          acl(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, "User:alice",
              AclOperation.WRITE),
          acl(ResourceType.TOPIC, "orders-secret", ResourcePatternType.LITERAL, "User:alice",
              AclOperation.WRITE, AclPermissionType.DENY))
    assert produce_one(secured, ALICE, "orders-eu") is None
    refused = produce_one(secured, ALICE, "orders-secret")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_metadata_shows_only_what_the_principal_may_describe(secured):
    grant(secured, acl(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, "User:alice",
                       AclOperation.WRITE))
    alice = AdminClient(conf(secured, ALICE))
    seen = set(alice.list_topics(timeout=10).topics)
    assert seen == {"orders-eu", "orders-secret"}, seen
    named = alice.list_topics("payments", timeout=10).topics["payments"]
    assert named.error is not None and named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    everything = set(secured.admin.list_topics(timeout=10).topics)
    assert {"orders-eu", "orders-secret", "payments"} <= everything, "a super user sees all"
    bob = AdminClient(conf(secured, BOB))
    assert not set(bob.list_topics(timeout=10).topics) & everything


def consume_error(broker, who, topic, group):
    c = Consumer({**conf(broker, who), "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            return m.error()
        raise AssertionError("neither a record nor an error")
    finally:
        c.close()


def test_a_consumer_needs_read_on_its_group(secured):
    assert produce_one(secured, ADMIN, "orders-eu") is None
    grant(secured, acl(ResourceType.TOPIC, "orders-eu", ResourcePatternType.LITERAL, "User:bob",
                       AclOperation.READ))
    refused = consume_error(secured, BOB, "orders-eu", "bobs-group")
    assert refused is not None and refused.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, refused
    grant(secured, acl(ResourceType.GROUP, "bobs-", ResourcePatternType.PREFIXED, "User:bob",
                       AclOperation.READ))
    assert consume_error(secured, BOB, "orders-eu", "bobs-group") is None
    # The group is listed for bob now (READ implies DESCRIBE), and not for alice.
    bob = AdminClient(conf(secured, BOB))
    listed = [g.group_id for g in bob.list_consumer_groups().result(15).valid]
    assert listed == ["bobs-group"], listed
    alice = AdminClient(conf(secured, ALICE))
    assert alice.list_consumer_groups().result(15).valid == []


def test_only_the_clusters_alter_right_manages_acls_and_users(secured):
    alice = AdminClient(conf(secured, ALICE))
    binding = acl(ResourceType.TOPIC, "payments", ResourcePatternType.LITERAL, "User:alice",
                  AclOperation.ALL)
    with pytest.raises(KafkaException) as refused:
        alice.create_acls([binding])[binding].result(15)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    upsert = UserScramCredentialUpsertion(
        "mallory", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"x")
    with pytest.raises(KafkaException) as refused:
        alice.alter_user_scram_credentials([upsert])["mallory"].result(15)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    grant(secured, binding)
    # DescribeAcls answers CLUSTER_AUTHORIZATION_FAILED, which librdkafka reports as no ACLs.
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    assert alice.describe_acls(everything).result(15) == []
    assert secured.admin.describe_acls(everything).result(15) == [binding]
    assert "resource_type=Cluster" in secured.log().split("User:alice")[-1]
    with pytest.raises(KafkaException) as refused:
        alice.create_topics([NewTopic("alices-topic", 1, 1)])["alices-topic"].result(15)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_acls_are_described_deleted_and_survive_a_kill_9(secured):
    prefixed = acl(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED, "User:alice",
                   AclOperation.WRITE)
    group = acl(ResourceType.GROUP, "g", ResourcePatternType.LITERAL, "User:bob",
                AclOperation.READ)
    grant(secured, prefixed, group)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    assert sorted(map(str, secured.admin.describe_acls(everything).result(15))) == sorted(
        map(str, [prefixed, group]))
    match = AclBindingFilter(ResourceType.TOPIC, "orders-eu", ResourcePatternType.MATCH, None,
                             None, AclOperation.ANY, AclPermissionType.ANY)
    assert secured.admin.describe_acls(match).result(15) == [prefixed]

    secured.kill()  # kill -9: what the ACLs live in must be durable at their answer
    secured.start()
    wait_until(lambda: _listening(secured.sasl_port), what="the SASL listener")
    assert produce_one(secured, ALICE, "orders-eu") is None
    assert produce_one(secured, ALICE, "payments").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    admin = AdminClient(conf(secured, ADMIN))
    bob_only = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:bob", None,
                                AclOperation.ANY, AclPermissionType.ANY)
    deleted = admin.delete_acls([bob_only])[bob_only].result(15)
    assert deleted == [group]
    assert admin.describe_acls(everything).result(15) == [prefixed]


def test_acls_reach_every_broker_of_a_cluster(tmp_path):
    from test_cluster import running_cluster
    sasl_ports = {i: free_port() for i in (1, 2, 3)}

    def node_env(i):
        return {
            "SLUICE_LISTENERS": f"SASL_PLAINTEXT://127.0.0.1:{sasl_ports[i]}",
            "SLUICE_SASL_ENABLED_MECHANISMS": "SCRAM-SHA-512",
            "SLUICE_SASL_BOOTSTRAP_SCRAM": f'SCRAM-SHA-512=[name=admin,password="{ADMIN[1]}"]',
            "SLUICE_AUTHORIZER_CLASS_NAME": "StandardAuthorizer",
            # Brokers reach each other over PLAINTEXT, as User:ANONYMOUS.
            "SLUICE_SUPER_USERS": "User:admin;User:ANONYMOUS",
        }

    with running_cluster(tmp_path, 3, 3000, node_env) as nodes:
        for i, b in nodes.items():
            b.sasl_port = sasl_ports[i]
            wait_until(lambda b=b: _listening(b.sasl_port), what="the SASL listener")
        first = nodes[1]
        admin = AdminClient(conf(first, ADMIN))
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        upsert = UserScramCredentialUpsertion("alice", info, ALICE[1].encode())
        admin.alter_user_scram_credentials([upsert])["alice"].result(15)
        for future in admin.create_topics([NewTopic(t, 3, 3) for t in ("orders-eu", "payments")],
                                          operation_timeout=30).values():
            future.result(30)
        first.admin = admin
        grant(first, acl(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED,
                         "User:alice", AclOperation.WRITE))

        def alice_sees_only_orders(b):
            try:
                topics = AdminClient(conf(b, ALICE)).list_topics(timeout=5).topics
            except KafkaException:
                return False
            return set(topics) == {"orders-eu"}

        for b in nodes.values():
            wait_until(lambda b=b: alice_sees_only_orders(b), timeout=30,
                       what=f"broker {b.bootstrap} applying the ACL")
        for b in nodes.values():
            assert produce_one(b, ALICE, "orders-eu") is None
            refused = produce_one(b, ALICE, "payments")
            assert refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_client_certificates_subject_is_its_principal(tmp_path, start_broker):
    from test_tls import make_certificates, ssl_conf
    certs = make_certificates(tmp_path)
    ssl_port = free_port()
    broker = start_broker({
        "SLUICE_LISTENERS": f"SSL://127.0.0.1:{ssl_port}",
        "SLUICE_SSL_KEYSTORE_LOCATION": str(certs / "keystore.pem"),
        "SLUICE_SSL_TRUSTSTORE_LOCATION": str(certs / "ca.pem"),
        "SLUICE_SSL_CLIENT_AUTH": "required",
        "SLUICE_AUTHORIZER_CLASS_NAME": "StandardAuthorizer",
        # The PLAINTEXT listener (loopback) administers: User:ANONYMOUS.
        "SLUICE_SUPER_USERS": "User:ANONYMOUS",
    })
    broker.ssl_bootstrap, broker.certs = f"127.0.0.1:{ssl_port}", certs
    wait_until(lambda: _listening(ssl_port), what="the SSL listener")
    plain = AdminClient({"bootstrap.servers": broker.bootstrap})
    plain.create_topics([NewTopic("certified", 1, 1)])["certified"].result(15)

    def produce_with_certificate():
        p = Producer({**ssl_conf(broker, client_cert="client"), "message.timeout.ms": 10000})
        outcome = []
        p.produce("certified", value=b"x", on_delivery=lambda err, msg: outcome.append(err))
        p.flush(15)
        return outcome[0]

    refused = produce_with_certificate()
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert "principal=User:CN=client" in broker.log()
    binding = acl(ResourceType.TOPIC, "certified", ResourcePatternType.LITERAL,
                  "User:CN=client", AclOperation.WRITE)
    plain.create_acls([binding])[binding].result(15)
    assert produce_with_certificate() is None
