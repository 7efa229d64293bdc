"""The HTTP API's authentication and TLS (issue 15, docs/security.md, "The HTTP API"): with
`--http-auth basic,bearer` a request needs HTTP Basic credentials (checked against the SCRAM
users) or a bearer token (a JWT, checked as OAUTHBEARER's), and acts as that principal, so the
broker's ACLs decide what it may do; with `--http-tls` and `--http-auth mtls` a client
certificate is the principal. Health probes stay open; tables and views need ALTER on the
cluster."""

import base64
import json
import ssl
import urllib.error
import urllib.request

import pytest
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, NewTopic, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from conftest import free_port, wait_until
from test_oauthbearer import SigningKey, write_jwks
from test_tls import _listening, make_certificates, second_keystore

ADMIN = ("admin", "admin-secret")
ALICE = ("alice", "alice-secret")


def basic(who):
    user, password = who
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def call(url, method="GET", body=None, headers=None, context=None):
    """(status, JSON body or None, headers)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None), r.headers
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None), e.headers


@pytest.fixture
def secured_http(tmp_path, start_broker):
    """`start(extra_env)`: a broker enforcing ACLs (admin a super user) with a SASL listener
    for the admin client, its HTTP API authenticating with Basic and bearer tokens; alice may
    write and read `orders-` topics; topics orders-eu and payments."""
    key = SigningKey(tmp_path, "k1")
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, key)

    def start(extra_env=None):
        port = free_port()
        broker = start_broker({
            "SLUICE_LISTENERS": f"SASL_PLAINTEXT://127.0.0.1:{port}",
            "SLUICE_SASL_ENABLED_MECHANISMS": "SCRAM-SHA-512",
            "SLUICE_SASL_BOOTSTRAP_SCRAM": f'SCRAM-SHA-512=[name=admin,password="{ADMIN[1]}"]',
            "SLUICE_AUTHORIZER_CLASS_NAME": "StandardAuthorizer",
            "SLUICE_SUPER_USERS": "User:admin",
            "SLUICE_SASL_OAUTHBEARER_JWKS_ENDPOINT_URL": str(jwks),
            "SLUICE_HTTP_AUTH": "basic,bearer",
            **(extra_env or {}),
        })
        wait_until(lambda: _listening(port), what="the SASL listener")
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}",
                             "security.protocol": "SASL_PLAINTEXT",
                             "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": ADMIN[0],
                             "sasl.password": ADMIN[1]})
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(ALICE[0], info, ALICE[1].encode())])[ALICE[0]].result(15)
        for future in admin.create_topics([NewTopic(t, 1, 1)
                                           for t in ("orders-eu", "payments")]).values():
            future.result(15)
        grants = [AclBinding(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED,
                             principal, "*", operation, AclPermissionType.ALLOW)
                  for principal in ("User:alice", "User:CN=client")
                  for operation in (AclOperation.WRITE, AclOperation.READ)]
        grants.append(AclBinding(ResourceType.GROUP, "alice-", ResourcePatternType.PREFIXED,
                                 "User:alice", "*", AclOperation.READ,
                                 AclPermissionType.ALLOW))
        for future in admin.create_acls(grants).values():
            future.result(15)
        broker.key = key
        broker.sasl_bootstrap = f"127.0.0.1:{port}"
        return broker

    return start


def produce(url, topic, headers=None, context=None):
    return call(f"{url}/v1/topics/{topic}/records", "POST",
                {"records": [{"key": "k", "value": "v"}]}, headers, context)


def test_basic_credentials_act_as_the_user_and_acls_decide(secured_http):
    broker = secured_http()
    url = broker.http
    assert call(f"{url}/healthz")[0] == 200, "probes need no credentials"
    status, body, headers = call(f"{url}/v1/topics")
    assert status == 401 and "Basic" in headers["WWW-Authenticate"], (status, body)
    assert call(f"{url}/v1/topics", headers=basic(("alice", "wrong")))[0] == 401
    assert call(f"{url}/v1/topics", headers=basic(("nobody", "x")))[0] == 401

    status, body, _ = produce(url, "orders-eu", basic(ALICE))
    assert status == 200, body
    status, body, _ = produce(url, "payments", basic(ALICE))
    assert status == 403 and body["error_code"] == "TOPIC_AUTHORIZATION_FAILED", (status, body)
    status, body, _ = produce(url, "payments", basic(ADMIN))
    assert status == 200, body

    # Listing shows what the principal may describe.
    status, body, _ = call(f"{url}/v1/topics", headers=basic(ALICE))
    names = {t["name"] for t in body["topics"]}
    assert status == 200 and "orders-eu" in names and "payments" not in names, body
    status, body, _ = call(f"{url}/v1/topics/orders-eu/partitions/0/records?offset=0",
                           headers=basic(ALICE))
    assert status == 200, body

    # Tables and views are the cluster's: ALTER on it is needed.
    sql = {"sql": "SELECT 1"}
    status, body, _ = call(f"{url}/v1/sql", "POST", sql, basic(ALICE))
    assert status == 403, (status, body)
    status, _, _ = call(f"{url}/v1/sql", "POST", sql, basic(ADMIN))
    assert status != 403


def test_a_member_made_over_http_is_reached_only_by_its_maker(secured_http):
    broker = secured_http()
    url = broker.http
    group = f"{url}/v1/groups/alice-readers/members"
    status, body, _ = call(group, "POST", {"topic": "orders-eu", "from": "earliest"},
                           basic(ALICE))
    assert status == 201, (status, body)
    member = body["member_id"]
    status, body, _ = call(f"{group}/{member}/records", headers=basic(ADMIN))
    assert status == 404, "another principal holding the id does not reach the member"
    status, body, _ = call(f"{group}/{member}/records", headers=basic(ALICE))
    assert status == 200, (status, body)
    # Without READ on the group, joining is refused by the broker's ACLs.
    status, body, _ = call(f"{url}/v1/groups/other/members", "POST",
                           {"topic": "orders-eu"}, basic(ALICE))
    assert status == 403 and body["error_code"] == "GROUP_AUTHORIZATION_FAILED", (status, body)


def test_a_bearer_token_acts_as_its_subject(secured_http):
    broker = secured_http()
    token = {"Authorization": f"Bearer {broker.key.token('alice')}"}
    assert produce(broker.http, "orders-eu", token)[0] == 200
    assert produce(broker.http, "payments", token)[0] == 403
    forged = {"Authorization": "Bearer not-a-token"}
    assert produce(broker.http, "orders-eu", forged)[0] == 401


def test_https_takes_a_client_certificate_as_the_principal(tmp_path, secured_http):
    (tmp_path / "certs").mkdir()
    certs = make_certificates(tmp_path / "certs")
    broker = secured_http({
        "SLUICE_HTTP_TLS": "true",
        "SLUICE_HTTP_AUTH": "mtls,basic",
        "SLUICE_SSL_KEYSTORE_LOCATION": str(certs / "keystore.pem"),
        "SLUICE_SSL_TRUSTSTORE_LOCATION": str(certs / "ca.pem"),
    })
    url = f"https://127.0.0.1:{broker.http_port}"
    with_cert = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with_cert.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    without_cert = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    assert produce(url, "orders-eu", context=with_cert)[0] == 200
    status, body, _ = produce(url, "payments", context=with_cert)
    assert status == 403, (status, body)
    assert produce(url, "orders-eu", context=without_cert)[0] == 401
    assert produce(url, "orders-eu", basic(ALICE), context=without_cert)[0] == 200
    # Plain HTTP is not served on a TLS port.
    with pytest.raises(Exception):
        urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/healthz", timeout=5)


def test_https_certificates_are_read_again_on_sighup(tmp_path, start_broker):
    import os
    import signal
    (tmp_path / "certs").mkdir()
    d = make_certificates(tmp_path / "certs")
    broker = start_broker({
        "SLUICE_HTTP_TLS": "true",
        "SLUICE_HTTP_AUTH": "none",
        "SLUICE_SSL_KEYSTORE_LOCATION": str(d / "keystore.pem"),
    })
    second = second_keystore(d)
    url = f"https://127.0.0.1:{broker.http_port}/healthz"

    def trusted_by(ca):
        try:
            with urllib.request.urlopen(url, timeout=5,
                                        context=ssl.create_default_context(cafile=str(d / ca))):
                return True
        except (ssl.SSLError, urllib.error.URLError):
            return False

    assert trusted_by("ca.pem") and not trusted_by("rogue-ca.pem")
    (d / "keystore.new").write_text(second)
    os.replace(d / "keystore.new", d / "keystore.pem")
    broker.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: trusted_by("rogue-ca.pem"), timeout=20, what="the new HTTPS certificate")
    assert not trusted_by("ca.pem")


def test_users_and_acls_are_managed_over_http_as_the_caller(secured_http):
    """`/v1/users` and `/v1/acls` are the CLI's requests: the broker checks the caller's
    rights on the cluster, an independent admin client sees what they did, a new user logs in
    at once and a deleted one is refused at once (the cached password check is dropped)."""
    broker = secured_http()
    url = broker.http
    bob = ("bob", "bob-secret")
    admin = AdminClient({"bootstrap.servers": broker.sasl_bootstrap,
                         "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": ADMIN[0],
                         "sasl.password": ADMIN[1]})

    for method, path, body in (("GET", "/v1/users", None), ("GET", "/v1/acls", None),
                               ("PUT", "/v1/users/bob", {"password": "x"}),
                               ("POST", "/v1/acls", {"acls": [{
                                   "principal": "User:alice", "resource_type": "cluster",
                                   "operation": "alter"}]})):
        status, answer, _ = call(f"{url}{path}", method, body, basic(ALICE))
        assert status == 403 and answer["error_code"] == "CLUSTER_AUTHORIZATION_FAILED", \
            (path, status, answer)

    status, answer, _ = call(f"{url}/v1/users/bob", "PUT", {"password": bob[1]}, basic(ADMIN))
    assert status == 200 and answer == {"user": "bob", "mechanism": "SCRAM-SHA-512",
                                        "iterations": 4096}, answer
    status, answer, _ = call(f"{url}/v1/users", headers=basic(ADMIN))
    users = {u["user"]: u["mechanisms"] for u in answer["users"]}
    assert users["bob"] == [{"mechanism": "SCRAM-SHA-512", "iterations": 4096}], answer
    assert "alice" in users and "admin" in users
    described = admin.describe_user_scram_credentials(["bob"])["bob"].result(15)
    assert [c.iterations for c in described.scram_credential_infos] == [4096]
    status, answer, _ = call(f"{url}/v1/users/bob", "PUT",
                             {"password": "y", "mechanism": "PLAIN"}, basic(ADMIN))
    assert status == 400 and "SCRAM-SHA-512 or SCRAM-SHA-256" in answer["message"], answer
    for iterations in (100, 2**31 - 1):  # checked before the password is salted
        status, answer, _ = call(f"{url}/v1/users/bob", "PUT",
                                 {"password": "y", "iterations": iterations}, basic(ADMIN))
        assert status == 400 and answer["error_code"] == "UNACCEPTABLE_CREDENTIAL", answer

    # bob logs in over HTTP at once, and sees no topic until an ACL lets him.
    status, answer, _ = call(f"{url}/v1/topics", headers=basic(bob))
    assert status == 200 and "orders-eu" not in {t["name"] for t in answer["topics"]}, answer
    status, answer, _ = call(f"{url}/v1/acls", "POST", {"acls": [
        {"principal": "User:bob", "resource_type": "TOPIC", "resource_name": "orders-eu",
         "operation": "describe"},
        {"principal": "User:bob", "resource_type": "transactional-id",
         "resource_name": "bob-", "pattern_type": "prefixed", "operation": "write",
         "host": "10.0.0.7"}]}, basic(ADMIN))
    assert status == 201 and answer == {"added": 2}, answer
    wait_until(lambda: "orders-eu" in {
        t["name"] for t in call(f"{url}/v1/topics", headers=basic(bob))[1]["topics"]},
        what="bob seeing orders-eu")
    status, answer, _ = call(f"{url}/v1/acls?principal=User:bob", headers=basic(ADMIN))
    assert answer["acls"] == [
        {"principal": "User:bob", "host": "*", "resource_type": "topic",
         "resource_name": "orders-eu", "pattern_type": "literal", "operation": "describe",
         "permission": "allow"},
        {"principal": "User:bob", "host": "10.0.0.7", "resource_type": "transactional-id",
         "resource_name": "bob-", "pattern_type": "prefixed", "operation": "write",
         "permission": "allow"}], answer
    # The ACLs confluent-kafka's admin made appear by name too, and a filter selects.
    status, answer, _ = call(f"{url}/v1/acls?principal=User:alice&resource_type=group",
                             headers=basic(ADMIN))
    assert [(a["resource_name"], a["pattern_type"], a["operation"]) for a in answer["acls"]] \
        == [("alice-", "prefixed", "read")], answer
    status, answer, _ = call(f"{url}/v1/acls?resource_type=topic&resource_name=orders-us"
                             "&pattern_type=match", headers=basic(ADMIN))
    assert {a["principal"] for a in answer["acls"]} == {"User:alice", "User:CN=client"}, answer
    found = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, "User:bob", None, AclOperation.ANY,
        AclPermissionType.ANY)).result(15)
    assert sorted((b.name, b.host) for b in found) == [("bob-", "10.0.0.7"), ("orders-eu", "*")]

    # Nothing is added when one ACL cannot be read; a filter naming nothing removes nothing.
    status, answer, _ = call(f"{url}/v1/acls", "POST", {"acls": [
        {"principal": "User:bob", "resource_type": "topic", "resource_name": "x",
         "operation": "read"},
        {"principal": "User:bob", "resource_type": "topic", "resource_name": "y",
         "operation": "fly"}]}, basic(ADMIN))
    assert status == 400 and "idempotent_write" in answer["message"], answer
    status, answer, _ = call(f"{url}/v1/acls", "DELETE", headers=basic(ADMIN))
    assert status == 400, answer
    # As Kafka's, a filter's host * selects the ACLs for any host only.
    status, answer, _ = call(f"{url}/v1/acls?principal=User:bob&host=*", "DELETE",
                             headers=basic(ADMIN))
    assert status == 200 and answer == {"removed": 1}, answer
    status, answer, _ = call(f"{url}/v1/acls?principal=User:bob", headers=basic(ADMIN))
    assert [a["resource_name"] for a in answer["acls"]] == ["bob-"], answer

    status, answer, _ = call(f"{url}/v1/users/bob", "DELETE", headers=basic(ADMIN))
    assert status == 200 and answer == {"user": "bob", "deleted": ["SCRAM-SHA-512"]}, answer
    status, answer, _ = call(f"{url}/v1/topics", headers=basic(bob))
    assert status == 401, "a deleted user's cached password no longer passes"
    status, answer, _ = call(f"{url}/v1/users/bob", "DELETE", headers=basic(ADMIN))
    assert status == 404 and answer["error_code"] == "RESOURCE_NOT_FOUND", answer
    # The console's pages are the same requests: alice is refused the users page.
    request = urllib.request.Request(f"{url}/ui/users", headers=basic(ALICE))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    assert "CLUSTER_AUTHORIZATION_FAILED" in refused.value.read().decode()
