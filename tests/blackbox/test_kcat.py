"""kcat (Debian's, with an old librdkafka 2.0.2 inside) producing and consuming."""

import shutil
import subprocess

import pytest

from helpers import create_topic

KCAT = shutil.which("kcat")


@pytest.fixture(autouse=True)
def need_kcat():
    assert KCAT, "kcat is not installed; the test command installs it with apt-get"


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_produce_and_consume(broker, codec):
    create_topic(broker, f"kcat-{codec}", 2)
    lines = "".join(f"key{i}:value {i}\n" for i in range(200))
    subprocess.run([KCAT, "-P", "-b", broker.bootstrap, "-t", f"kcat-{codec}", "-K:", "-z", codec],
                   input=lines.encode(), check=True, timeout=60)
    out = subprocess.run([KCAT, "-C", "-b", broker.bootstrap, "-t", f"kcat-{codec}", "-e", "-q",
                          "-f", "%k=%s\n"], capture_output=True, check=True, timeout=60)
    got = sorted(out.stdout.decode().splitlines())
    assert got == sorted(f"key{i}=value {i}" for i in range(200))


def test_kcat_metadata_lists_the_broker_and_topics(broker):
    create_topic(broker, "listed", 3)
    out = subprocess.run([KCAT, "-L", "-b", broker.bootstrap], capture_output=True, check=True, timeout=30)
    text = out.stdout.decode()
    assert f"broker 1 at {broker.bootstrap}" in text
    assert 'topic "listed" with 3 partitions' in text
