"""Per member, the identity its agent runs as: a ServiceAccount `<pair>-agent-<member>`, a Role
that names only what that member's agent touches (`resourceNames`), and the RoleBinding
between them, all owned by the FailoverPair (deleted with it), as CloudNativePG does per
Cluster. An agent can then renew its own heartbeat and read the active Lease, but never write
its peer's member Lease (it would forge the peer's heartbeat), another pair's Leases, nor
anyone's `<pair>-active` (one foreign write there is an outage).

What the agent calls (agent/kubeio.py): get/list/watch of its member Lease and `<pair>-active`
(list and watch with a `metadata.name` field selector, which `resourceNames` admits), and for
the secondary of `<pair>-primary` too (its licensing clock); update of its own member Lease
(renewal, `replace`); get of its FailoverPair. Nothing else: no create, patch or delete.
Replication Jobs get a ServiceAccount `<pair>-replication` with no Role at all and no token
mounted.

Before, both members ran as one `<pair>-agent` that could update both member Leases. The
operator no longer creates it, and never deletes one that exists: pods still naming it keep
working until they are re-applied with their own account (docs/upgrade.md).
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes_asyncio import client

from pairwarden import GROUP, PLURAL
from pairwarden.controller.client import status_of
from pairwarden.protocol import LABEL_PAIR, MEMBERS, Member, active_lease_name, member_lease_name

log = logging.getLogger("pairwarden.controller")
RBAC = "rbac.authorization.k8s.io"


def agent_account(pair: str, member: Member) -> str:
    """The member's own account; `agent-` keeps it apart from the member Lease's name."""
    return f"{pair}-agent-{member}"


def replication_account(pair: str) -> str:
    return f"{pair}-replication"


def agent_rules(pair: str, member: Member) -> list[dict[str, Any]]:
    """The member agent's rules: every one with `resourceNames`, no `create`, `patch` or
    `delete`, `update` of its own member Lease only. It reads the other member's Lease: the
    secondary for the licensing clock, both for where the other's failsafe peer link listens
    (docs/protocol.md, learnt while the API server is there); reading it forges nothing."""
    own = member_lease_name(pair, member)
    peer = member_lease_name(pair, "secondary" if member == "primary" else "primary")
    readable = [own, active_lease_name(pair), peer]
    return [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": readable,
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [own],
            "verbs": ["update"],
        },
        {"apiGroups": [GROUP], "resources": [PLURAL], "resourceNames": [pair], "verbs": ["get"]},
    ]


def agent_objects(pair: str, owner: dict[str, Any]) -> list[dict[str, Any]]:
    """The ServiceAccounts, Roles and RoleBindings of one pair (pure)."""

    def meta(name: str) -> dict[str, Any]:
        return {"name": name, "labels": {LABEL_PAIR: pair}, "ownerReferences": [owner]}

    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(replication_account(pair)),
            "automountServiceAccountToken": False,
        }
    ]
    for member in MEMBERS:
        name = agent_account(pair, member)
        objects += [
            # The example pods say `automountServiceAccountToken: false` themselves and mount
            # a projected token into the agent container only; the account leaves the default
            # so a pod written for the shared `<pair>-agent` still gets its token when renamed.
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name)},
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "Role",
                "metadata": meta(name),
                "rules": agent_rules(pair, member),
            },
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "RoleBinding",
                "metadata": meta(name),
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name}],
            },
        ]
    return objects


async def ensure_agent_rbac(
    api: client.ApiClient, namespace: str, pair: str, owner: dict[str, Any]
) -> bool:
    """Create what is missing (an existing object is the pair's already: never rewritten).
    Refused (an operator installed without these rights): a warning, and the pair goes on;
    its agents then need an identity given by hand. True when all exist."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    create = {
        "ServiceAccount": core.create_namespaced_service_account,
        "Role": rbac.create_namespaced_role,
        "RoleBinding": rbac.create_namespaced_role_binding,
    }
    for body in agent_objects(pair, owner):
        for item in body.get("subjects", []):
            item["namespace"] = namespace
        try:
            await create[body["kind"]](namespace, body)
        except client.ApiException as exc:
            if status_of(exc) == 409:
                continue
            if status_of(exc) == 403:
                log.warning("%s/%s: may not create %s: %s", namespace, pair, body["kind"], exc)
                return False
            raise
    return True
