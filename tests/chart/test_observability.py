"""What people watch: every alert links a runbook that exists, the Grafana dashboard queries
only metrics the code exports (through its data-source variable), the agents are scraped by a
PodMonitor, and docs/metrics.md lists every metric with names by Prometheus' conventions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, generate_latest

import pairwarden.controller.metrics  # noqa: F401  (registers the operator's metrics)
from pairwarden.agent.metrics import AgentMetrics

if TYPE_CHECKING:
    from conftest import ChartCluster

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "pairwarden" / "dashboards" / "pairwarden.json"
METRIC = re.compile(r"\bpairwarden_[a-z_]+")


def exported() -> dict[str, str]:
    """Metric name -> type, as the operator and agent expose them."""
    text = generate_latest(REGISTRY).decode() + generate_latest(AgentMetrics().registry).decode()
    types = re.findall(r"^# TYPE (pairwarden_\w+) (\w+)$", text, re.MULTILINE)
    return {name: kind for name, kind in types if not name.endswith("_created")}


def _series_of(name: str) -> str:
    """The metric family of a series name in a query (histograms' _bucket/_sum/_count)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in exported():
            return name[: -len(suffix)]
    return name


def test_names_follow_prometheus_conventions() -> None:
    metrics = exported()
    assert metrics["pairwarden_build_info"] == "gauge"
    for name, kind in metrics.items():
        assert "percent" not in name, f"{name}: export a ratio, not a percent"
        assert (kind == "counter") == name.endswith("_total"), f"{name} is a {kind}"


def test_metrics_reference_lists_every_metric() -> None:
    listed = set(METRIC.findall((ROOT / "docs" / "metrics.md").read_text()))
    missing = set(exported()) - listed
    assert not missing, f"docs/metrics.md lacks {sorted(missing)}"


def test_dashboard_queries_exported_metrics_through_its_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            queried |= {_series_of(n) for n in METRIC.findall(target["expr"])}
    for variable in ("namespace", "pair"):
        queried |= set(METRIC.findall(variables[variable]["definition"]))
    unknown = queried - set(exported())
    assert not unknown, f"the dashboard queries metrics the code does not export: {unknown}"
    # the list: per pair, who is active and every clock
    wanted = {
        "pairwarden_active_member",
        "pairwarden_epoch",
        "pairwarden_role_changes_total",
        "pairwarden_reaction_seconds",
        "pairwarden_heartbeat_age_seconds",
        "pairwarden_licensing_seconds_left",
        "pairwarden_replication_lag_seconds",
    }
    assert wanted <= queried


def _monitoring(chart_cluster: ChartCluster) -> Any:
    return chart_cluster.render("monitoring")


def test_every_alert_links_its_runbook(chart_cluster: ChartCluster) -> None:
    rule = _monitoring(chart_cluster).one("PrometheusRule")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert len(alerts) == 6
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.endswith(f"/docs/runbooks/{alert['alert']}.md")
        page = ROOT / "docs" / "runbooks" / f"{alert['alert']}.md"
        assert page.is_file(), f"{url}: no such runbook"
        assert page.read_text().startswith(f"# {alert['alert']}")


def test_dashboard_configmap_and_agent_pod_monitor(chart_cluster: ChartCluster) -> None:
    rendered = _monitoring(chart_cluster)
    (configmap,) = [
        c for c in rendered.of_kind("ConfigMap") if "dashboard" in c["metadata"]["name"]
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["pairwarden.json"]) == json.loads(DASHBOARD.read_text())
    monitor = rendered.one("PodMonitor")
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [rendered.namespace]
    assert monitor["spec"]["selector"]["matchExpressions"] == [
        {"key": "pairwarden.io/pair", "operator": "Exists"}
    ]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
