"""Assertions every scenario makes: where the Service points, the pods' labels, the status,
the Events, and that exactly one member answers calls (asked directly, not via the Service)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from kubernetes import client

from pairwarden.orders import OrderSigner, read_key
from pairwarden.protocol import LABEL_MEMBER, LABEL_ROLE, MEMBERS, MemberReport, member_lease_name
from pairwarden_testbed.localcluster import LocalCluster, wait_until


def other(member: str) -> str:
    return "secondary" if member == "primary" else "primary"


def status(cluster: LocalCluster) -> dict[str, Any]:
    return dict(cluster.pair().get("status") or {})


def epoch(cluster: LocalCluster) -> int:
    return int(status(cluster).get("epoch") or 0)


def next_transition(cluster: LocalCluster, after_epoch: int, timeout: float = 15) -> dict[str, Any]:
    """Wait for the status to record a role change beyond `after_epoch`; that transition. (A
    move by choice takes two epochs, the revoke and the grant; only the grant is a transition.)"""

    def recorded() -> dict[str, Any] | None:
        last = status(cluster).get("lastTransition") or {}
        return dict(last) if int(last.get("epoch") or 0) > after_epoch else None

    return wait_until(recorded, timeout)


def reasons(cluster: LocalCluster) -> list[str]:
    return [e.reason for e in cluster.events()]


def assert_serving(cluster: LocalCluster, member: str, timeout: float = 10) -> None:
    """Service, labels, status and the voicemail processes all agree that `member` answers."""
    wait_until(lambda: cluster.selector().get(LABEL_MEMBER) == member, timeout)
    wait_until(lambda: status(cluster).get("activeMember") == member, timeout)
    wait_until(lambda: cluster.pod_labels(f"vm-{member}").get(LABEL_ROLE) == "active", timeout)
    wait_until(lambda: cluster.answering_members() == [member], timeout)
    # a caller's route follows the Service once kube-proxy has the new endpoints: at once on
    # the sandbox (the proxy matches the selector), after the EndpointSlice controller on a
    # real control plane
    wait_until(lambda: cluster.call() == f"vm-{member}", timeout)


def assert_nobody_serving(cluster: LocalCluster, timeout: float = 10) -> None:
    wait_until(lambda: cluster.selector().get(LABEL_MEMBER) == "none", timeout)
    wait_until(lambda: cluster.answering_members() == [], timeout)
    wait_until(lambda: cluster.call() is None, timeout)
    # The labels are written after the Service (the flip's last write).
    wait_until(
        lambda: all(cluster.pod_labels(f"vm-{m}").get(LABEL_ROLE) != "active" for m in MEMBERS),
        timeout,
    )


def role_order(cluster: LocalCluster, pod: str, body: dict[str, Any], key: bytes | None) -> int:
    """POST /role to the pod's voicemail control port as any process in the pod could (its
    loopback): unsigned, or signed with `key`; the HTTP status."""
    ip = cluster.core.read_namespaced_pod(pod, cluster.namespace).status.pod_ip
    data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    if key is not None:
        data, headers = OrderSigner(key).sign(body)
    request = urllib.request.Request(f"http://{ip}:8081/role", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def order_key(cluster: LocalCluster, pod: str) -> bytes | None:
    """The key the pod's agent wrote to its `order-key` volume (on this machine's disk)."""
    return read_key(cluster.kubelet.pod_dir(pod) / "volumes" / "order-key" / "key")


def failsafe_ready(cluster: LocalCluster, renew_period: float = 1.0) -> None:
    """Both members hold the peer key (the kubelet projects the Secret the operator made) and
    have published where their peer link listens; then a renewal period (`renew_period`, or
    more) for each agent to read the other's. Both learn it while the API server is there:
    an outage that begins before holds the members to the plain fence."""

    def ready() -> bool:
        leases = client.CoordinationV1Api(cluster.api)
        for member in MEMBERS:
            key = cluster.kubelet.pod_dir(f"vm-{member}") / "volumes" / "peer-key" / "key"
            lease = leases.read_namespaced_lease(member_lease_name("vm", member), cluster.namespace)
            report = MemberReport.from_annotations(lease.metadata.annotations)
            if not key.exists() or not report.peer_contact:
                return False
        return True

    wait_until(ready, timeout=30)
    time.sleep(renew_period)
