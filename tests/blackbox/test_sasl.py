"""SASL authentication (issue 15, docs/security.md): SASL_PLAINTEXT and SASL_SSL listeners,
PLAIN and SCRAM-SHA-256/512 with credentials in the metadata log, the bootstrap administrator,
users managed through Kafka's admin API (AlterUserScramCredentials,
DescribeUserScramCredentials), re-authentication (KIP-368), and what a hostile client meets:
requests before authentication, the v0 framing, a stalled exchange, oversized tokens, and
thousands of failed logins from one address while others log in."""

import socket
import struct
import subprocess
import threading
import time
import urllib.request

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from conftest import free_port, wait_until
from helpers import read_kafka_python
from rawwire import closed_by_peer, read_frame, request
from test_tls import _listening, make_certificates, round_trip

ADMIN_PASSWORD = "admin-secret"


@pytest.fixture
def sasl_broker(tmp_path, start_broker):
    """`start(**env)`: a broker with SASL_PLAINTEXT and SASL_SSL listeners beside PLAINTEXT,
    offering PLAIN and both SCRAM mechanisms, with `admin` as its bootstrap administrator."""
    certs = make_certificates(tmp_path)

    def start(extra_env=None):
        sasl_port, sasl_ssl_port = free_port(), free_port()
        b = start_broker({
            "SLUICE_LISTENERS": f"SASL_PLAINTEXT://127.0.0.1:{sasl_port},"
                                f"SASL_SSL://127.0.0.1:{sasl_ssl_port}",
            "SLUICE_SSL_KEYSTORE_LOCATION": str(certs / "keystore.pem"),
            "SLUICE_SASL_ENABLED_MECHANISMS": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "SLUICE_SASL_BOOTSTRAP_SCRAM":
                f'SCRAM-SHA-512=[name=admin,password="{ADMIN_PASSWORD}"]',
            **(extra_env or {}),
        })
        b.sasl_port, b.sasl_ssl_port = sasl_port, sasl_ssl_port
        b.certs = certs
        wait_until(lambda: _listening(sasl_ssl_port), what="the SASL_SSL listener")
        return b

    return start


def sasl_conf(broker, mechanism, user, password, tls=False):
    conf = {"bootstrap.servers": f"127.0.0.1:{broker.sasl_ssl_port if tls else broker.sasl_port}",
            "security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}
    if tls:
        conf["ssl.ca.location"] = str(broker.certs / "ca.pem")
    return conf


def refused(conf, timeout=15):
    """Whether a client with `conf` is refused authentication (librdkafka reports it through
    `error_cb`, or the request's error, as _AUTHENTICATION): waits for that answer, not for a
    timeout. Metadata coming back means it was not refused."""
    errors = []
    admin = AdminClient({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=0.5)
            return False
        except KafkaException as e:
            if e.args[0].code() == KafkaError._AUTHENTICATION:
                return True
        admin.poll(0.1)  # serves error_cb
        if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
            return True
    return False


def metrics(broker):
    with urllib.request.urlopen(f"{broker.http}/metrics", timeout=10) as r:
        return r.read().decode()


def counter(broker, name, **labels):
    """A counter's value (0 if the series is absent)."""
    shown = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{shown}}} "
    for line in metrics(broker).splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return 0.0


def test_the_bootstrap_administrator_logs_in_with_plain_and_scram_and_a_wrong_password_fails(
        sasl_broker):
    broker = sasl_broker()
    round_trip(sasl_conf(broker, "PLAIN", "admin", ADMIN_PASSWORD), "plain-topic")
    round_trip(sasl_conf(broker, "SCRAM-SHA-512", "admin", ADMIN_PASSWORD), "scram-topic")
    wrong = "not-the-password-7f3a"
    for mechanism in ("PLAIN", "SCRAM-SHA-512"):
        assert refused(sasl_conf(broker, mechanism, "admin", wrong)), mechanism
        assert refused(sasl_conf(broker, mechanism, "nobody", "x")), mechanism
    # No SCRAM-SHA-256 credential was made for admin.
    assert refused(sasl_conf(broker, "SCRAM-SHA-256", "admin", ADMIN_PASSWORD))
    assert counter(broker, "sluice_authentications_total", mechanism="PLAIN",
                   result="failed") >= 2
    assert counter(broker, "sluice_authentications_total", mechanism="SCRAM-SHA-512",
                   result="succeeded") >= 1
    log = broker.log()
    assert "event=\"authentication_failed\"" in log or "event=authentication_failed" in log, log
    assert "principal=User:nobody" in log, "the audit line names who claimed to log in"
    assert ADMIN_PASSWORD not in log and wrong not in log, "no password is logged"


def test_users_made_through_the_admin_api_log_in_over_sasl_ssl_and_survive_a_kill_9(
        sasl_broker):
    broker = sasl_broker()
    admin = AdminClient(sasl_conf(broker, "SCRAM-SHA-512", "admin", ADMIN_PASSWORD, tls=True))
    upserts = [
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512,
                                                                  8192), b"alice-512"),
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256,
                                                                  4096), b"alice-256"),
    ]
    # Kafka refuses a user named twice in one request.
    results = admin.alter_user_scram_credentials(upserts)
    with pytest.raises(KafkaException) as refusal:
        results["alice"].result(15)
    assert refusal.value.args[0].code() == KafkaError.DUPLICATE_RESOURCE
    for upsert in upserts:
        admin.alter_user_scram_credentials([upsert])["alice"].result(15)
    described = admin.describe_user_scram_credentials(["alice"])["alice"].result(15)
    assert sorted((i.mechanism, i.iterations) for i in described.scram_credential_infos) == [
        (ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 8192)]
    everyone = admin.describe_user_scram_credentials().result(15)
    assert sorted(everyone) == ["admin", "alice"]
    with pytest.raises(KafkaException) as unknown:
        admin.describe_user_scram_credentials(["bob"])["bob"].result(15)
    assert unknown.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    weak = UserScramCredentialUpsertion(
        "weak", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"x")
    with pytest.raises(KafkaException) as unacceptable:
        admin.alter_user_scram_credentials([weak])["weak"].result(15)
    assert unacceptable.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL

    round_trip(sasl_conf(broker, "SCRAM-SHA-512", "alice", "alice-512", tls=True), "alice-ssl")
    round_trip(sasl_conf(broker, "SCRAM-SHA-256", "alice", "alice-256"), "alice-plain")
    round_trip(sasl_conf(broker, "PLAIN", "alice", "alice-512", tls=True), "alice-plain-ssl")

    deletion = UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([deletion])["alice"].result(15)
    assert refused(sasl_conf(broker, "SCRAM-SHA-512", "alice", "alice-512", tls=True))

    broker.kill()  # kill -9: credentials are durable once AlterUserScramCredentials answers
    broker.start()
    wait_until(lambda: _listening(broker.sasl_port), what="the SASL_PLAINTEXT listener")
    # The bootstrap administrator was not written again over what the log holds, and alice's
    # remaining credential is still there.
    round_trip(sasl_conf(broker, "SCRAM-SHA-256", "alice", "alice-256"), "after-restart")
    assert refused(sasl_conf(broker, "SCRAM-SHA-512", "alice", "alice-512"))


def test_kafka_python_logs_in_with_scram_sha_256_and_plain(sasl_broker):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient
    broker = sasl_broker({"SLUICE_SASL_BOOTSTRAP_SCRAM":
                          'SCRAM-SHA-256=[name=kp,password="kp-secret"]'})
    for mechanism in ("SCRAM-SHA-256", "PLAIN"):
        conf = dict(bootstrap_servers=f"127.0.0.1:{broker.sasl_port}",
                    security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                    sasl_plain_username="kp", sasl_plain_password="kp-secret")
        topic = f"kp-{mechanism.lower()}"
        p = KafkaProducer(**conf, acks="all")
        for i in range(20):
            p.send(topic, value=b"kp%d" % i)
        p.flush(30)
        p.close()
        c = KafkaConsumer(topic, **conf, auto_offset_reset="earliest",
                          consumer_timeout_ms=10000)
        got = sorted(m.value for m in read_kafka_python(c, 20))
        c.close()
        assert got == sorted(b"kp%d" % i for i in range(20)), mechanism
    bad = dict(bootstrap_servers=f"127.0.0.1:{broker.sasl_port}",
               security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
               sasl_plain_username="kp", sasl_plain_password="wrong")
    # kafka-python retries a refused login until its bootstrap deadline, then says only that
    # it timed out: the broker's count of failed logins says why.
    with pytest.raises(Exception):
        KafkaAdminClient(**bad, request_timeout_ms=5000, bootstrap_timeout_ms=5000).list_topics()
    assert counter(broker, "sluice_authentications_total", mechanism="SCRAM-SHA-256",
                   result="failed") >= 1


def test_kcat_logs_in_with_scram(sasl_broker):
    import shutil
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed; the test command installs it with apt-get"
    broker = sasl_broker()
    auth = ["-b", f"127.0.0.1:{broker.sasl_port}", "-X", "security.protocol=SASL_PLAINTEXT",
            "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=admin",
            "-X", f"sasl.password={ADMIN_PASSWORD}"]
    lines = "".join(f"line-{i}\n" for i in range(10))
    subprocess.run([kcat, *auth, "-P", "-t", "kcat-sasl"], input=lines.encode(), check=True,
                   timeout=60)
    out = subprocess.run([kcat, *auth, "-C", "-t", "kcat-sasl", "-o", "beginning", "-e",
                          "-q"], capture_output=True, check=True, timeout=60)
    assert out.stdout.decode().split() == [f"line-{i}" for i in range(10)]
    wrong = [a.replace(ADMIN_PASSWORD, "wrong") for a in auth]
    failed = subprocess.run([kcat, *wrong, "-L", "-m", "5"], capture_output=True, timeout=60)
    assert failed.returncode != 0


# The raw wire: what no client sends.

def sasl_socket(broker, port=None, source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", port or broker.sasl_port), timeout=5,
                                 source_address=(source, 0))
    s.settimeout(5)
    return s


def string(text):
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def handshake(s, mechanism, version=1, correlation_id=1):
    """SaslHandshake: (error code, mechanisms offered)."""
    s.sendall(request(17, version, correlation_id, string(mechanism)))
    data = read_frame(s)
    (cid, error, count) = struct.unpack(">ihi", data[:10])
    assert cid == correlation_id
    at, offered = 10, []
    for _ in range(count):
        (n,) = struct.unpack(">h", data[at:at + 2])
        offered.append(data[at + 2:at + 2 + n].decode())
        at += 2 + n
    return error, offered


def authenticate(s, token, version=1, correlation_id=2):
    """SaslAuthenticate v0/v1: (error code, auth bytes, session lifetime ms)."""
    s.sendall(request(36, version, correlation_id, struct.pack(">i", len(token)) + token))
    data = read_frame(s)
    (cid, error, message_len) = struct.unpack(">ihh", data[:8])
    assert cid == correlation_id
    at = 8 + max(message_len, 0)
    (n,) = struct.unpack(">i", data[at:at + 4])
    auth_bytes = data[at + 4:at + 4 + n]
    at += 4 + n
    lifetime = struct.unpack(">q", data[at:at + 8])[0] if version >= 1 else None
    return error, auth_bytes, lifetime


def metadata_answers(s, correlation_id=9):
    s.sendall(request(3, 1, correlation_id, struct.pack(">i", 0)))
    return struct.unpack(">i", read_frame(s)[:4])[0] == correlation_id


def plain_token(user, password):
    return b"\0" + user.encode() + b"\0" + password.encode()


def test_before_authentication_only_api_versions_and_sasl_are_served(sasl_broker):
    broker = sasl_broker()
    s = sasl_socket(broker)
    s.sendall(request(18, 0, 1))  # ApiVersions is served before authentication
    assert struct.unpack(">i", read_frame(s)[:4])[0] == 1
    s.sendall(request(3, 1, 2, struct.pack(">i", 0)))  # Metadata is not
    assert closed_by_peer(s)

    s = sasl_socket(broker)
    error, offered = handshake(s, "GSSAPI")
    assert error == 33, "UNSUPPORTED_SASL_MECHANISM"
    assert offered == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    assert closed_by_peer(s)

    s = sasl_socket(broker)
    error, _, _ = authenticate(s, plain_token("admin", ADMIN_PASSWORD))
    assert error == 34, "ILLEGAL_SASL_STATE: no handshake first"
    assert closed_by_peer(s)

    # On a listener without SASL, the SASL requests answer ILLEGAL_SASL_STATE and the
    # connection goes on.
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    error, _ = handshake(s, "PLAIN")
    assert error == 34
    assert metadata_answers(s)


def test_v1_plain_tells_the_session_lifetime_and_a_wrong_password_is_refused(sasl_broker):
    broker = sasl_broker({"SLUICE_CONNECTIONS_MAX_REAUTH_MS": "1500"})
    s = sasl_socket(broker)
    assert handshake(s, "PLAIN")[0] == 0
    error, auth_bytes, lifetime = authenticate(s, plain_token("admin", ADMIN_PASSWORD))
    assert (error, auth_bytes, lifetime) == (0, b"", 1500)
    assert metadata_answers(s)
    # Past the lifetime without re-authenticating, the next request closes the connection.
    time.sleep(1.6)
    s.sendall(request(3, 1, 10, struct.pack(">i", 0)))
    assert closed_by_peer(s)

    s = sasl_socket(broker)
    assert handshake(s, "PLAIN")[0] == 0
    started = time.monotonic()
    error, _, _ = authenticate(s, plain_token("admin", "wrong"))
    assert error == 58, "SASL_AUTHENTICATION_FAILED"
    assert time.monotonic() - started >= 0.09, "a failure is answered after the delay"
    assert closed_by_peer(s)


def test_the_v0_framing_carries_raw_tokens(sasl_broker):
    broker = sasl_broker()
    s = sasl_socket(broker)
    assert handshake(s, "PLAIN", version=0)[0] == 0
    token = plain_token("admin", ADMIN_PASSWORD)
    s.sendall(struct.pack(">i", len(token)) + token)
    assert read_frame(s) == b"", "an empty token back: authenticated"
    assert metadata_answers(s)

    s = sasl_socket(broker)
    assert handshake(s, "PLAIN", version=0)[0] == 0
    token = plain_token("admin", "wrong")
    s.sendall(struct.pack(">i", len(token)) + token)
    assert closed_by_peer(s), "a failed v0 exchange is closed without an answer"


def test_a_stalled_exchange_and_an_oversized_token_are_cut(sasl_broker):
    broker = sasl_broker({"SLUICE_REQUEST_TIMEOUT_MS": "1500"})
    stalled = sasl_socket(broker)
    assert handshake(stalled, "SCRAM-SHA-512")[0] == 0
    token = b"n,,n=admin,r=" + b"x" * 100
    frame = request(36, 1, 2, struct.pack(">i", len(token)) + token)
    stalled.sendall(frame[:len(frame) // 2])  # half a SaslAuthenticate
    silent = sasl_socket(broker)  # connects and says nothing
    started = time.monotonic()
    assert closed_by_peer(stalled) and closed_by_peer(silent)
    assert time.monotonic() - started < 4.5
    # The silent one runs out of time to authenticate; the stalled one of that or of time for
    # its frame, whichever ends first.
    closed = lambda reason: counter(broker, "sluice_connections_closed_total", reason=reason)
    wait_until(lambda: closed("sasl_authentication_timeout") >= 1
               and closed("sasl_authentication_timeout") + closed("request_timeout") >= 2,
               what="the timeouts counted")

    big = sasl_socket(broker)
    big.sendall(struct.pack(">i", 600 * 1024) + b"\0" * 1024)
    assert closed_by_peer(big), "a frame above 512 KiB before authentication closes"
    # After authenticating, the usual frame limit applies again.
    s = sasl_socket(broker)
    assert handshake(s, "PLAIN")[0] == 0
    assert authenticate(s, plain_token("admin", ADMIN_PASSWORD))[0] == 0
    assert metadata_answers(s)


def rss_bytes(broker):
    with open(f"/proc/{broker.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_thousands_of_failed_logins_from_one_address_leave_others_unaffected(sasl_broker):
    broker = sasl_broker()
    failures, attempts_per_thread, threads = [], 50, 40

    def guess(worker):
        for i in range(attempts_per_thread):
            try:
                s = sasl_socket(broker, source="127.0.0.2")
                handshake(s, "PLAIN")
                error, _, _ = authenticate(s, plain_token("admin", f"guess-{worker}-{i}"))
                failures.append(error)
                s.close()
            except (OSError, AssertionError):
                failures.append(None)

    def good_login():
        started = time.monotonic()
        s = sasl_socket(broker)
        assert handshake(s, "PLAIN")[0] == 0
        assert authenticate(s, plain_token("admin", ADMIN_PASSWORD))[0] == 0
        assert metadata_answers(s)
        s.close()
        return time.monotonic() - started

    good_login()
    rss_before = rss_bytes(broker)
    workers = [threading.Thread(target=guess, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    good_times = []
    while any(w.is_alive() for w in workers):
        good_times.append(good_login())
        time.sleep(0.05)
    for w in workers:
        w.join()
    total = attempts_per_thread * threads
    assert len(failures) == total
    assert failures.count(58) >= total * 0.95, {c: failures.count(c) for c in set(failures)}
    assert good_times and max(good_times) < 2.0, good_times
    # The address is over its budget: even the right password is refused from it for now,
    # without being checked; another address is not.
    s = sasl_socket(broker, source="127.0.0.2")
    assert handshake(s, "PLAIN")[0] == 0
    assert authenticate(s, plain_token("admin", ADMIN_PASSWORD))[0] == 58
    good_login()
    growth = rss_bytes(broker) - rss_before
    assert growth < 64 * 1024 * 1024, f"RSS grew {growth} bytes over {total} failed logins"
    assert counter(broker, "sluice_authentications_total", mechanism="PLAIN",
                   result="failed") >= total


def test_librdkafka_reauthenticates_on_the_same_connection(sasl_broker):
    broker = sasl_broker({"SLUICE_CONNECTIONS_MAX_REAUTH_MS": "2000"})
    conf = sasl_conf(broker, "SCRAM-SHA-512", "admin", ADMIN_PASSWORD)
    admin = AdminClient(conf)  # must outlive the future
    admin.create_topics([NewTopic("reauth", 1, 1)])["reauth"].result(30)
    p = Producer({**conf, "acks": "all", "linger.ms": 0})
    delivered = []
    deadline = time.monotonic() + 7
    i = 0
    while time.monotonic() < deadline:
        p.produce("reauth", value=b"r%d" % i, on_delivery=lambda e, m: delivered.append(e))
        p.poll(0.2)
        i += 1
    assert p.flush(30) == 0
    assert len(delivered) == i and all(e is None for e in delivered)
    assert counter(broker, "sluice_authentications_total", mechanism="SCRAM-SHA-512",
                   result="reauthenticated") >= 2
    assert counter(broker, "sluice_connections_closed_total", reason="sasl_session_expired") == 0
