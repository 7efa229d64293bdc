"""Fixtures that run the real `sluice` binary for black-box tests.

Each test gets its own broker on a free loopback port with its own data directory. Waits are
conditions with deadlines, never bare sleeps.
"""

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLUICE_BIN = Path(os.environ.get("SLUICE_BIN", REPO / "target" / "debug" / "sluice"))


_HANDED_OUT = set()


def _port_range():
    """The ports this test process hands out: below the kernel's ephemeral range (32768 and up
    here), and, when pytest-xdist runs the suite in several processes, a share of its own for
    each (PYTEST_XDIST_WORKER gw0, gw1...), so two processes never hand out the same port."""
    low, high = 10000, 32000
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker.removeprefix("gw") or 0)
    share = (high - low) // max(workers, 1)
    return low + index * share, low + (index + 1) * share


def free_port():
    """A free loopback port below the kernel's ephemeral range: outgoing connections take
    their local ports from that range, so a port found free there can be taken by one (a
    cluster's nodes dial each other) before the server binds it. Never the same port twice in
    one run, and never one another test process hands out."""
    low, high = _port_range()
    while True:
        port = random.randrange(low, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


def wait_until(condition, timeout=15.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Broker:
    """A `sluice serve` process that can be stopped, killed and restarted on the same data."""

    def __init__(self, data_dir, port, extra_env=None, extra_args=None):
        self.data_dir = Path(data_dir)
        self.port = port
        self.extra_env = extra_env or {}
        self.extra_args = extra_args or []
        self.proc = None
        self.http_port = free_port()
        self.log_path = self.data_dir.parent / f"sluice-{port}.log"

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def http(self):
        return f"http://127.0.0.1:{self.http_port}"

    def start(self):
        self.launch()
        wait_until(self._accepting, what=f"broker on {self.bootstrap}")
        return self

    def launch(self):
        """Starts the process without waiting for it to serve (a cluster's nodes serve only
        once a quorum of them is up)."""
        assert SLUICE_BIN.exists(), f"{SLUICE_BIN} not built; run cargo build first"
        env = dict(os.environ, SLUICE_LOG="info", **self.extra_env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(SLUICE_BIN), "serve", "--data-dir", str(self.data_dir), "--listen", self.bootstrap,
             "--http-listen", f"127.0.0.1:{self.http_port}", *self.extra_args],
            stdout=log, stderr=log, env=env,
        )
        return self

    def _accepting(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"sluice exited with {self.proc.returncode}:\n{self.log()}")
        try:
            # Both listeners: the HTTP API starts right after the Kafka one.
            for port in (self.port, self.http_port):
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    pass
            return True
        except OSError:
            return False

    def stop(self, timeout=20):
        """SIGTERM and wait: returns the exit code."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_for_log(self, text, timeout=15):
        wait_until(lambda: text in self.log(), timeout=timeout, what=f"log line containing {text!r}")

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def start_broker(tmp_path):
    """Starts brokers with extra environment (each on its own data directory) and kills
    whatever is still running when the test ends."""
    started = []

    def start(extra_env=None):
        b = Broker(tmp_path / f"data{len(started) or ''}", free_port(), extra_env=extra_env).start()
        started.append(b)
        return b

    yield start
    for b in started:
        if b.proc is not None:
            b.proc.kill()
            b.proc.wait(timeout=10)


@pytest.fixture
def broker(start_broker):
    return start_broker()
