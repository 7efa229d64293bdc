#!/usr/bin/env bash
# Builds Sluice's container image without a registry or a Docker engine (docs/deploy.md):
# from scratch with buildah, holding the `sluice` binary, the shared libraries it links and
# their loader (as `ldd` lists them), and an empty data directory; configured as the
# Dockerfile's image is (user 10001, SLUICE_* settings, a volume, `sluice serve`).
#
#   scripts/image.sh [BINARY] [IMAGE]       # defaults: target/release/sluice, localhost/sluice:dev
#
# Prints the image's id. `SLUICE_IMAGE_ARCHIVE=path.tar` also writes it as an OCI archive (for
# `podman load`, or to measure its size). buildah's storage is its default unless
# BUILDAH_ROOT and BUILDAH_RUNROOT name other directories (the tests keep theirs in target/).
set -euo pipefail

binary=${1:-target/release/sluice}
image=${2:-localhost/sluice:dev}
[ -x "$binary" ] || { echo "no executable $binary: build it (cargo build --release -p sluice)" >&2; exit 1; }

storage=(--storage-driver vfs)
[ -n "${BUILDAH_ROOT:-}" ] && storage+=(--root "$BUILDAH_ROOT")
[ -n "${BUILDAH_RUNROOT:-}" ] && storage+=(--runroot "$BUILDAH_RUNROOT")
b() { buildah "${storage[@]}" "$@"; }

stage=$(mktemp -d)
container=""
cleanup() {
    rm -rf "$stage"
    [ -z "$container" ] || b rm "$container" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The root filesystem: the binary, what it links, a data directory for user 10001.
install -D -m 0755 "$binary" "$stage/usr/local/bin/sluice"
for library in $(ldd "$binary" | grep -o '/[^ ]*'); do
    install -D -m 0755 "$(readlink -f "$library")" "$stage$library"
done
install -d -m 0755 "$stage/var/lib/sluice" "$stage/tmp" "$stage/etc"
chmod 1777 "$stage/tmp"
printf 'root:x:0:0:root:/:/nonexistent\nsluice:x:10001:10001:sluice:/var/lib/sluice:/nonexistent\n' \
    > "$stage/etc/passwd"
printf 'root:x:0:\nsluice:x:10001:\n' > "$stage/etc/group"

container=$(b from scratch)
b copy --chown 0:0 "$container" "$stage/" / >/dev/null
# The data directory is the image user's (a copy sets the contents' owner, not the
# directory's; run as root, or under `buildah unshare`).
root=$(b mount "$container")
chown 10001:10001 "$root/var/lib/sluice"
b umount "$container" >/dev/null
b config \
    --user 10001:10001 \
    --env SLUICE_DATA_DIR=/var/lib/sluice \
    --env SLUICE_LISTEN=0.0.0.0:9092 \
    --env SLUICE_HTTP_LISTEN=0.0.0.0:8080 \
    --env SLUICE_HTTP_AUTH=none \
    --env SLUICE_LOG_FORMAT=json \
    --volume /var/lib/sluice \
    --port 9092/tcp --port 9093/tcp --port 8080/tcp \
    --entrypoint '["/usr/local/bin/sluice"]' \
    --cmd serve \
    --label org.opencontainers.image.title=sluice \
    --label "org.opencontainers.image.version=$("$binary" --version | awk '{print $2}')" \
    "$container"
b commit --quiet "$container" "$image"
if [ -n "${SLUICE_IMAGE_ARCHIVE:-}" ]; then
    rm -f "$SLUICE_IMAGE_ARCHIVE"
    b push --quiet "$image" "oci-archive:$SLUICE_IMAGE_ARCHIVE:$image" >/dev/null
fi
