"""The sandbox's RBAC rules as tables (sandbox/authz.py): pure, no server. The conformance tests
in test_auth.py check the same behaviour against kube-apiserver 1.20."""

from __future__ import annotations

from typing import Any

import pytest

from pairwarden_testbed.sandbox.authn import ANONYMOUS, User, serviceaccount_user
from pairwarden_testbed.sandbox.authz import (
    Attributes,
    compact,
    compact_string,
    covers,
    forbidden,
    rule_allows,
    subject_applies,
)

AGENT = serviceaccount_user("voice", "vm-agent")
LEASES = {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}


def ask(verb: str, resource: str = "leases", name: str = "", **kw: Any) -> Attributes:
    group = kw.pop("group", "coordination.k8s.io")
    return Attributes(AGENT, verb, kw.pop("namespace", "voice"), group, resource, name=name, **kw)


@pytest.mark.parametrize(
    ("rule", "attrs", "allowed"),
    [
        ({**LEASES, "verbs": ["get"]}, ask("get", name="a"), True),
        ({**LEASES, "verbs": ["get"]}, ask("update", name="a"), False),
        ({**LEASES, "verbs": ["*"]}, ask("delete", name="a"), True),
        ({**LEASES, "verbs": ["get"], "resourceNames": ["a"]}, ask("get", name="a"), True),
        ({**LEASES, "verbs": ["get"], "resourceNames": ["a"]}, ask("get", name="b"), False),
        # a list of everything has no name: resourceNames never admit it
        ({**LEASES, "verbs": ["list"], "resourceNames": ["a"]}, ask("list"), False),
        ({"apiGroups": [""], "resources": ["leases"], "verbs": ["get"]}, ask("get"), False),
        ({"apiGroups": ["*"], "resources": ["leases"], "verbs": ["get"]}, ask("get"), True),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
         ask("get", "pods", "p", group="", subresource="log"), False),
        ({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
         ask("get", "pods", "p", group="", subresource="log"), True),
        ({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
         ask("get", "pods", "p", group=""), False),
        ({"apiGroups": ["pairwarden.io"], "resources": ["*/status"], "verbs": ["patch"]},
         ask("patch", "failoverpairs", "vm", group="pairwarden.io", subresource="status"), True),
        ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
         ask("patch", "failoverpairs", "vm", group="pairwarden.io", subresource="status"), True),
        ({"nonResourceURLs": ["/version"], "verbs": ["get"]},
         Attributes(ANONYMOUS, "get", path="/version"), True),
        ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]},
         Attributes(ANONYMOUS, "get", path="/apis/batch/v1"), True),
        ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]},
         Attributes(ANONYMOUS, "get", path="/api"), False),
        ({"nonResourceURLs": ["*"], "verbs": ["get"]},
         Attributes(ANONYMOUS, "post", path="/api"), False),
        # a resource rule never allows a path, nor a path rule a resource
        ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
         Attributes(ANONYMOUS, "get", path="/api"), False),
        ({"nonResourceURLs": ["*"], "verbs": ["*"]}, ask("get"), False),
    ],
)  # fmt: skip
def test_rule_allows(rule: dict[str, Any], attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(rule, attrs) is allowed


@pytest.mark.parametrize(
    ("subject", "namespace", "applies"),
    [
        ({"kind": "ServiceAccount", "name": "vm-agent", "namespace": "voice"}, "", True),
        ({"kind": "ServiceAccount", "name": "vm-agent"}, "voice", True),  # the binding's
        ({"kind": "ServiceAccount", "name": "vm-agent"}, "", False),
        ({"kind": "ServiceAccount", "name": "vm-agent", "namespace": "other"}, "voice", False),
        ({"kind": "User", "name": "system:serviceaccount:voice:vm-agent"}, "", True),
        ({"kind": "Group", "name": "system:serviceaccounts"}, "", True),
        ({"kind": "Group", "name": "system:serviceaccounts:voice"}, "", True),
        ({"kind": "Group", "name": "system:serviceaccounts:other"}, "", False),
        ({"kind": "Group", "name": "system:authenticated"}, "", True),
        ({"kind": "Group", "name": "system:unauthenticated"}, "", False),
    ],
)
def test_subject_applies(subject: dict[str, str], namespace: str, applies: bool) -> None:
    assert subject_applies(subject, AGENT, namespace) is applies


def test_anonymous_is_unauthenticated_only() -> None:
    assert subject_applies({"kind": "Group", "name": "system:unauthenticated"}, ANONYMOUS, "")
    assert not subject_applies({"kind": "Group", "name": "system:authenticated"}, ANONYMOUS, "")


@pytest.mark.parametrize(
    ("owned", "wanted", "missing"),
    [
        ([{**LEASES, "verbs": ["get", "update"]}], [{**LEASES, "verbs": ["get"]}], []),
        ([{**LEASES, "verbs": ["get"]}], [{**LEASES, "verbs": ["get", "update"]}],
         [{**LEASES, "verbs": ["update"]}]),
        # holding named Leases does not cover all Leases; holding all covers the named ones
        ([{**LEASES, "verbs": ["get"], "resourceNames": ["a"]}], [{**LEASES, "verbs": ["get"]}],
         [{**LEASES, "verbs": ["get"]}]),
        ([{**LEASES, "verbs": ["get"]}], [{**LEASES, "verbs": ["get"], "resourceNames": ["a"]}],
         []),
        ([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
         [{"apiGroups": ["x"], "resources": ["y/status"], "verbs": ["patch"]}], []),
        ([{"apiGroups": ["x"], "resources": ["*/status"], "verbs": ["patch"]}],
         [{"apiGroups": ["x"], "resources": ["y/status"], "verbs": ["patch"]}], []),
        ([{"apiGroups": ["x"], "resources": ["y"], "verbs": ["patch"]}],
         [{"apiGroups": ["x"], "resources": ["y/status"], "verbs": ["patch"]}],
         [{"apiGroups": ["x"], "resources": ["y/status"], "verbs": ["patch"]}]),
        ([{"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}],
         [{"nonResourceURLs": ["/apis/batch"], "verbs": ["get"]}], []),
    ],
)  # fmt: skip
def test_covers(
    owned: list[dict[str, Any]], wanted: list[dict[str, Any]], missing: list[dict[str, Any]]
) -> None:
    assert covers(owned, wanted) == missing


def test_compact_merges_verbs_of_one_target_and_prints_as_go_does() -> None:
    missing = covers([], [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}])
    (merged,) = compact(missing)
    assert compact_string(merged) == '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}'
    rule = {"nonResourceURLs": ["/x"], "verbs": ["get"]}
    assert compact_string(rule) == '{NonResourceURLs:["/x"], Verbs:["get"]}'


def test_forbidden_names_user_verb_resource_and_scope() -> None:
    err = forbidden(ask("update", name="b"))
    assert err.code == 403 and err.reason == "Forbidden"
    assert err.message == (
        'leases.coordination.k8s.io "b" is forbidden: User "system:serviceaccount:voice:vm-agent" '
        'cannot update resource "leases" in API group "coordination.k8s.io" in the namespace '
        '"voice"'
    )
    cluster = forbidden(Attributes(User("u", ()), "list", resource="namespaces"))
    assert cluster.message == (
        'namespaces is forbidden: User "u" cannot list resource "namespaces" in API group "" at '
        "the cluster scope"
    )
