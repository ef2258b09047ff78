"""Least privilege: the exact rules each identity gets, per scope (docs/install.md, "RBAC")."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import yaml

if TYPE_CHECKING:
    from conftest import ChartCluster, Rendered

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "helm" / "agent-role-per-pair.yaml"
Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

NAMESPACED: set[Grant] = {
    *{("pairwarden.io", "failoverpairs", v) for v in ("get", "list", "watch", "patch")},
    ("pairwarden.io", "failoverpairs/status", "patch"),
    *{
        ("coordination.k8s.io", "leases", v)
        for v in ("get", "list", "watch", "create", "update", "patch")
    },
    *{("", "pods", v) for v in ("get", "list", "watch", "patch")},
    *{("", "services", v) for v in ("get", "list", "watch", "patch")},
    *{(g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch")},
    *{("batch", "jobs", v) for v in ("get", "list", "watch", "create", "delete")},
    ("", "secrets", "get"),
    ("", "secrets", "create"),
}
CLUSTER: set[Grant] = {
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
    *{("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")},
}
PEERING = ("get", "list", "watch", "patch", "create")
AGENT: set[Grant] = {
    *{("coordination.k8s.io", "leases", v) for v in ("get", "list", "watch", "update", "patch")},
    *{("pairwarden.io", "failoverpairs", v) for v in ("get", "list", "watch")},
}


def grants(role: dict[str, Any]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in role.get("rules", [])
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _named(rendered: Rendered, kind: str, suffix: str) -> list[dict[str, Any]]:
    return [o for o in rendered.of_kind(kind) if o["metadata"]["name"].endswith(suffix)]


def test_no_wildcards_anywhere(rendered: Rendered) -> None:
    for kind in ("Role", "ClusterRole"):
        for role in rendered.of_kind(kind):
            for group, resource, verb in grants(role):
                assert "*" not in (group, resource, verb), role["metadata"]["name"]
                assert verb not in ("escalate", "bind", "impersonate")


def test_clusterwide_operator_rules(chart_cluster: ChartCluster) -> None:
    rendered = chart_cluster.render("defaults")
    (role,) = rendered.of_kind("ClusterRole")
    peering = {("kopf.dev", "clusterkopfpeerings", v) for v in PEERING}
    assert grants(role) == NAMESPACED | CLUSTER | peering
    (binding,) = rendered.of_kind("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pwdef-pairwarden-operator", "namespace": "pairwarden"}
    ]
    assert [r["metadata"]["name"] for r in rendered.of_kind("Role")] == ["pwdef-pairwarden-agent"]


def test_namespaced_operator_rules(chart_cluster: ChartCluster) -> None:
    rendered = chart_cluster.render("namespaced")
    (cluster_role,) = rendered.of_kind("ClusterRole")
    assert grants(cluster_role) == CLUSTER
    roles = _named(rendered, "Role", "-operator")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["voice-a", "voice-b"]
    peering = {("kopf.dev", "kopfpeerings", v) for v in PEERING}
    for role in roles:
        assert grants(role) == NAMESPACED | peering
    bindings = _named(rendered, "RoleBinding", "-operator")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["voice-a", "voice-b"]
    for binding in bindings:
        assert binding["subjects"][0]["namespace"] == "pwns-system"
    # members run where the operator watches, so agent identities are created there
    agents = _named(rendered, "ServiceAccount", "-agent")
    assert sorted(sa["metadata"]["namespace"] for sa in agents) == ["voice-a", "voice-b"]


def test_agent_role_and_binding(rendered: Rendered) -> None:
    roles = _named(rendered, "Role", "-agent")
    assert roles
    for role in roles:
        assert grants(role) == AGENT
    for binding in _named(rendered, "RoleBinding", "-agent"):
        (subject,) = binding["subjects"]
        assert subject["name"].endswith("-agent")
        assert subject["namespace"] == binding["metadata"]["namespace"]
    assert len(_named(rendered, "RoleBinding", "-agent")) == len(roles)


def test_replication_jobs_get_no_api_access(rendered: Rendered) -> None:
    accounts = _named(rendered, "ServiceAccount", "-replication")
    assert accounts
    for account in accounts:
        assert account["automountServiceAccountToken"] is False
    names = {a["metadata"]["name"] for a in accounts}
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in rendered.of_kind(kind):
            assert not {s["name"] for s in binding["subjects"]} & names


def test_operator_token_is_mounted_and_others_are_explicit(rendered: Rendered) -> None:
    operator = _named(rendered, "ServiceAccount", "-operator")
    assert len(operator) == 1
    assert operator[0]["metadata"]["namespace"] == rendered.namespace


def test_per_pair_agent_role_example_pins_resource_names() -> None:
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33.0", strict=True)
    role = next(d for d in docs if d["kind"] == "Role")
    pinned = [r for r in role["rules"] if r.get("resourceNames")]
    assert pinned, "the example must restrict Leases by resourceNames"
    writes = {v for r in role["rules"] for v in r["verbs"] if v in ("update", "patch")}
    assert writes
    for rule in role["rules"]:
        if {"update", "patch"} & set(rule["verbs"]):
            assert rule.get("resourceNames"), "writes must name the member's own Lease"
