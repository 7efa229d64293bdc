"""The CLI against a secured broker (issue 15, docs/security.md, docs/cli.md): every command
takes --tls-ca, --tls-cert, --tls-key, --user, --password (or SLUICE_PASSWORD) and
--sasl-mechanism; `sluice user create|list|delete` and `sluice acl add|list|remove` manage
users and ACLs, and what they set is what the broker enforces."""

import json
import os
import subprocess

from conftest import SLUICE_BIN, free_port, wait_until
from test_tls import _listening, make_certificates

ADMIN_PASSWORD = "admin-secret"


def start_secured(tmp_path, start_broker, client_auth="none"):
    certs = make_certificates(tmp_path)
    port = free_port()
    ssl_port = free_port()
    broker = start_broker({
        "SLUICE_LISTENERS": f"SASL_SSL://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port}",
        "SLUICE_SSL_KEYSTORE_LOCATION": str(certs / "keystore.pem"),
        "SLUICE_SSL_TRUSTSTORE_LOCATION": str(certs / "ca.pem"),
        "SLUICE_SSL_CLIENT_AUTH": client_auth,
        "SLUICE_SASL_ENABLED_MECHANISMS": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
        "SLUICE_SASL_BOOTSTRAP_SCRAM": f'SCRAM-SHA-512=[name=admin,password="{ADMIN_PASSWORD}"]',
        "SLUICE_AUTHORIZER_CLASS_NAME": "StandardAuthorizer",
        "SLUICE_SUPER_USERS": "User:admin;User:CN=client",
    })
    broker.sasl_ssl, broker.ssl, broker.certs = f"127.0.0.1:{port}", f"127.0.0.1:{ssl_port}", certs
    wait_until(lambda: _listening(port) and _listening(ssl_port), what="the secured listeners")
    return broker


def cli(broker, *args, user=None, password=None, input=None, check=True, address=None,
        extra_env=None):
    command = [str(SLUICE_BIN), *args, "--brokers", address or broker.sasl_ssl,
               "--tls-ca", str(broker.certs / "ca.pem"), "--timeout", "10"]
    if user:
        command += ["--user", user]
    env = {**os.environ, **(extra_env or {})}
    if password is not None:
        env["SLUICE_PASSWORD"] = password
    done = subprocess.run(command, input=input, capture_output=True, text=True, timeout=60,
                          env=env)
    if check:
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done


def as_admin(broker, *args, **kw):
    return cli(broker, *args, user="admin", password=ADMIN_PASSWORD, **kw)


def test_users_and_acls_managed_by_the_cli_are_what_the_broker_enforces(tmp_path, start_broker):
    broker = start_secured(tmp_path, start_broker)
    as_admin(broker, "user", "create", "alice", "--new-password", "alice-secret")
    as_admin(broker, "user", "create", "alice", "--mechanism", "SCRAM-SHA-256",
             extra_env={"SLUICE_NEW_PASSWORD": "alice-256"})
    users = json.loads(as_admin(broker, "user", "list", "--format", "json").stdout)
    assert {u["user"]: sorted(m["mechanism"] for m in u["mechanisms"]) for u in users} == {
        "admin": ["SCRAM-SHA-512"], "alice": ["SCRAM-SHA-256", "SCRAM-SHA-512"]}
    for topic in ("orders-eu", "payments"):
        as_admin(broker, "topic", "create", topic)

    as_admin(broker, "acl", "add", "--allow-principal", "User:alice", "--operation", "write",
             "--operation", "describe", "--topic", "orders-", "--resource-pattern-type",
             "prefixed")
    acls = json.loads(as_admin(broker, "acl", "list", "--format", "json").stdout)
    assert sorted((a["principal"], a["resource_name"], a["pattern_type"], a["operation"])
                  for a in acls) == [("User:alice", "orders-", "prefixed", "describe"),
                                     ("User:alice", "orders-", "prefixed", "write")]

    produced = cli(broker, "produce", "orders-eu", user="alice", password="alice-secret",
                   input="hello\n")
    assert produced.returncode == 0
    refused = cli(broker, "produce", "payments", user="alice", password="alice-secret",
                  input="hello\n", check=False)
    assert refused.returncode != 0 and "TOPIC_AUTHORIZATION_FAILED" in refused.stderr, refused
    # Alice's topic listing shows only what she may describe; SCRAM-SHA-256 and PLAIN too.
    for mechanism, password in (("SCRAM-SHA-256", "alice-256"), ("PLAIN", "alice-secret")):
        listed = cli(broker, "topic", "list", "--sasl-mechanism", mechanism, user="alice",
                     password=password)
        assert "orders-eu" in listed.stdout and "payments" not in listed.stdout, listed.stdout
    wrong = cli(broker, "topic", "list", user="alice", password="wrong", check=False)
    assert wrong.returncode != 0 and "SASL_AUTHENTICATION_FAILED" in wrong.stderr, wrong.stderr
    # Alice may not manage ACLs or users.
    denied = cli(broker, "acl", "add", "--allow-principal", "User:alice", "--operation", "all",
                 "--cluster", user="alice", password="alice-secret", check=False)
    assert denied.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in denied.stderr

    removed = as_admin(broker, "acl", "remove", "--allow-principal", "User:alice", "--topic",
                       "orders-", "--resource-pattern-type", "prefixed")
    assert "removed 2 ACL(s)" in removed.stdout, removed.stdout
    assert json.loads(as_admin(broker, "acl", "list", "--format", "json").stdout) == []
    as_admin(broker, "user", "delete", "alice")
    gone = cli(broker, "topic", "list", user="alice", password="alice-secret", check=False)
    assert gone.returncode != 0


def test_the_cli_presents_a_client_certificate(tmp_path, start_broker):
    broker = start_secured(tmp_path, start_broker, client_auth="required")
    certs = broker.certs
    done = subprocess.run(
        [str(SLUICE_BIN), "topic", "create", "by-certificate", "--brokers", broker.ssl,
         "--tls-ca", str(certs / "ca.pem"), "--tls-cert", str(certs / "client.pem"),
         "--tls-key", str(certs / "client.key"), "--timeout", "10"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    without = subprocess.run(
        [str(SLUICE_BIN), "topic", "list", "--brokers", broker.ssl, "--tls-ca",
         str(certs / "ca.pem"), "--timeout", "5"], capture_output=True, text=True, timeout=60)
    assert without.returncode != 0, "the broker requires a certificate"
