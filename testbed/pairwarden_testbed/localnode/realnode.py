"""The node's own objects, kept as a kubelet keeps them on a real control plane: its Node
(registered once, then Ready with capacity and a heartbeat) and its Lease in
`kube-node-lease`, renewed every RENEW_SECONDS. The scheduler binds pods only to a Ready node
without the `node.kubernetes.io/not-ready` taint, which the node-lifecycle controller lifts
once it sees the node Ready; NodeRestriction forbids a node to touch its own taints, and
hack/control-plane.sh runs no node-lifecycle controller, so the harness lifts it as admin
(`lift_not_ready_taint`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
# The local kubelet's node; not controlplane.NODE_NAME, which a real kubelet (issue 19) uses.
LOCAL_NODE = "pairwarden-localnode"
NODE_LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS, RENEW_SECONDS = 40, 10.0  # the kubelet's defaults
CAPACITY = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"}
Obj = Mapping[str, Any]


def _micro(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_body(name: str) -> dict[str, Any]:
    """The Node a kubelet registers (pure): its hostname label and loopback address."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
    }


def ready_status(now: datetime) -> dict[str, Any]:
    """The node status a healthy kubelet posts (pure): Ready, no pressure, capacity."""
    stamp = _seconds(now)
    conditions = [
        {
            "type": kind,
            "status": "False",
            "reason": f"KubeletHas{reason}",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        for kind, reason in (
            ("MemoryPressure", "SufficientMemory"),
            ("DiskPressure", "NoDiskPressure"),
            ("PIDPressure", "SufficientPID"),
        )
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "pairwarden local kubelet is posting ready status",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
    )
    return {
        "capacity": dict(CAPACITY),
        "allocatable": dict(CAPACITY),
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "nodeInfo": {
            "kubeletVersion": "v1.20.2",
            "kubeProxyVersion": "v1.20.2",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "containerRuntimeVersion": "local://pairwarden",
            "osImage": "local processes",
            "kernelVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def lease_body(node: str, now: datetime) -> dict[str, Any]:
    return {
        "metadata": {"name": node, "namespace": NODE_LEASE_NAMESPACE},
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": _micro(now),
        },
    }


NOT_READY_TAINT = "node.kubernetes.io/not-ready"


def lift_not_ready_taint(admin: client.ApiClient, node: str) -> None:
    """Drop the taint registration put on the Node, as the node-lifecycle controller does
    once the node reports Ready (the control plane here runs without that controller)."""
    core = client.CoreV1Api(admin)
    taints = core.read_node(node, _request_timeout=10).spec.taints or []
    kept = [t.to_dict() for t in taints if t.key != NOT_READY_TAINT]
    if len(kept) != len(taints):
        core.patch_node(node, {"spec": {"taints": kept or None}}, _request_timeout=10)


class NodeHeartbeat:
    """Registers the Node and keeps it Ready: the Lease every RENEW_SECONDS, as a kubelet."""

    def __init__(self, api: client.ApiClient, name: str) -> None:
        self.name = name
        self._core = client.CoreV1Api(api)
        self._leases = client.CoordinationV1Api(api)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"node-{name}", daemon=True)

    def start(self) -> NodeHeartbeat:
        self.register()
        self.renew()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def register(self) -> None:
        with contextlib.suppress(ApiException):  # 409: registered by an earlier run
            self._core.create_node(node_body(self.name), _request_timeout=10)
        self.post_status()

    def post_status(self) -> None:
        body = {"status": ready_status(datetime.now(UTC))}
        self._core.patch_node_status(self.name, body, _request_timeout=10)

    def renew(self) -> None:
        body = lease_body(self.name, datetime.now(UTC))
        try:
            current = self._leases.read_namespaced_lease(
                self.name, NODE_LEASE_NAMESPACE, _request_timeout=10
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._leases.create_namespaced_lease(NODE_LEASE_NAMESPACE, body, _request_timeout=10)
            return
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        self._leases.replace_namespaced_lease(
            self.name, NODE_LEASE_NAMESPACE, body, _request_timeout=10
        )

    def _main(self) -> None:
        beats = 0
        while not self._stop.wait(RENEW_SECONDS):
            beats += 1
            try:
                self.renew()
                if beats % 6 == 0:  # the status itself, once a minute (the lease says alive)
                    self.post_status()
            except Exception as exc:  # the heartbeat thread must survive API trouble
                log.warning("node %s heartbeat: %r", self.name, exc)
