"""The PrometheusRule's alerts, checked by promtool: syntax (`check rules`) and behaviour on
synthetic series (`test rules`, alerts_test.yaml). `make test` installs promtool (Debian's
`prometheus` package) when it is missing; without it these tests skip, saying so, except
in CI (CI=true), where they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import ChartCluster

HERE = Path(__file__).resolve().parent
ALERTS = {
    "PairwardenNoActiveMember",
    "PairwardenSplitBrainSuspected",
    "PairwardenReplicationLagging",
    "PairwardenLicensingNearExpiry",
    "PairwardenFlappingHeld",
    "PairwardenOperatorDown",
}
METRICS = {
    "pairwarden_active_member",
    "pairwarden_condition",
    "pairwarden_replication_lag_seconds",
    "pairwarden_licensing_seconds_left",
}


@pytest.fixture(scope="module")
def rule_groups(chart_cluster: ChartCluster) -> dict[str, Any]:
    rule = chart_cluster.render("monitoring").one("PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = (
            "promtool not found: `make tools` installs it (apt-get install prometheus, as root)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the alert tests")
        pytest.skip(reason)
    return path


def _alerts(groups: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups["groups"] for r in g["rules"] if "alert" in r}


def test_the_six_alerts_use_the_operator_metrics(rule_groups: dict[str, Any]) -> None:
    alerts = _alerts(rule_groups)
    assert set(alerts) == ALERTS
    exprs = " ".join(a["expr"] for a in alerts.values())
    for metric in METRICS:
        assert metric in exprs
    for alert in alerts.values():
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_promtool_checks_the_rules(
    rule_groups: dict[str, Any], promtool: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups, sort_keys=False))
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout + done.stderr


def test_promtool_unit_tests_fire_the_alerts(
    rule_groups: dict[str, Any], promtool: str, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups, sort_keys=False))
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    done = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
