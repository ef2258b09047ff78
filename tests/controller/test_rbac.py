"""Per pair, the agents' own identity: a Role that names only the pair's Leases and
FailoverPair, bound to the pair's ServiceAccount, owned by the pair; Jobs get no API rights."""

from __future__ import annotations

from typing import Any

from kubernetes import client as sync_client

from pairwarden.controller import jobs, rbac
from pairwarden.kube import async_api_client

OWNER = {"apiVersion": "pairwarden.io/v1", "kind": "FailoverPair", "name": "vm", "uid": "u-1"}


def test_every_agent_rule_names_its_resources_and_grants_no_create_or_delete() -> None:
    rules = rbac.agent_rules("vm")
    assert all(rule["resourceNames"] for rule in rules)
    assert not {"create", "delete", "deletecollection", "patch", "*"} & {
        verb for rule in rules for verb in rule["verbs"]
    }
    readable = {n for r in rules if "get" in r["verbs"] for n in r["resourceNames"]}
    assert {"vm-primary", "vm-secondary", "vm-active", "vm"} <= readable
    writable = {n for r in rules if "update" in r["verbs"] for n in r["resourceNames"]}
    assert writable == {"vm-primary", "vm-secondary"}  # never the active Lease


def test_every_object_is_owned_by_the_pair_and_jobs_have_no_token() -> None:
    objects = rbac.agent_objects("vm", OWNER)
    assert {o["kind"] for o in objects} == {"ServiceAccount", "Role", "RoleBinding"}
    assert all(o["metadata"]["ownerReferences"] == [OWNER] for o in objects)
    replication = next(o for o in objects if o["metadata"]["name"] == "vm-replication")
    assert replication["automountServiceAccountToken"] is False


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
    role = sync_client.RbacAuthorizationV1Api(api_client).read_namespaced_role(
        "vm-agent", namespace
    )
    assert all(rule.resource_names for rule in role.rules)
    binding = sync_client.RbacAuthorizationV1Api(api_client).read_namespaced_role_binding(
        "vm-agent", namespace
    )
    assert binding.subjects[0].name == "vm-agent" and binding.subjects[0].namespace == namespace
    account = sync_client.CoreV1Api(api_client).read_namespaced_service_account(
        "vm-replication", namespace
    )
    assert account.automount_service_account_token is False
