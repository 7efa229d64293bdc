#!/usr/bin/env bash
# Runs every test Sluice has: formatting, lints, unit and property tests, the architecture
# test, the chaos scenarios (tests/chaos), and black-box tests that drive the real `sluice`
# binary with independent Kafka clients
# (librdkafka through confluent-kafka, kafka-python, kcat, the Go clients franz-go and sarama,
# Apache Kafka's Java client and Kafka Streams, KafkaJS and Confluent's JavaScript client).
# Installs what the tests need: Debian packages with apt-get, Python clients into .venv, Go
# modules, Maven dependencies, npm packages. Fails loudly; never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=()
command -v kcat >/dev/null 2>&1 || apt_packages+=(kcat)
# The chaos scenarios make a network namespace of their own (unshare) with addresses (ip).
command -v ip >/dev/null 2>&1 || apt_packages+=(iproute2)
command -v unshare >/dev/null 2>&1 || apt_packages+=(util-linux)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_packages+=(python3-venv)
# sluice-bench's librdkafka speaks TLS and SASL (the `--listener` figures) through OpenSSL.
[ -f /usr/include/openssl/ssl.h ] || apt_packages+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || apt_packages+=(pkg-config)
# The web console's tests drive Debian's headless Chromium through its driver (Selenium).
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)
[ -x /usr/bin/chromedriver ] || apt_packages+=(chromium-driver)
# The container image is built from scratch with buildah (scripts/image.sh, test_container.py).
command -v buildah >/dev/null 2>&1 || apt_packages+=(buildah)
if ((${#apt_packages[@]})); then
    echo "==> [${SECONDS}s] installing Debian packages: ${apt_packages[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${apt_packages[@]}"
fi

echo "==> [${SECONDS}s] Python clients (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r tests/blackbox/requirements.txt

echo "==> [${SECONDS}s] stream processors, each in its own venv (.venv-quix: Quix Streams; .venv-faust: faust)"
for processor in quix faust; do
    [ -x ".venv-$processor/bin/python" ] || python3 -m venv ".venv-$processor"
    ".venv-$processor/bin/pip" install -q --disable-pip-version-check \
        -r "tests/blackbox/processors/$processor-requirements.txt"
done

for tool in go java mvn node npm; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed: the client drivers need it" >&2; exit 1; }
done

# The client drivers and the deployment tests' renderers (Go, Java, JavaScript) build in the
# background while cargo works: cargo leaves a core idle at times (build scripts, the last
# links, test binaries run one after another) and these builds are mostly one process each.
# Only the black-box suite needs them; their output is shown, and a failure stops the run,
# before it starts.
build_drivers() {
    set -euo pipefail
    echo "==> [${SECONDS}s] Go clients (franz-go, sarama): tests/clients/go -> target/goclient"
    (cd tests/clients/go && go build -o ../../../target/goclient .)
    echo "==> [${SECONDS}s] kustomize (its library, for the Kubernetes manifests' tests): tests/tools/kustomize -> target/kustomize"
    (cd tests/tools/kustomize && go build -o ../../../target/kustomize .)
    echo "==> [${SECONDS}s] Helm (its library, for the Helm chart's tests): tests/tools/helm -> target/helmrender"
    (cd tests/tools/helm && go build -o ../../../target/helmrender .)
    echo "==> [${SECONDS}s] Java clients (kafka-clients, Kafka Streams 4.4): tests/clients/java -> target/javaclient"
    mvn -q -B -f tests/clients/java/pom.xml compile dependency:copy-dependencies
    echo "==> [${SECONDS}s] JavaScript clients (KafkaJS, @confluentinc/kafka-javascript): tests/clients/js"
    # Confluent's client compiles its bundled librdkafka against the system's libraries
    # (CKJS_LINKING=dynamic): its prebuilt binary and its static dependencies download from
    # GitHub, which these machines do not reach.
    if [ ! -f tests/clients/js/node_modules/@confluentinc/kafka-javascript/build/Release/confluent-kafka-javascript.node ]; then
        (cd tests/clients/js && CKJS_LINKING=dynamic npm ci --no-audit --no-fund --loglevel=error)
    fi
    echo "==> [${SECONDS}s] client drivers built"
}
mkdir -p target
drivers_log=target/client-drivers.log
echo "==> [${SECONDS}s] client drivers: building in the background (${drivers_log})"
(build_drivers) > "$drivers_log" 2>&1 &
drivers_pid=$!
trap 'kill "$drivers_pid" 2>/dev/null || true' EXIT

echo "==> [${SECONDS}s] cargo fmt --check"
cargo fmt --all --check
echo "==> [${SECONDS}s] cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> [${SECONDS}s] cargo build"
cargo build --workspace --bins --quiet
echo "==> [${SECONDS}s] cargo test"
cargo test --workspace --quiet
echo "==> [${SECONDS}s] client drivers: waiting for the background build"
if ! wait "$drivers_pid"; then
    cat "$drivers_log"
    echo "building the client drivers failed (above)" >&2
    exit 1
fi
cat "$drivers_log"
# Both suites run in two processes (pytest-xdist): a test spends most of its time waiting on
# brokers and clients, so two at once keep both cores busy. Each process hands out ports of
# its own (conftest.free_port); a chaos scenario has a network namespace of its own. The
# slowest tests are listed after each suite; each stage line says when it started.
pytest_args=(-q -p no:cacheprovider -W ignore::DeprecationWarning -n 2 --durations=15)
echo "==> [${SECONDS}s] black-box tests against target/debug/sluice"
SLUICE_BIN="$PWD/target/debug/sluice" .venv/bin/pytest tests/blackbox "${pytest_args[@]}"
echo "==> [${SECONDS}s] chaos scenarios (tests/chaos: three brokers in a network namespace, faults, a history checker)"
SLUICE_BIN="$PWD/target/debug/sluice" .venv/bin/pytest tests/chaos "${pytest_args[@]}"
echo "==> every test passed in ${SECONDS}s"
