"""Per member, the agent's own identity: a Role that names only what that member's agent
touches, bound to the member's own ServiceAccount, owned by the pair; Jobs get no API rights."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as sync_client

from pairwarden.controller import jobs, rbac
from pairwarden.kube import async_api_client
from pairwarden.protocol import MEMBERS, Member

OWNER = {"apiVersion": "pairwarden.io/v1", "kind": "FailoverPair", "name": "vm", "uid": "u-1"}


def _names(rules: list[dict[str, Any]], verb: str) -> set[str]:
    return {n for r in rules if verb in r["verbs"] for n in r["resourceNames"]}


@pytest.mark.parametrize(
    ("member", "readable"),
    [
        # Each reads the other's Lease: where its failsafe peer link listens (and, for the
        # secondary, the primary's renewals: its licensing clock).
        ("primary", {"vm-primary", "vm-active", "vm-secondary"}),
        ("secondary", {"vm-secondary", "vm-active", "vm-primary"}),
    ],
)
def test_a_member_updates_only_its_own_lease_and_reads_only_what_it_must(
    member: Member, readable: set[str]
) -> None:
    rules = rbac.agent_rules("vm", member)
    assert all(rule["resourceNames"] for rule in rules)
    assert {verb for rule in rules for verb in rule["verbs"]} == {"get", "list", "watch", "update"}
    leases = [r for r in rules if r["resources"] == ["leases"]]
    for verb in ("get", "list", "watch"):
        assert _names(leases, verb) == readable
    assert _names(leases, "update") == {f"vm-{member}"}  # never the peer's, nor vm-active
    pairs = [r for r in rules if r["resources"] == ["failoverpairs"]]
    assert pairs == [
        {"apiGroups": ["pairwarden.io"], "resources": ["failoverpairs"],
         "resourceNames": ["vm"], "verbs": ["get"]}
    ]  # fmt: skip
    assert len(rules) == len(leases) + len(pairs)


def test_each_member_has_its_own_account_role_and_binding_all_owned_by_the_pair() -> None:
    objects = rbac.agent_objects("vm", OWNER)
    assert all(o["metadata"]["ownerReferences"] == [OWNER] for o in objects)
    by_kind: dict[str, set[str]] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], set()).add(o["metadata"]["name"])
    agents = {"vm-agent-primary", "vm-agent-secondary"}
    assert by_kind == {
        "ServiceAccount": agents | {"vm-replication"},
        "Role": agents,
        "RoleBinding": agents,
    }
    for member in MEMBERS:
        name = rbac.agent_account("vm", member)
        role = next(o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == name)
        assert role["rules"] == rbac.agent_rules("vm", member)
        binding = next(
            o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == name
        )
        assert binding["roleRef"] == {"apiGroup": rbac.RBAC, "kind": "Role", "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name}]
    # The Jobs' account mounts no token; the agents' leave it to the pod (the example gives it
    # to the agent container only).
    (jobs_account,) = [o for o in objects if o["metadata"]["name"] == "vm-replication"]
    assert jobs_account["automountServiceAccountToken"] is False
    # Never a member Lease's own name: `<pair>-agent-<member>`.
    assert not agents & {"vm-primary", "vm-secondary", "vm-active"}


def test_a_replication_job_pod_is_restricted_and_mounts_no_api_token() -> None:
    job = jobs.ReplicationJob(
        namespace="ns",
        pair="vm",
        source_url="http://a",
        target_url="http://b",
        secret_name="vm-replication-token",
        image="pairwarden/agent:dev",
    )
    pod = jobs.job_body("vm-replicate-1", job)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    # The token file: group-readable for the image's gid (fsGroup), by no one else.
    assert pod["volumes"][0]["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == 10001


async def test_ensure_creates_once_and_keeps_what_exists(
    sandbox: Any, api_client: sync_client.ApiClient, namespace: str
) -> None:
    api = await async_api_client(str(sandbox.kubeconfig_path))
    try:
        assert await rbac.ensure_agent_rbac(api, namespace, "vm", OWNER)
        assert await rbac.ensure_agent_rbac(api, namespace, "vm", OWNER)  # all exist: 409s
    finally:
        await api.close()
    rbac_api = sync_client.RbacAuthorizationV1Api(api_client)
    for member in MEMBERS:
        name = rbac.agent_account("vm", member)
        role = rbac_api.read_namespaced_role(name, namespace)
        assert all(rule.resource_names for rule in role.rules)
        update = {n for r in role.rules if "update" in r.verbs for n in r.resource_names}
        assert update == {f"vm-{member}"}
        binding = rbac_api.read_namespaced_role_binding(name, namespace)
        assert binding.subjects[0].name == name and binding.subjects[0].namespace == namespace
    account = sync_client.CoreV1Api(api_client).read_namespaced_service_account(
        "vm-replication", namespace
    )
    assert account.automount_service_account_token is False
