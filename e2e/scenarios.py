"""Assertions every scenario makes: where the Service points, the pods' labels, the status,
the Events, and that exactly one member answers calls (asked directly, not via the Service)."""

from __future__ import annotations

from typing import Any

from pairwarden.protocol import LABEL_MEMBER, LABEL_ROLE, MEMBERS
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
