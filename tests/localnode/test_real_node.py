"""The local kubelet and kube-proxy as a node of the real Kubernetes 1.20 control plane
(hack/control-plane.sh): the Node registers and turns schedulable, the scheduler binds pods to
it, it runs them as their ServiceAccount and reports podIP and Ready, the proxy routes by the
EndpointSlices the controller-manager computes, and the Job controller runs a Job's pod there
to completion. Skips, naming the reason, without that control plane."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pairwarden_testbed.localnode import LocalKubelet, LocalServiceProxy
from pairwarden_testbed.localnode.realnode import (
    LOCAL_NODE,
    NODE_LEASE_NAMESPACE,
    lift_not_ready_taint,
)
from pairwarden_testbed.waiting import eventually

# A pod's process: answers each TCP connection with its pod name, and says who it is to the
# API server (the 403 of an unprivileged ServiceAccount names it) in its termination message.
SERVER = """
import os, socket
s = socket.create_server((os.environ["POD_IP"], 8080))
while True:
    c, _ = s.accept(); c.sendall(os.environ["POD_NAME"].encode() + b"\\n"); c.close()
"""
WHOAMI = """
import urllib.request, urllib.error, ssl, yaml, os, base64, tempfile, sys
cfg = yaml.safe_load(open(os.environ["KUBECONFIG"]))
cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
ca = tempfile.NamedTemporaryFile(delete=False); ca.write(base64.b64decode(cluster["certificate-authority-data"])); ca.close()
req = urllib.request.Request(cluster["server"] + "/api/v1/nodes", headers={"Authorization": "Bearer " + user["token"]})
try:
    urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca.name))
except urllib.error.HTTPError as e:
    open(sys.argv[1], "w").write(e.read().decode())
"""  # noqa: E501


@dataclass
class RealNode:
    admin: client.ApiClient
    namespace: str
    kubelet: LocalKubelet
    proxy: LocalServiceProxy
    kubeconfig: str  # the admin's


def _pod(name: str, code: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    env = [
        {"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}}
        for n, p in (("POD_IP", "status.podIP"), ("POD_NAME", "metadata.name"))
    ]
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "pairwarden/test:dev",
                    "command": [sys.executable, "-c", code],
                    "args": ["/dev/termination-log"],  # rewritten to the pod's file
                    "env": env,
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def node(
    real_cluster: Any,
    admin: client.ApiClient,
    make_namespace: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RealNode]:
    namespace = make_namespace("node")
    kubelet = LocalKubelet(
        real_cluster.token_kubeconfig(f"node-{LOCAL_NODE}"),
        namespace,
        workdir=tmp_path_factory.mktemp("node"),
        node=LOCAL_NODE,
    )
    proxy = LocalServiceProxy(
        str(real_cluster.token_kubeconfig("kube-proxy")), namespace, endpoint_slices=True
    )
    with kubelet, proxy:
        lift_not_ready_taint(admin, LOCAL_NODE)  # the node-lifecycle controller's part
        yield RealNode(admin, namespace, kubelet, proxy, str(real_cluster.kubeconfig))


def test_the_node_registers_renews_its_lease_and_becomes_schedulable(node: RealNode) -> None:
    core = client.CoreV1Api(node.admin)
    ready = eventually(
        lambda: [
            c
            for c in core.read_node(LOCAL_NODE).status.conditions or []
            if c.type == "Ready" and c.status == "True"
        ],
        90,
        "Node Ready",
        poll=0.2,
    )
    assert ready
    assert not core.read_node(LOCAL_NODE).spec.taints  # lifted once Ready (fixture)
    lease = client.CoordinationV1Api(node.admin).read_namespaced_lease(
        LOCAL_NODE, NODE_LEASE_NAMESPACE
    )
    assert lease.spec.holder_identity == LOCAL_NODE and lease.spec.renew_time is not None


def test_a_bound_pod_runs_reports_ready_and_is_reached_through_endpointslices(
    node: RealNode,
) -> None:
    core = client.CoreV1Api(node.admin)
    core.create_namespaced_pod(node.namespace, _pod("web", SERVER, {"app": "web"}))
    core.create_namespaced_service(
        node.namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    pod = eventually(lambda: _ready(core, node.namespace, "web"), 90, "pod web Ready", poll=0.2)
    assert pod.spec.node_name == LOCAL_NODE  # bound by the real scheduler
    assert pod.status.pod_ip.startswith("127.") and pod.status.phase == "Running"
    svc = core.read_namespaced_service("web", node.namespace)
    address = (svc.spec.cluster_ip, 80)
    eventually(
        lambda: node.proxy.endpoints("web") == [(pod.status.pod_ip, 8080)], 90, "slice", poll=0.2
    )
    assert eventually(lambda: _dial(address), 90, "a reply through the Service", poll=0.2) == "web"


def test_a_job_runs_to_completion_through_the_job_controller_as_its_serviceaccount(
    node: RealNode,
) -> None:
    batch = client.BatchV1Api(node.admin)
    template = _pod("x", WHOAMI)
    template["spec"]["restartPolicy"] = "Never"
    del template["metadata"]["name"]
    batch.create_namespaced_job(
        node.namespace,
        {"metadata": {"name": "whoami"}, "spec": {"backoffLimit": 0, "template": template}},
    )
    eventually(
        lambda: any(
            c.type == "Complete" and c.status == "True"
            for c in batch.read_namespaced_job("whoami", node.namespace).status.conditions or []
        ),
        90,
        "Job Complete",
        poll=0.2,
    )
    core = client.CoreV1Api(node.admin)
    (pod,) = core.list_namespaced_pod(node.namespace, label_selector="job-name=whoami").items
    assert pod.status.phase == "Succeeded" and pod.spec.node_name == LOCAL_NODE
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0
    # It acted as its ServiceAccount, which no Role allows to list nodes.
    assert f"system:serviceaccount:{node.namespace}:default" in terminated.message


def _ready(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    pod = core.read_namespaced_pod(name, namespace)
    conditions = {c.type: c.status for c in pod.status.conditions or []}
    return pod if conditions.get("Ready") == "True" and pod.status.pod_ip else None


def _dial(address: tuple[str, int]) -> str | None:
    try:
        with socket.create_connection(address, timeout=2) as sock:
            return sock.makefile().readline().strip() or None
    except OSError:
        return None


async def test_the_operator_reads_a_replication_report_from_the_jobs_pod(
    node: RealNode, tmp_path: Path
) -> None:
    """The product's replication Job, run by the real Job controller on this node, holds no
    API token: `pairwarden replicate` leaves its report as the termination message, the node
    writes it into the pod's status, and the operator finds it by listing the Job's pods."""
    from tests.replication.helpers import PAIR, TOKEN, member, seed, tree

    from pairwarden.controller import jobs
    from pairwarden.controller.secrets import TOKEN_KEY
    from pairwarden.kube import async_api_client

    secret = {"metadata": {"name": f"{PAIR}-replication-token"}, "stringData": {TOKEN_KEY: TOKEN}}
    client.CoreV1Api(node.admin).create_namespaced_secret(node.namespace, secret)
    a, b = tmp_path / "a", tmp_path / "b"
    seed(a, 7)
    api = await async_api_client(node.kubeconfig)
    try:
        async with member(a) as source, member(b) as target:
            # 127.0.0.1 in a pod's arguments is the pod's own loopback here: name the host's
            urls = [u.replace("127.0.0.1", "localhost") for u in (source, target)]
            job = jobs.ReplicationJob(
                node.namespace, PAIR, *urls, f"{PAIR}-replication-token", "pairwarden/agent:dev"
            )
            name = await jobs.ensure_replication_job(api, job)
            assert name is not None
            result = None
            for _ in range(1200):  # up to 120 s: the Job controller, the node, a process
                (listed,) = await jobs.list_jobs(api, node.namespace, PAIR)
                if (result := await jobs.read_result(api, node.namespace, listed)) is not None:
                    break
                await asyncio.sleep(0.1)
        assert result is not None, "the Job did not finish"
        assert result.succeeded, result.message
        assert result.report is not None and result.report.files == 7
        assert result.status_fields()["files"] == 7 and tree(b) == tree(a)
        pods = client.CoreV1Api(node.admin).list_namespaced_pod(
            node.namespace, label_selector=f"job-name={name}"
        )
        assert [p.spec.automount_service_account_token for p in pods.items] == [False]
    finally:
        await api.close()
