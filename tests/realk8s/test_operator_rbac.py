"""The operator's token cannot own the cluster (issue 25): the chart's RBAC, as its default
values render it, applied to the real kube-apiserver 1.20.2, and every escalation found by the
probe tried AS the operator's ServiceAccount (its token Secret's token).

Default (namespaced): every escalation into kube-system is 403, so is a RoleBinding to
cluster-admin in a served namespace (RBAC's escalation check: the operator does not hold
cluster-admin's rights). What RBAC cannot refuse is a Job in a served namespace running as
another of that namespace's ServiceAccounts: RBAC has no condition on a Job's pod template;
the chart's ValidatingAdmissionPolicy refuses it on 1.30+ (nothing does on 1.20).

`operator.watch.allNamespaces: true` (cluster-wide, an explicit choice): the same escalations
into kube-system are ALLOWED on 1.20, exactly as docs/install.md ("RBAC") says; the test pins
that statement. On 1.30+ the chart's policy refuses the Job, the pod image, the foreign Lease
write, the Role and its binding; the Service selector and a new Lease under an unused name stay
allowed (patching Service selectors and creating Leases is the operator's work).

Every request is a server-side dry run (`dryRun=All`): authorized, admitted and validated as a
real one (RBAC's escalation check included), never stored, so the allowed ones in kube-system
change nothing there."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, utils
from kubernetes.client.rest import ApiException

from pairwarden.controller import rbac
from pairwarden.kube import async_api_client
from pairwarden.protocol import MEMBERS

pytestmark = pytest.mark.realk8s

RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
SCOPES: dict[str, dict[str, Any]] = {
    "namespaced": {},  # the chart's defaults
    "clusterwide": {"operator": {"watch": {"allNamespaces": True}}},
}
DRY = "All"
SYSTEM = "kube-system"
RBAC_GROUP = "rbac.authorization.k8s.io"
STRATEGIC = "application/strategic-merge-patch+json"  # kubectl's: the container by its name
JOBS_CREATE = [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]


@dataclass(frozen=True)
class Operator:
    """The operator's identity in one scope: its API client (and kubeconfig), the namespace it
    serves (the release's), and the kube-system objects an attacker would aim at."""

    api: client.ApiClient
    served: str
    victim: str  # a pod and a Service of that name in kube-system
    kubeconfig: Path


@dataclass(frozen=True)
class Victims:
    name: str


@pytest.fixture(scope="module")
def victims(admin: client.ApiClient) -> Iterator[Victims]:
    """A pod and a Service in kube-system, as any cluster has (CoreDNS, metrics-server), and
    a Role there granting `jobs create`: the first step of the Role + RoleBinding escalation,
    made by the admin so that the binding step is tried on its own (a dry run stores none)."""
    core = client.CoreV1Api(admin)
    name = f"victim-{uuid.uuid4().hex[:6]}"
    roles = client.RbacAuthorizationV1Api(admin)
    roles.create_namespaced_role(SYSTEM, _role(name, JOBS_CREATE))
    labels = {"app": name}
    core.create_namespaced_pod(
        SYSTEM,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
        },
    )
    core.create_namespaced_service(
        SYSTEM,
        {
            "metadata": {"name": name},
            "spec": {"selector": labels, "ports": [{"port": 53, "protocol": "UDP"}]},
        },
    )
    yield Victims(name)
    with contextlib.suppress(ApiException):
        roles.delete_namespaced_role(name, SYSTEM)
    with contextlib.suppress(ApiException):
        core.delete_namespaced_pod(name, SYSTEM, grace_period_seconds=0)
    with contextlib.suppress(ApiException):
        core.delete_namespaced_service(name, SYSTEM, _preload_content=False)


@pytest.fixture(scope="module", params=sorted(SCOPES))
def operator(
    request: pytest.FixtureRequest,
    plane: Any,
    admin: client.ApiClient,
    make_namespace: Callable[[str], str],
    victims: Victims,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    """The chart's RBAC objects for one scope, released into a fresh namespace (which the
    namespaced operator then serves), applied as the admin; the operator's client."""
    from tests.chart.conftest import render_chart

    served = make_namespace("esc")
    release = f"esc{uuid.uuid4().hex[:6]}"
    empty = tmp_path_factory.mktemp("no-crds")
    rendered = render_chart(release, served, SCOPES[str(request.param)], empty)
    objects = [o for o in rendered if o["kind"] in RBAC_KINDS]
    for obj in objects:
        utils.create_from_dict(admin, obj, namespace=served)
    account = f"{release}-pairwarden-operator"
    path = plane.serviceaccount_kubeconfig(served, account, Path(empty) / "operator.kubeconfig")
    api = config.new_client_from_config(config_file=str(path))
    try:
        yield Operator(api, served, victims.name, path)
    finally:
        api.close()
        roles = client.RbacAuthorizationV1Api(admin)
        for obj in objects:
            name = obj["metadata"]["name"]
            with contextlib.suppress(ApiException):
                if obj["kind"] == "ClusterRole":
                    roles.delete_cluster_role(name)
                elif obj["kind"] == "ClusterRoleBinding":
                    roles.delete_cluster_role_binding(name)


def _job(account: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"esc-{uuid.uuid4().hex[:6]}"},
        "spec": {
            "template": {
                "spec": {
                    "serviceAccountName": account,
                    "restartPolicy": "Never",
                    "containers": [{"name": "x", "image": "bitnami/kubectl", "command": ["sh"]}],
                }
            }
        },
    }


def _role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "rules": rules}


def _binding(name: str, kind: str, role: str, namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    }


def _job_as_aggregation_controller(op: Operator) -> object:
    """A Job in kube-system running as the account that may escalate ClusterRoles."""
    job = _job("clusterrole-aggregation-controller")
    return client.BatchV1Api(op.api).create_namespaced_job(SYSTEM, job, dry_run=DRY)


def _kube_system_pod_image(op: Operator) -> object:
    patch = {"spec": {"containers": [{"name": "c", "image": "attacker/shell:latest"}]}}
    core = client.CoreV1Api(op.api)
    return core.patch_namespaced_pod(op.victim, SYSTEM, patch, dry_run=DRY, _content_type=STRATEGIC)


def _kube_system_service_selector(op: Operator) -> object:
    patch = {"spec": {"selector": {"app": "attacker"}}}
    return client.CoreV1Api(op.api).patch_namespaced_service(
        op.victim, SYSTEM, patch, dry_run=DRY, _content_type=STRATEGIC
    )


def _kube_system_lease(op: Operator) -> object:
    lease = {"metadata": {"name": "kube-controller-manager-esc"}, "spec": {"holderIdentity": "x"}}
    return client.CoordinationV1Api(op.api).create_namespaced_lease(SYSTEM, lease, dry_run=DRY)


def _kube_system_role_granting_jobs(op: Operator) -> object:
    role = _role("esc-jobs", JOBS_CREATE)
    return client.RbacAuthorizationV1Api(op.api).create_namespaced_role(SYSTEM, role, dry_run=DRY)


def _kube_system_binding_to_default(op: Operator) -> object:
    """Bind the Role granting `jobs create` to kube-system:default: the escalation check
    passes wherever the operator holds `jobs create` itself."""
    binding = _binding(op.victim, "Role", op.victim, SYSTEM)
    roles = client.RbacAuthorizationV1Api(op.api)
    return roles.create_namespaced_role_binding(SYSTEM, binding, dry_run=DRY)


def _served_job_as_another_account(op: Operator) -> object:
    return client.BatchV1Api(op.api).create_namespaced_job(op.served, _job("default"), dry_run=DRY)


def _served_binding_to_cluster_admin(op: Operator) -> object:
    binding = _binding("esc-admin", "ClusterRole", "cluster-admin", op.served)
    roles = client.RbacAuthorizationV1Api(op.api)
    return roles.create_namespaced_role_binding(op.served, binding, dry_run=DRY)


# Each escalation, and the scopes in which kube-apiserver 1.20 still ALLOWS it (RBAC alone);
# docs/install.md ("RBAC") states the same, and what refuses each on 1.30+.
ESCALATIONS: dict[str, tuple[Callable[[Operator], object], frozenset[str]]] = {
    "job-in-kube-system-as-clusterrole-aggregation-controller": (
        _job_as_aggregation_controller,
        frozenset({"clusterwide"}),  # 1.30+: the policy (replication account and image only)
    ),
    "patch-kube-system-pod-image": (
        _kube_system_pod_image,
        frozenset({"clusterwide"}),  # 1.30+: the policy (a pod's spec never changes)
    ),
    "patch-kube-system-service-selector": (
        _kube_system_service_selector,
        frozenset({"clusterwide"}),  # allowed on 1.30+ too: the operator's work
    ),
    "create-lease-in-kube-system": (
        _kube_system_lease,
        frozenset({"clusterwide"}),  # 1.30+: the policy wants the pair label on a new Lease
    ),
    "role-in-kube-system-granting-jobs-create": (
        _kube_system_role_granting_jobs,
        frozenset({"clusterwide"}),  # 1.30+: the policy (agent-shaped rules only)
    ),
    "rolebinding-in-kube-system-to-default": (
        _kube_system_binding_to_default,
        frozenset({"clusterwide"}),  # 1.30+: the policy (a Role to its own account only)
    ),
    "job-in-served-namespace-as-another-account": (
        _served_job_as_another_account,
        frozenset({"namespaced", "clusterwide"}),  # 1.30+: the policy; nothing on 1.20
    ),
    "rolebinding-to-cluster-admin-in-served-namespace": (
        _served_binding_to_cluster_admin,
        frozenset(),  # the escalation check: the operator does not hold cluster-admin
    ),
}


@pytest.mark.parametrize("escalation", sorted(ESCALATIONS))
def test_escalations_as_the_operators_account(
    operator: Operator, escalation: str, request: pytest.FixtureRequest
) -> None:
    attempt, allowed_in = ESCALATIONS[escalation]
    scope = str(request.node.callspec.params["operator"])
    try:
        attempt(operator)
    except ApiException as refused:
        assert refused.status == 403, refused.body
        assert scope not in allowed_in, f"{escalation} is refused {scope}: update docs and test"
        assert f"system:serviceaccount:{operator.served}:" in str(refused.body)
        return
    assert scope in allowed_in, f"{escalation} was ALLOWED for the {scope} operator"


async def test_the_operator_can_still_do_its_work_where_it_serves(
    operator: Operator, admin: client.ApiClient
) -> None:
    """The same account, in the namespace it serves, can do what it exists for (a refusal
    test passes trivially for an account that can do nothing). Above all it can give a pair's
    agents their Role and binding, through the operator's own code (controller/rbac.py): RBAC's
    escalation check admits that only while the operator's Role holds every right granted."""
    ns = operator.served
    leases = client.CoordinationV1Api(operator.api)
    lease = {"metadata": {"name": "vm-active", "labels": {"pairwarden.io/pair": "vm"}}}
    leases.create_namespaced_lease(ns, lease, dry_run=DRY)
    client.BatchV1Api(operator.api).list_namespaced_job(ns)
    owner = {"apiVersion": "pairwarden.io/v1", "kind": "FailoverPair", "name": "vm", "uid": "u"}
    api = await async_api_client(str(operator.kubeconfig))
    async with api:
        assert await rbac.ensure_agent_rbac(api, ns, "vm", owner)
    roles = client.RbacAuthorizationV1Api(admin)
    for member in MEMBERS:
        made = roles.read_namespaced_role(rbac.agent_account("vm", member), ns)
        granted = admin.sanitize_for_serialization(made)["rules"]
        assert granted == rbac.agent_rules("vm", member)
