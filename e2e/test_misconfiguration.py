"""Misconfiguration speaks, from the outside: a FailoverPair whose pods and Service do not
exist (a typo, or the pods applied in another namespace) is reported by the operator itself,
MembersResolved=False naming each missing pod with a Warning Event, the Ready and Members
printer columns, never Healthy, and by `kubectl pairwarden doctor`, each finding naming its
fix. On the sandbox with the real operator process."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from pairwarden import plugin
from pairwarden_testbed.localcluster import LocalCluster, failover_pair, wait_until


def _condition(pair: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (pair.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def test_a_pair_naming_pods_and_a_service_that_do_not_exist_says_so(
    cluster: LocalCluster,
) -> None:
    cluster.create(failover_pair(name="ghost", service="ghost-calls"))

    def missing() -> dict[str, Any] | None:
        found = _condition(cluster.pair("ghost"), "MembersResolved")
        return found if found.get("reason") == "PodMissing" else None

    resolved = wait_until(missing, timeout=60)
    assert resolved["status"] == "False"
    assert "pod ghost-primary does not exist" in resolved["message"]
    assert "pod ghost-secondary does not exist" in resolved["message"]
    assert cluster.pair("ghost")["status"].get("phase", "Pending") == "Pending"
    wait_until(lambda: any(e.reason == "PodMissing" for e in cluster.events("ghost")), 30)
    warning = next(e for e in cluster.events("ghost") if e.reason == "PodMissing")
    assert warning.type == "Warning" and "ghost-primary" in warning.message

    out = io.StringIO()
    args = ["doctor", "ghost", "-n", cluster.namespace, "--kubeconfig", cluster.kubeconfig]
    with contextlib.redirect_stdout(out):
        assert plugin.main(args) == 0
    report = out.getvalue()
    assert f"FailoverPair {cluster.namespace}/ghost:" in report
    assert "pod ghost-primary does not exist" in report and "podName" in report
