"""The container image (issue 17, docs/deploy.md): `scripts/image.sh` builds it from scratch
with buildah (no registry and no Docker engine here), holding the binary, the libraries it
links and an empty data directory, configured as the Dockerfile's image is. The test builds it
from the binary under test, checks its configuration, and runs it: the image's own root
filesystem (mounted by buildah) as its root, its entry point and command, its user and its
environment, and nothing of this machine's files. Podman cannot start containers on these
machines (its runtime may not set the container's resource limits), so the image runs under
chroot instead, which tests the same thing: that the image alone holds what the binary needs.
A Kafka client then produces and consumes through it, and the records are in the image's data
directory, written by its user."""

import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest

from conftest import REPO, SLUICE_BIN, free_port
from helpers import consume_all, produce_all, producer, wait_for_readyz

IMAGE = "localhost/sluice:test"


@pytest.fixture
def buildah(tmp_path):
    """Runs buildah on storage of the test's own; removes what it made on the way out."""
    assert shutil.which("buildah"), "buildah (Debian) is installed by scripts/test.sh"
    storage = ["--storage-driver", "vfs", "--root", str(tmp_path / "storage"),
               "--runroot", str(tmp_path / "run")]

    def run(*args):
        done = subprocess.run(["buildah", *storage, *args], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"buildah {args}: {done.stderr}"
        return done.stdout.strip()

    run.env = {"BUILDAH_ROOT": str(tmp_path / "storage"), "BUILDAH_RUNROOT": str(tmp_path / "run")}
    yield run
    subprocess.run(["buildah", *storage, "rm", "--all"], capture_output=True, timeout=120)
    subprocess.run(["buildah", *storage, "rmi", "--all", "--force"], capture_output=True,
                   timeout=120)


def test_the_image_holds_all_the_binary_needs_and_serves_kafka_clients(tmp_path, buildah):
    # The binary under test, without its debug information (the image's is a release build;
    # what it links is the same).
    binary = tmp_path / "sluice"
    subprocess.run(["objcopy", "--strip-debug", str(SLUICE_BIN), str(binary)], check=True,
                   timeout=120)
    archive = tmp_path / "sluice.tar"
    built = subprocess.run([str(REPO / "scripts" / "image.sh"), str(binary), IMAGE],
                           capture_output=True, text=True, timeout=600,
                           env={**os.environ, **buildah.env, "SLUICE_IMAGE_ARCHIVE": str(archive)})
    assert built.returncode == 0, built.stderr
    with tarfile.open(archive) as oci:
        names = oci.getnames()
    assert "index.json" in names and any(n.startswith("blobs/sha256/") for n in names), names
    print(f"image: {archive.stat().st_size / 1e6:.1f} MB as an OCI archive (layers compressed)")

    config = json.loads(buildah("inspect", "--type", "image", IMAGE))["OCIv1"]["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/usr/local/bin/sluice"] and config["Cmd"] == ["serve"]
    assert "/var/lib/sluice" in config["Volumes"]
    assert {"9092/tcp", "8080/tcp"} <= set(config["ExposedPorts"])
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["SLUICE_DATA_DIR"] == "/var/lib/sluice"

    container = buildah("from", IMAGE)
    root = buildah("mount", container)
    assert not os.path.exists(os.path.join(root, "bin", "sh")), "no shell in the image"
    kafka, http = free_port(), free_port()
    # The image's environment, with its listeners on loopback (the test's network).
    env.update(SLUICE_LISTEN=f"127.0.0.1:{kafka}", SLUICE_HTTP_LISTEN=f"127.0.0.1:{http}")
    log = open(tmp_path / "image.log", "wb")
    started = time.monotonic()
    process = subprocess.Popen(
        [shutil.which("chroot"), "--userspec=10001:10001", root, *config["Entrypoint"],
         *config["Cmd"]],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd="/")
    try:
        wait_for_readyz(process, http, tmp_path / "image.log", timeout=60)
        print(f"start to /readyz: {time.monotonic() - started:.2f} s")

        class Served:
            bootstrap = f"127.0.0.1:{kafka}"

        produce_all(producer(Served), "from-image", [(b"k", b"v%d" % i) for i in range(100)])
        got = consume_all(Served, "from-image", 100)
        assert [m.value() for m in got] == [b"v%d" % i for i in range(100)]
        data = os.path.join(root, "var/lib/sluice")
        assert os.stat(data).st_uid == 10001
        topic = os.path.join(data, "topics", "from-image")
        assert os.path.isdir(topic) and os.stat(topic).st_uid == 10001, "written by the image's user"
        assert json.loads((tmp_path / "image.log").read_text().splitlines()[0])["level"], \
            "logs are JSON lines, as the image says"
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, (tmp_path / "image.log").read_text()[-2000:]
        buildah("umount", container)
