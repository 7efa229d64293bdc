"""TLS listeners (issue 15, docs/design/0006-security.md): `listeners` naming SSL beside
PLAINTEXT, certificates from PEM files the test makes with openssl; librdkafka and kafka-python
produce and consume over TLS, are told the SSL endpoint in Metadata, and a client certificate is
asked for when `ssl_client_auth` says so. Hostile: a client that opens a TLS handshake and never
finishes it is cut at `request_timeout_ms`; plaintext sent to the TLS port gets nowhere."""

import socket
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, free_port, wait_until
from helpers import read_kafka_python


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory):
    """A CA; the broker's certificate for 127.0.0.1 signed by it (key and chain in one PEM
    file, Kafka's PEM keystore); a client certificate signed by it; and a client certificate
    from a CA the broker does not trust."""
    d = directory
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                f"/CN={ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    # X.509 v3 with a client use, as TLS verifiers want.
    (d / "client.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    client = ["-extfile", "client.ext"]
    for name, ca, ext in (("server", "ca", ["-extfile", "san.ext"]), ("client", "ca", client),
                          ("rogue", "rogue-ca", client)):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *ext, cwd=d)
    (d / "keystore.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text()
                                    + (d / "ca.pem").read_text())
    return d


def second_keystore(d):
    """Another server certificate for 127.0.0.1, from the CA the clients do not trust yet
    (`rogue-ca`), as a keystore's text."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=server2", "-keyout",
            "server2.key", "-out", "server2.csr", cwd=d)
    openssl("x509", "-req", "-in", "server2.csr", "-CA", "rogue-ca.pem", "-CAkey", "rogue-ca.key",
            "-CAcreateserial", "-days", "2", "-out", "server2.pem", "-extfile", "san.ext", cwd=d)
    return (d / "server2.key").read_text() + (d / "server2.pem").read_text()


@pytest.fixture
def tls_broker(tmp_path, start_broker):
    """`start(client_auth)`: a broker with an SSL listener beside its PLAINTEXT one (`--listen`)."""
    certs = make_certificates(tmp_path)

    def start(client_auth="none", extra_env=None):
        ssl_port = free_port()
        b = start_broker({
            "SLUICE_LISTENERS": f"SSL://127.0.0.1:{ssl_port}",
            "SLUICE_SSL_KEYSTORE_LOCATION": str(certs / "keystore.pem"),
            "SLUICE_SSL_TRUSTSTORE_LOCATION": str(certs / "ca.pem"),
            "SLUICE_SSL_CLIENT_AUTH": client_auth,
            **(extra_env or {}),
        })
        b.ssl_bootstrap = f"127.0.0.1:{ssl_port}"
        b.certs = certs
        wait_until(lambda: _listening(ssl_port), what="the SSL listener")
        return b

    return start


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def ssl_conf(broker, client_cert=None):
    conf = {"bootstrap.servers": broker.ssl_bootstrap, "security.protocol": "SSL",
            "ssl.ca.location": str(broker.certs / "ca.pem")}
    if client_cert:
        conf["ssl.certificate.location"] = str(broker.certs / f"{client_cert}.pem")
        conf["ssl.key.location"] = str(broker.certs / f"{client_cert}.key")
    return conf


def round_trip(conf, topic, n=100):
    """Creates `topic`, produces `n` records and reads them back, all through `conf`."""
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    p = Producer({**conf, "acks": "all"})
    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
    assert p.flush(30) == 0
    c = Consumer({**conf, "group.id": f"{topic}-readers", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        c.close()
    assert sorted(got) == sorted(b"v%d" % i for i in range(n))
    return admin


def test_librdkafka_produces_and_consumes_over_tls_and_is_told_the_ssl_endpoint(tls_broker):
    broker = tls_broker()
    admin = round_trip(ssl_conf(broker), "over-tls")
    brokers = admin.list_topics(timeout=10).brokers
    assert [f"{b.host}:{b.port}" for b in brokers.values()] == [broker.ssl_bootstrap]
    # The same topic over plaintext: one broker, two doors.
    plain = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert "over-tls" in plain.topics
    assert [f"{b.host}:{b.port}" for b in plain.brokers.values()] == [broker.bootstrap]


def test_kafka_python_produces_and_consumes_over_tls(tls_broker):
    from kafka import KafkaConsumer, KafkaProducer
    broker = tls_broker()
    conf = dict(bootstrap_servers=broker.ssl_bootstrap, security_protocol="SSL",
                ssl_cafile=str(broker.certs / "ca.pem"))
    p = KafkaProducer(**conf, acks="all")
    for i in range(20):
        p.send("kp-tls", value=b"kp%d" % i)
    p.flush(30)
    p.close()
    c = KafkaConsumer("kp-tls", **conf, auto_offset_reset="earliest", consumer_timeout_ms=10000)
    got = sorted(m.value for m in read_kafka_python(c, 20))
    c.close()
    assert got == sorted(b"kp%d" % i for i in range(20))


def test_a_required_client_certificate_admits_only_the_trusted_ones(tls_broker):
    broker = tls_broker(client_auth="required")
    round_trip(ssl_conf(broker, client_cert="client"), "mtls")
    for refused in (None, "rogue"):
        admin = AdminClient({**ssl_conf(broker, client_cert=refused), "socket.timeout.ms": 3000})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)
    assert "TLS handshake failed" in broker.log()


def test_principal_mapping_rules_name_a_certificates_principal(tls_broker):
    # CN=client becomes User:CLIENT, a super user: the round trip works only if the rule named
    # the principal (User:CN=client may do nothing). The broker's own certificate (CN=server,
    # from the same CA) matches no rule and is refused, as Kafka refuses it.
    broker = tls_broker(client_auth="required", extra_env={
        "SLUICE_SSL_PRINCIPAL_MAPPING_RULES": "RULE:^CN=(client)$/$1/U",
        "SLUICE_AUTHORIZER_CLASS_NAME": "StandardAuthorizer",
        "SLUICE_SUPER_USERS": "User:CLIENT",
    })
    round_trip(ssl_conf(broker, client_cert="client"), "mapped")
    unmapped = AdminClient({**ssl_conf(broker, client_cert="server"), "socket.timeout.ms": 3000})
    with pytest.raises(KafkaException):
        unmapped.list_topics(timeout=5)
    wait_until(lambda: "no ssl_principal_mapping_rules rule applies to CN=server" in broker.log(),
               timeout=10, what="the refusal in the audit log")


def test_principal_mapping_rules_that_cannot_be_read_stop_the_start(tmp_path):
    for rules in ("default", "RULE:^CN=(.*)$/$1", "RULE:^CN=(unclosed$/$1/"):
        b = Broker(tmp_path / "bad", free_port(),
                   extra_env={"SLUICE_SSL_PRINCIPAL_MAPPING_RULES": rules})
        b.launch()
        assert b.proc.wait(timeout=30) != 0, rules
        assert "ssl_principal_mapping_rules" in b.log(), b.log()[-1000:]


def test_a_stalled_handshake_is_cut_and_plaintext_to_the_tls_port_gets_nowhere(tls_broker):
    broker = tls_broker(extra_env={"SLUICE_REQUEST_TIMEOUT_MS": "1000"})
    host, port = broker.ssl_bootstrap.split(":")
    # A ClientHello's first bytes, then nothing.
    stalled = socket.create_connection((host, int(port)), timeout=10)
    stalled.sendall(b"\x16\x03\x01\x00\xc8\x01")
    started = time.monotonic()
    assert stalled.recv(1) == b"", "the broker closes the connection"
    assert time.monotonic() - started < 5
    stalled.close()
    # A Kafka request in plaintext is not a TLS record: the handshake fails, nothing answers.
    plain = socket.create_connection((host, int(port)), timeout=10)
    plain.sendall(b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\x00\x00")
    assert plain.recv(4096)[:1] in (b"", b"\x15"), "a TLS alert or a close, never an answer"
    plain.close()
    round_trip(ssl_conf(broker), "after-the-stall", n=10)
    assert broker.alive()


def test_a_keystore_that_cannot_be_read_stops_the_start(tmp_path):
    from conftest import SLUICE_BIN
    (tmp_path / "not-a-key.pem").write_text("not PEM\n")
    env = {"SLUICE_LISTENERS": f"PLAINTEXT://127.0.0.1:{free_port()},SSL://127.0.0.1:{free_port()}",
           "SLUICE_SSL_KEYSTORE_LOCATION": str(tmp_path / "not-a-key.pem"),
           "SLUICE_HTTP_LISTEN": "off", "SLUICE_DATA_DIR": str(tmp_path / "data")}
    import os
    done = subprocess.run([str(SLUICE_BIN), "serve"], env=dict(os.environ, **env),
                          capture_output=True, timeout=60)
    assert done.returncode != 0
    assert b"not-a-key.pem" in done.stderr + done.stdout, done.stderr[-2000:]


def test_certificates_are_read_again_on_sighup_and_when_their_files_change(tls_broker):
    import os
    import signal
    broker = tls_broker()
    d = broker.certs
    first = (d / "keystore.pem").read_text()
    second = second_keystore(d)

    def trusted_by(ca):
        conf = {"bootstrap.servers": broker.ssl_bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": str(d / ca), "socket.timeout.ms": 3000}
        try:
            AdminClient(conf).list_topics(timeout=3)
            return True
        except KafkaException:
            return False

    def replace_keystore(text):
        (d / "keystore.new").write_text(text)
        os.replace(d / "keystore.new", d / "keystore.pem")

    assert trusted_by("ca.pem") and not trusted_by("rogue-ca.pem")
    replace_keystore(second)
    broker.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: trusted_by("rogue-ca.pem"), timeout=20, what="the new certificate")
    assert not trusted_by("ca.pem")
    # A file that changes is read again without a signal.
    replace_keystore(first)
    wait_until(lambda: trusted_by("ca.pem"), timeout=20, what="the certificate file read again")
    # A bad file is refused and the last good certificate keeps serving.
    replace_keystore("not a certificate\n")
    broker.proc.send_signal(signal.SIGHUP)
    broker.wait_for_log("TLS certificates not read again")
    assert broker.alive() and trusted_by("ca.pem")
