"""OAUTHBEARER (issue 15, docs/security.md): JWTs the test signs itself (RS256, with an RSA key
made by openssl) checked against a JWKS file, an issuer and an audience; the token's `sub` is
the principal ACLs are checked against; unsecured, expired, foreign and misaddressed tokens are
refused; a rotated JWKS file is read again without a restart; the session ends with the token
(KIP-368); librdkafka, kafka-python and Sluice's own CLI log in with a token."""

import base64
import json
import os
import re
import struct
import subprocess
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic, ResourcePatternType, ResourceType)
from kafka import KafkaConsumer, KafkaProducer
from kafka.net.sasl.oauth import AbstractTokenProvider

from conftest import SLUICE_BIN, free_port, wait_until
from helpers import read_kafka_python
from test_sasl import authenticate, handshake, metadata_answers, refused, sasl_socket
from test_tls import _listening, make_certificates, openssl, round_trip

ISSUER = "https://idp.example"
AUDIENCE = "sluice"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SigningKey:
    """An RSA key made by openssl, its JWK, and tokens it signs (RS256)."""

    def __init__(self, directory, kid, name=None):
        self.kid, self.path = kid, directory / f"{name or kid}.key"
        openssl("genrsa", "-out", str(self.path), "2048", cwd=directory)
        out = subprocess.run(["openssl", "rsa", "-in", str(self.path), "-noout", "-modulus"],
                             capture_output=True, text=True, check=True).stdout
        modulus = bytes.fromhex(re.search(r"Modulus=([0-9A-F]+)", out).group(1))
        self.jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                    "n": b64url(modulus), "e": b64url((65537).to_bytes(3, "big"))}

    def sign(self, claims, header=None):
        header = header or {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        message = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.path)],
                                   input=message.encode(), capture_output=True,
                                   check=True).stdout
        return f"{message}.{b64url(signature)}"

    def token(self, subject, lifetime_s=3600, **overrides):
        now = int(time.time())
        claims = {"sub": subject, "iss": ISSUER, "aud": [AUDIENCE], "iat": now,
                  "exp": now + lifetime_s, **overrides}
        return self.sign(claims)


def write_jwks(path, *keys):
    # Written aside and renamed, so the broker never reads half a file.
    aside = path.with_suffix(".tmp")
    aside.write_text(json.dumps({"keys": [k.jwk for k in keys]}))
    os.replace(aside, path)


@pytest.fixture
def oauth_broker(tmp_path, start_broker):
    """A broker with SASL_SSL and SASL_PLAINTEXT listeners offering OAUTHBEARER (and SCRAM for
    its administrator), its JWKS at `jwks.json` holding the key `k1`, ACLs enforced."""
    certs = make_certificates(tmp_path)
    key = SigningKey(tmp_path, "k1")
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, key)

    def start(extra_env=None):
        sasl_port, sasl_ssl_port = free_port(), free_port()
        broker = start_broker({
            "SLUICE_LISTENERS": f"SASL_PLAINTEXT://127.0.0.1:{sasl_port},"
                                f"SASL_SSL://127.0.0.1:{sasl_ssl_port}",
            "SLUICE_SSL_KEYSTORE_LOCATION": str(certs / "keystore.pem"),
            "SLUICE_SASL_ENABLED_MECHANISMS": "OAUTHBEARER,SCRAM-SHA-512",
            "SLUICE_SASL_OAUTHBEARER_JWKS_ENDPOINT_URL": f"file://{jwks}",
            "SLUICE_SASL_OAUTHBEARER_EXPECTED_ISSUER": ISSUER,
            "SLUICE_SASL_OAUTHBEARER_EXPECTED_AUDIENCE": AUDIENCE,
            "SLUICE_AUTHORIZER_CLASS_NAME": "StandardAuthorizer",
            "SLUICE_SUPER_USERS": "User:admin-service",
            **(extra_env or {}),
        })
        broker.sasl_port, broker.sasl_ssl_port = sasl_port, sasl_ssl_port
        broker.certs, broker.key, broker.jwks, broker.dir = certs, key, jwks, tmp_path
        wait_until(lambda: _listening(sasl_ssl_port), what="the SASL_SSL listener")
        return broker

    return start


def oauth_conf(broker, token, tls=True, principal="x"):
    """librdkafka with a fixed token from `oauth_cb`: (token, expiry in s, principal)."""
    def oauth_cb(_config):
        return token, time.time() + 3600, principal
    conf = {"bootstrap.servers": f"127.0.0.1:{broker.sasl_ssl_port if tls else broker.sasl_port}",
            "security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb}
    if tls:
        conf["ssl.ca.location"] = str(broker.certs / "ca.pem")
    return conf


def test_librdkafka_logs_in_with_a_signed_token_whose_subject_is_the_principal(oauth_broker):
    broker = oauth_broker()
    admin_token = broker.key.token("admin-service")
    admin = round_trip(oauth_conf(broker, admin_token, principal="admin-service"), "oauth-topic")
    for topic in ("orders-eu", "payments"):
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    grant = AclBinding(ResourceType.TOPIC, "orders-", ResourcePatternType.PREFIXED,
                       "User:orders-service", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    admin.create_acls([grant])[grant].result(15)

    conf = oauth_conf(broker, broker.key.token("orders-service"), tls=False,
                      principal="orders-service")
    outcome = {}
    p = Producer({**conf, "message.timeout.ms": 10000})
    for topic in ("orders-eu", "payments"):
        p.produce(topic, value=b"x",
                  on_delivery=lambda err, msg, t=topic: outcome.__setitem__(t, err))
    p.flush(20)
    assert outcome["orders-eu"] is None, outcome
    assert outcome["payments"] is not None and outcome["payments"].name() == \
        "TOPIC_AUTHORIZATION_FAILED", outcome


def test_unsecured_expired_foreign_and_misaddressed_tokens_are_refused(oauth_broker):
    broker = oauth_broker()
    key = broker.key
    # The same kid, a key the JWKS does not hold.
    stranger = SigningKey(broker.dir, "k1", name="stranger")
    now = int(time.time())
    claims = {"sub": "admin-service", "iss": ISSUER, "aud": AUDIENCE, "iat": now,
              "exp": now + 600}
    none_header = b64url(json.dumps({"alg": "none"}).encode())
    unsecured = f"{none_header}.{b64url(json.dumps(claims).encode())}."
    tokens = {
        "unsecured": unsecured,
        "expired": key.token("a", iat=now - 7200, exp=now - 3600),
        "another key": stranger.token("admin-service"),
        "another issuer": key.token("a", iss="https://evil.example"),
        "another audience": key.token("a", aud=["payments"]),
        "not a JWT": "not-a-token",
    }
    for why, token in tokens.items():
        assert refused(oauth_conf(broker, token)), why
    assert 'mechanism="OAUTHBEARER"' in broker.log() or "mechanism=OAUTHBEARER" in broker.log()


def test_a_rotated_jwks_file_is_read_again_without_a_restart(oauth_broker):
    broker = oauth_broker()
    rotated = SigningKey(broker.dir, "k2")
    assert refused(oauth_conf(broker, rotated.token("admin-service")))
    write_jwks(broker.jwks, rotated)

    def accepted():
        admin = AdminClient(oauth_conf(broker, rotated.token("admin-service")))
        try:
            return len(admin.list_topics(timeout=3).brokers) == 1
        except Exception:  # refused until the file is read again
            return False
    wait_until(accepted, timeout=30, interval=0.5, what="the rotated key accepted")
    assert refused(oauth_conf(broker, broker.key.token("admin-service"))), \
        "the key taken out of the JWKS no longer verifies"
    # A broken file keeps the keys in service.
    broker.jwks.write_text("{not json")
    wait_until(lambda: "not read again" in broker.log(), timeout=30,
               what="the broker's check of the broken file")
    assert accepted()


def test_the_session_ends_with_the_token(oauth_broker):
    broker = oauth_broker({"SLUICE_CONNECTIONS_MAX_REAUTH_MS": "3600000"})
    s = sasl_socket(broker)
    assert handshake(s, "OAUTHBEARER")[0] == 0
    token = broker.key.token("admin-service", lifetime_s=20)
    message = f"n,,\x01auth=Bearer {token}\x01\x01".encode()
    error, auth_bytes, lifetime = authenticate(s, message)
    assert error == 0 and auth_bytes == b""
    assert 15_000 <= lifetime <= 20_000, "the token's remaining life, not connections_max_reauth_ms"
    assert metadata_answers(s)

    s = sasl_socket(broker)
    assert handshake(s, "OAUTHBEARER")[0] == 0
    wrong = f"n,a=someone-else,\x01auth=Bearer {token}\x01\x01".encode()
    error, _, _ = authenticate(s, wrong)
    assert error == 58, "an authorization id other than the token's subject"


def test_kafka_python_logs_in_with_a_token(oauth_broker):
    broker = oauth_broker()
    token = broker.key.token("admin-service")

    class Provider(AbstractTokenProvider):
        def token(self):
            return token

    common = {"bootstrap_servers": f"127.0.0.1:{broker.sasl_port}",
              "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER",
              "sasl_oauth_token_provider": Provider()}
    producer = KafkaProducer(**common)
    for i in range(10):
        producer.send("kp-oauth", value=b"m%d" % i)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer("kp-oauth", auto_offset_reset="earliest",
                             consumer_timeout_ms=15000, **common)
    got = [m.value for m in read_kafka_python(consumer, 10)]
    consumer.close()
    assert got == [b"m%d" % i for i in range(10)]


def test_the_cli_logs_in_with_a_token(oauth_broker):
    broker = oauth_broker()
    flags = ["--brokers", f"127.0.0.1:{broker.sasl_ssl_port}",
             "--tls-ca", str(broker.certs / "ca.pem"), "--sasl-mechanism", "OAUTHBEARER",
             "--timeout", "10"]

    def run(token, *args):
        env = {**os.environ, "SLUICE_PASSWORD": token}
        return subprocess.run([str(SLUICE_BIN), *args, *flags], capture_output=True, text=True,
                              timeout=60, env=env)

    created = run(broker.key.token("admin-service"), "topic", "create", "cli-oauth")
    assert created.returncode == 0, created.stderr
    listed = run(broker.key.token("admin-service"), "topic", "list")
    assert listed.returncode == 0 and "cli-oauth" in listed.stdout, listed
    denied = run(broker.key.token("nobody"), "topic", "create", "cli-denied")
    assert denied.returncode != 0
    expired = run(broker.key.token("admin-service", iat=int(time.time()) - 7200,
                                   exp=int(time.time()) - 3600), "topic", "list")
    assert expired.returncode != 0 and "authentic" in expired.stderr.lower(), expired.stderr
