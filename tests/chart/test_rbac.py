"""Least privilege: the exact rules each identity gets, per scope (docs/install.md, "RBAC")."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import ChartCluster, Rendered

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

NAMESPACED: set[Grant] = {
    *{("pairwarden.io", "failoverpairs", v) for v in ("get", "list", "watch", "patch")},
    ("pairwarden.io", "failoverpairs/status", "patch"),
    *{
        ("coordination.k8s.io", "leases", v)
        for v in ("get", "list", "watch", "create", "update", "patch")
    },
    *{("", "pods", v) for v in ("get", "list", "watch", "patch")},
    *{("", "services", v) for v in ("get", "patch")},
    # the per-pair NetworkPolicy (controller/netpol.py), with networkPolicy.enabled (default)
    *{("networking.k8s.io", "networkpolicies", v) for v in ("get", "create", "patch")},
    ("", "events", "create"),
    *{("batch", "jobs", v) for v in ("list", "watch", "create", "delete")},
    ("", "secrets", "create"),  # never get: the operator reads no Secret
    # the per-pair agent identity (controller/rbac.py)
    ("", "serviceaccounts", "create"),
    ("rbac.authorization.k8s.io", "roles", "create"),
    ("rbac.authorization.k8s.io", "rolebindings", "create"),
}
PEERING = ("get", "list", "watch", "patch", "create")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "install.md"


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


def test_the_default_is_namespaced_with_no_cluster_wide_right(chart_cluster: ChartCluster) -> None:
    """By default the operator serves the release namespace (or memberNamespaces) with a Role
    there and holds nothing cluster-wide: kopf's scanning is off (controller/discovery.py)."""
    rendered = chart_cluster.render("defaults")
    assert rendered.of_kind("ClusterRole") == []
    assert rendered.of_kind("ClusterRoleBinding") == []
    (role,) = _named(rendered, "Role", "-operator")
    assert role["metadata"]["namespace"] == "pairwarden"
    assert grants(role) == NAMESPACED | {("kopf.dev", "kopfpeerings", v) for v in PEERING}
    (binding,) = _named(rendered, "RoleBinding", "-operator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pwdef-pairwarden-operator", "namespace": "pairwarden"}
    ]
    args = rendered.one("StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=pairwarden" in args and "--all-namespaces" not in args


def test_member_namespaces_are_served_when_no_watch_namespace_is_named(
    chart_cluster: ChartCluster,
) -> None:
    rendered = chart_cluster.render("single")  # memberNamespaces: [voice-c]
    (role,) = _named(rendered, "Role", "-operator")
    assert role["metadata"]["namespace"] == "voice-c"
    args = rendered.one("StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=voice-c"]


def test_clusterwide_operator_rules(chart_cluster: ChartCluster) -> None:
    rendered = chart_cluster.render("clusterwide")
    (role,) = rendered.of_kind("ClusterRole")
    peering = {("kopf.dev", "clusterkopfpeerings", v) for v in PEERING}
    assert grants(role) == NAMESPACED | peering  # no namespaces, no CRDs: scanning is off
    (binding,) = rendered.of_kind("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pwcw-pairwarden-operator", "namespace": "pwcw-system"}
    ]
    assert rendered.of_kind("Role") == []  # agent Roles are per pair, made by the operator


def test_namespaced_operator_rules(chart_cluster: ChartCluster) -> None:
    rendered = chart_cluster.render("namespaced")
    assert rendered.of_kind("ClusterRole") == []
    roles = _named(rendered, "Role", "-operator")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["voice-a", "voice-b"]
    peering = {("kopf.dev", "kopfpeerings", v) for v in PEERING}
    for role in roles:
        assert grants(role) == NAMESPACED | peering
    bindings = _named(rendered, "RoleBinding", "-operator")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["voice-a", "voice-b"]
    for binding in bindings:
        assert binding["subjects"][0]["namespace"] == "pwns-system"
    # members run where the operator watches, so the replication Jobs' identities are made there;
    # the agents' are per pair, made by the operator (controller/rbac.py), never by the chart
    jobs = _named(rendered, "ServiceAccount", "-replication")
    assert sorted(sa["metadata"]["namespace"] for sa in jobs) == ["voice-a", "voice-b"]
    assert _named(rendered, "ServiceAccount", "-agent") == []


def test_without_network_policies_the_operator_touches_no_policy(
    chart_cluster: ChartCluster,
) -> None:
    rendered = chart_cluster.render("single")
    (role,) = _named(rendered, "Role", "-operator")
    assert not {g for g in grants(role) if g[1] == "networkpolicies"}
    (operator,) = rendered.of_kind("StatefulSet")
    assert "--no-network-policies" in operator["spec"]["template"]["spec"]["containers"][0]["args"]


def test_no_role_but_the_operators_lacks_resource_names(rendered: Rendered) -> None:
    """Agents get per-pair Roles from the operator (controller/rbac.py), each rule with
    resourceNames; the chart renders no namespace-wide agent Role."""
    for role in rendered.of_kind("Role"):
        if role["metadata"]["name"].endswith("-operator"):
            continue
        assert all(rule.get("resourceNames") for rule in role["rules"]), role["metadata"]


def test_every_operator_verb_is_documented(chart_cluster: ChartCluster) -> None:
    """docs/install.md's RBAC table names each resource the operator may touch with every verb
    it is granted: a verb nobody can justify there is a verb to remove."""
    text = DOCS.read_text()
    table = text[text.index("## RBAC") : text.index("**Agent**")]
    documented: set[tuple[str, str]] = set()
    resources: list[str] = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("resource", "---"):
            continue
        named = [n.split(".")[0] for n in re.findall(r"`([^`]+)`", cells[0])]
        resources = named or resources
        documented |= {(r, v.strip()) for r in resources for v in cells[1].split(",")}
    roles = [
        *chart_cluster.render("defaults").of_kind("Role"),
        *chart_cluster.render("clusterwide").of_kind("ClusterRole"),
    ]
    assert roles
    for role in roles:
        for _, resource, verb in grants(role):
            assert (resource, verb) in documented, (resource, verb)


def test_the_operator_holds_every_right_it_grants_the_agents(chart_cluster: ChartCluster) -> None:
    """RBAC's escalation check lets the operator create each member's agent Role
    (controller/rbac.py) only while it holds each right in it itself, in that namespace: in
    both scopes, its own rules cover every (group, resource, verb) of the agents' rules
    (tests/realk8s checks the same against kube-apiserver)."""
    from pairwarden.controller import rbac
    from pairwarden.protocol import MEMBERS

    granted = set().union(*(grants({"rules": rbac.agent_rules("vm", m)}) for m in MEMBERS))
    assert granted
    for combo, kind in (("defaults", "Role"), ("clusterwide", "ClusterRole")):
        (role,) = _named(chart_cluster.render(combo), kind, "-operator")
        assert granted <= grants(role), (combo, granted - grants(role))
