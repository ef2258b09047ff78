"""Smoke test of the real Kubernetes 1.20 control plane (hack/control-plane.sh, issue 14):
it answers as v1.20.2, RBAC denies a ServiceAccount what no role grants it, the scheduler
binds a Pod to a Node, the EndpointSlice controller runs.

Run alone: `pytest -m realk8s` or `pytest tests/realk8s`. Skips, naming the reason, when
the binaries are not built (`make control-plane`) or PAIRWARDEN_REAL_K8S=0."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from pairwarden_testbed.waiting import eventually

pytestmark = pytest.mark.realk8s
KUBECTL = str(Path(sys.executable).with_name("kubectl"))


def test_version_is_1_20(real_cluster: Any, admin: client.ApiClient) -> None:
    info = client.VersionApi(admin).get_code()
    assert (info.major, info.minor, info.git_version) == ("1", "20", "v1.20.2")
    out = subprocess.run(
        [KUBECTL, "--kubeconfig", str(real_cluster.kubeconfig), "version", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"gitVersion": "v1.20.2"' in out.stdout, out.stderr


def test_rbac_denies_an_unprivileged_serviceaccount(
    real_cluster: Any, admin: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    path = real_cluster.serviceaccount_kubeconfig(ns, "nobody")
    with config.new_client_from_config(config_file=str(path)) as as_sa:
        sa_core = client.CoreV1Api(as_sa)
        for call in (
            lambda: sa_core.list_namespaced_pod(ns),
            lambda: sa_core.list_secret_for_all_namespaces(),
            lambda: sa_core.create_namespaced_config_map(
                ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
            ),
        ):
            with pytest.raises(ApiException) as denied:
                call()
            assert denied.value.status == 403
            assert f"system:serviceaccount:{ns}:nobody" in str(denied.value.body)
        # A Role and its binding grant exactly what they name.
        rbac = client.RbacAuthorizationV1Api(admin)
        rbac.create_namespaced_role(
            ns,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="read-pods"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": "read-pods"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-pods",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": ns}],
            },
        )
        assert eventually(lambda: _allowed(lambda: sa_core.list_namespaced_pod(ns)), 30, poll=0.2)
        with pytest.raises(ApiException) as still:
            sa_core.list_namespaced_config_map(ns)
        assert still.value.status == 403


def _allowed(call: Callable[[], object]) -> bool:
    try:
        call()
    except ApiException as exc:
        if exc.status == 403:
            return False
        raise
    return True


def test_scheduler_binds_a_pod_to_a_ready_node_and_endpointslices_follow(
    admin: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(admin)
    node = f"smoke-node-{uuid.uuid4().hex[:6]}"
    core.create_node(
        {
            "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "10"}},
        }
    )
    try:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        core.patch_node_status(
            node,
            {
                "status": {
                    "capacity": {"cpu": "2", "memory": "4Gi", "pods": "10"},
                    "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"},
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                    ],
                }
            },
        )
        # Registration adds node.kubernetes.io/not-ready:NoSchedule; nothing here lifts it
        # (no node-lifecycle controller, no kubelet), so the test does.
        taints = core.read_node(node).spec.taints or []
        assert [t.key for t in taints] == ["node.kubernetes.io/not-ready"]
        core.patch_node(node, {"spec": {"taints": None}})
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {"name": "p", "labels": {"app": "smoke"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [{"name": "c", "image": "docker.io/library/busybox"}],
                },
            },
        )
        bound = eventually(
            lambda: core.read_namespaced_pod("p", ns).spec.node_name, 60, "pod bound", poll=0.2
        )
        assert bound == node
        core.create_namespaced_service(
            ns,
            {
                "metadata": {"name": "s"},
                "spec": {"selector": {"app": "smoke"}, "ports": [{"port": 5060}]},
            },
        )
        objects = client.CustomObjectsApi(admin)  # discovery.k8s.io/v1beta1 on 1.20
        eventually(
            lambda: objects.list_namespaced_custom_object(
                "discovery.k8s.io",
                "v1beta1",
                ns,
                "endpointslices",
                label_selector="kubernetes.io/service-name=s",
            )["items"],
            60,
            "EndpointSlice of service s",
            poll=0.2,
        )
    finally:
        # No kubelet confirms the pod's end: delete it at once, or its namespace never goes.
        with contextlib.suppress(ApiException):
            core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
        core.delete_node(node)
