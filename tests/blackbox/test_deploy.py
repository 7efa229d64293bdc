"""Deployment files (issue 17, docs/deploy.md): the Kubernetes manifests render with kustomize's
own library (target/kustomize, built from tests/tools/kustomize) and validate against the
Kubernetes schemas (kubernetes-validate, strict: an unknown field fails); their settings are
ones `sluice serve` takes (a node started with the single-node overlay's environment serves a
Kafka client); the three-node overlay is one controller per pod, its controller list built from
the pods' DNS names, one pod per zone; the systemd unit and the Dockerfile start the binary as
it is started here. The Helm chart (deploy/helm/sluice), rendered and linted with Helm's own
library (target/helmrender, from tests/tools/helm), gives the same objects as the overlays, and
takes its values."""

import json
import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import SLUICE_BIN, free_port
from helpers import consume_all, create_topic, produce_all, producer, wait_for_readyz

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE = REPO / "target" / "kustomize"
OVERLAYS = REPO / "deploy" / "kubernetes" / "overlays"
HELMRENDER = REPO / "target" / "helmrender"
CHART = REPO / "deploy" / "helm" / "sluice"
# Labels a Helm release adds (its instance, version, chart and manager): not in the overlays.
HELM_LABELS = {"app.kubernetes.io/instance", "app.kubernetes.io/version",
               "app.kubernetes.io/managed-by", "helm.sh/chart"}
KUBERNETES_VERSION = "1.34.0"


def render(overlay):
    assert KUSTOMIZE.exists(), f"{KUSTOMIZE} not built; scripts/test.sh builds it"
    done = subprocess.run([str(KUSTOMIZE), str(OVERLAYS / overlay)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def helm_render(*args):
    """The chart linted as `helm lint` does (a warning fails) and rendered as `helm template`
    does; (return code, documents or stderr)."""
    assert HELMRENDER.exists(), f"{HELMRENDER} not built; scripts/test.sh builds it"
    done = subprocess.run([str(HELMRENDER), "--lint", *args, str(CHART)], capture_output=True,
                          text=True, timeout=60)
    if done.returncode != 0:
        return done.returncode, done.stderr
    return 0, [d for d in yaml.safe_load_all(done.stdout) if d]


def without_helm_labels(value):
    """`value` with Helm's own labels taken out of every label set and selector, and each
    container's env in name order (kustomize's patch appends where the chart inserts)."""
    if isinstance(value, list):
        return [without_helm_labels(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if key in ("labels", "matchLabels", "selector") and isinstance(v, dict) and \
                all(isinstance(x, str) for x in v.values()):
            v = {k: x for k, x in v.items() if k not in HELM_LABELS}
        elif key == "env" and isinstance(v, list):
            v = sorted(v, key=lambda e: e["name"])
        out[key] = without_helm_labels(v)
    return out


def by_kind(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, [d["kind"] for d in docs]
    return found[0]


def container_env(statefulset):
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


@pytest.mark.parametrize("overlay", ["single", "three"])
def test_the_overlays_render_and_validate_against_the_kubernetes_schemas(overlay):
    docs = render(overlay)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["PodDisruptionBudget", "Service", "Service", "ServiceMonitor",
                     "StatefulSet"], kinds
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            continue  # the Prometheus Operator's CRD: checked below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    monitor = by_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    client = [d for d in docs if d["kind"] == "Service" and
              d["metadata"]["name"] == "sluice"][0]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        client["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in client["spec"]["ports"]}


def test_a_typo_fails_the_validation():
    statefulset = by_kind(render("single"), "StatefulSet")
    statefulset["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


def test_three_nodes_are_a_controller_each_one_per_zone():
    docs = render("three")
    sts = by_kind(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 3
    service = sts["spec"]["serviceName"]
    env = container_env(sts)
    controllers = env["SLUICE_CONTROLLERS"]["value"].split(",")
    assert controllers == [f"{i}@sluice-{i}.{service}:9093" for i in range(3)]
    assert env["SLUICE_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.labels['apps.kubernetes.io/pod-index']"
    assert env["SLUICE_ADVERTISED_LISTENER"]["value"] == f"$(POD_NAME).{service}:9092"
    headless = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == service][0]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    pod = sts["spec"]["template"]["spec"]
    term = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "topology.kubernetes.io/zone"
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert by_kind(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert env["SLUICE_DEFAULT_REPLICATION_FACTOR"]["value"] == "3"


def test_a_node_started_with_the_manifests_settings_serves(tmp_path):
    """The single-node overlay's environment, with the pod's values filled in as Kubernetes
    would and its addresses moved to free loopback ports, starts a node a client can use."""
    sts = by_kind(render("single"), "StatefulSet")
    port, controller, http = free_port(), free_port(), free_port()
    pod = {"POD_NAME": "sluice-0", "SLUICE_NODE_ID": "0"}
    env = {}
    for name, entry in container_env(sts).items():
        value = entry.get("value", pod.get(name))
        assert value is not None, f"{name} comes from a field the test does not know"
        env[name] = re.sub(r"\$\((\w+)\)", lambda m: pod[m.group(1)], value)
    assert env.pop("POD_NAME") == "sluice-0"
    env.update({
        "SLUICE_DATA_DIR": str(tmp_path / "data"),
        "SLUICE_LISTEN": f"127.0.0.1:{port}",
        "SLUICE_ADVERTISED_LISTENER": f"127.0.0.1:{port}",
        "SLUICE_CONTROLLER_LISTEN": f"127.0.0.1:{controller}",
        "SLUICE_CONTROLLERS": f"0@127.0.0.1:{controller}",
        "SLUICE_HTTP_LISTEN": f"127.0.0.1:{http}",
        "SLUICE_HTTP_ADVERTISED_URL": f"http://127.0.0.1:{http}",
    })
    container = sts["spec"]["template"]["spec"]["containers"][0]
    log = open(tmp_path / "sluice.log", "wb")
    proc = subprocess.Popen([str(SLUICE_BIN), *container["args"]], stdout=log, stderr=log,
                            env={**os.environ, **env})
    try:
        wait_for_readyz(proc, http, tmp_path / "sluice.log")

        class Node:
            bootstrap = f"127.0.0.1:{port}"
        create_topic(Node, "deployed", 3)
        produce_all(producer(Node), "deployed", [(b"k%d" % i, b"v%d" % i) for i in range(30)])
        assert len(consume_all(Node, "deployed", 30)) == 30
        log_line = (tmp_path / "sluice.log").read_text().splitlines()[0]
        assert json.loads(log_line), "SLUICE_LOG_FORMAT=json"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_unit_and_the_image_start_sluice_serve():
    unit = (REPO / "deploy" / "systemd" / "sluice.service").read_text()
    assert "ExecStart=/usr/local/bin/sluice serve" in unit
    assert "Environment=SLUICE_DATA_DIR=/var/lib/sluice" in unit
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/local/bin/sluice"]' in dockerfile and 'CMD ["serve"]' in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.M), "a non-root user"
    sts = by_kind(render("single"), "StatefulSet")
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
    # Every SLUICE_ variable the image, the unit and the manifests set is a setting sluice
    # knows: with them all (and a node id that stops the start after the settings are read),
    # the start fails on the node id, not on an unknown setting.
    settings = dict(re.findall(r"(SLUICE_[A-Z_]+)=(\S+)", unit))
    settings.update({k: v.strip('"') for k, v in re.findall(r"(SLUICE_[A-Z_]+)=(\S+)",
                                                             dockerfile)})
    for overlay in ("single", "three"):
        for name, entry in container_env(by_kind(render(overlay), "StatefulSet")).items():
            if name.startswith("SLUICE_"):
                settings[name] = entry.get("value", "0")
    settings["SLUICE_NODE_ID"] = "-1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    done = subprocess.run([str(SLUICE_BIN), "serve"], capture_output=True, text=True,
                          timeout=30, env={**env, **settings})
    assert done.returncode != 0
    assert "unknown setting" not in done.stderr and "node_id" in done.stderr, done.stderr


@pytest.mark.parametrize("overlay,replicas", [("single", 1), ("three", 3)])
def test_the_helm_chart_renders_what_the_overlays_do(overlay, replicas):
    code, docs = helm_render("--set", f"replicas={replicas}")
    assert code == 0, docs
    for doc in docs:
        if doc["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)

    def keyed(found):
        return {(d["kind"], d["metadata"]["name"]): without_helm_labels(d) for d in found}

    helm, kustomize = keyed(docs), keyed(render(overlay))
    assert helm.keys() == kustomize.keys()
    for key, doc in kustomize.items():
        assert helm[key] == doc, f"{key}: the chart and the overlay differ"
    # Helm's labels tell one release from another: its pods are selected by both.
    sts = by_kind(docs, "StatefulSet")
    assert sts["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "sluice", "app.kubernetes.io/instance": "sluice"}


def test_the_helm_chart_takes_its_values(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "image": {"repository": "registry.example/sluice", "tag": "0.1.0"},
        "extraEnv": [{"name": "SLUICE_AUTO_CREATE_TOPICS_ENABLE", "value": "false"}],
    }))
    code, docs = helm_render("--name", "events", "-f", str(values), "--set", "replicas=5",
                             "--set", "storage.className=fast",
                             "--set", "serviceMonitor.enabled=false")
    assert code == 0, docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert sorted(d["kind"] for d in docs) == ["PodDisruptionBudget", "Service", "Service",
                                               "StatefulSet"]
    sts = by_kind(docs, "StatefulSet")
    assert sts["metadata"]["name"] == "events-sluice"
    assert sts["spec"]["replicas"] == 5
    env = container_env(sts)
    assert env["SLUICE_CONTROLLERS"]["value"].split(",") == [
        f"{i}@events-sluice-{i}.events-sluice-headless:9093" for i in range(5)]
    assert env["SLUICE_DEFAULT_REPLICATION_FACTOR"]["value"] == "3"
    assert env["SLUICE_MIN_INSYNC_REPLICAS"]["value"] == "2"
    assert env["SLUICE_AUTO_CREATE_TOPICS_ENABLE"]["value"] == "false"
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/sluice:0.1.0"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"

    code, stderr = helm_render("--set", "replicas=0")
    assert code != 0 and "replicas must be 1 or more" in stderr
