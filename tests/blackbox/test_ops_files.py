"""The operators' files in deploy/: the Prometheus alert rules and the Grafana dashboard parse,
have what Prometheus and Grafana need, and name only metrics a running broker exports (a
renamed metric would leave an alert that never fires or a panel that stays empty)."""

import json
import re
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "sluice-alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "sluice-dashboard.json"
# Metrics Prometheus makes itself, not the broker.
PROMETHEUS_OWN = {"up"}


def exported_families(broker):
    """The metric families /metrics declares (`# TYPE name kind`)."""
    with urllib.request.urlopen(broker.http + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def metric_names(expr):
    """The metric names a PromQL expression reads, as families (no `_total`, `_bucket`, ...).
    Label names, functions and keywords are left out: a name is a metric when it is not
    followed by `(` and not inside braces or a `by (...)`/`without (...)` list."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    names = set()
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr):
        name = m.group(1)
        if re.fullmatch(r"\d.*|le|and|or|unless|bool|offset", name):
            continue
        names.add(re.sub(r"_(total|bucket|count|sum|created)$", "", name))
    return names


def test_metric_names_are_found_in_promql():
    assert metric_names('histogram_quantile(0.99, sum by (api, le) '
                        '(rate(sluice_request_duration_seconds_bucket{api="Produce"}[5m]))) > 1') \
        == {"sluice_request_duration_seconds"}
    assert metric_names("sluice_data_dir_free_bytes / sluice_data_dir_total_bytes < 0.1") == \
        {"sluice_data_dir_free_bytes", "sluice_data_dir_total_bytes"}


def test_alert_rules_are_well_formed_and_name_exported_metrics(broker):
    rules = yaml.safe_load(ALERTS.read_text())
    exported = exported_families(broker)
    seen = set()
    for group in rules["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert rule["alert"] not in seen, f"alert {rule['alert']} twice"
            seen.add(rule["alert"])
            assert rule["labels"]["severity"] in ("warning", "critical"), rule
            assert rule["annotations"]["summary"], rule
            assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule
            missing = metric_names(rule["expr"]) - exported - PROMETHEUS_OWN
            assert not missing, f"{rule['alert']} reads metrics the broker does not export: {missing}"
    assert len(seen) >= 8


def test_dashboard_is_well_formed_and_names_exported_metrics(broker):
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_families(broker)
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']}: unknown variables {used - variables}"
            missing = metric_names(target["expr"]) - exported
            assert not missing, f"{panel['title']} reads metrics the broker does not export: {missing}"
