"""End-to-end scenarios: the real operator and agent processes against the sandbox.

Every scenario gets a fresh LocalCluster (sandbox, local kubelet and kube-proxy, operator) and
a pair with a shortened heartbeat (100 ms x 10 = 1 s window), so time rules are exercised at
their real pace without waiting 30 s. `PAIRWARDEN_E2E_CLUSTER` names a kubeconfig to run the
same scenarios against kind or any cluster instead; scenarios that need to break a node
(kill -9 a pod's processes, cut its network) skip there with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pairwarden_testbed.localcluster import LocalCluster, wait_until

INTERVAL_MS, MISSED = 100, 10
WINDOW = INTERVAL_MS * MISSED / 1000


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    if os.environ.get("PAIRWARDEN_E2E_CLUSTER"):
        pytest.skip("scenarios drive node faults through the local kubelet; on a real cluster "
                    "run `make e2e` (e2e/kind.py) instead")  # fmt: skip
    with LocalCluster() as local:
        yield local


def start(cluster: LocalCluster, **spec: object) -> str:
    """Create the pair and wait until it is whole: a member answers through the Service and
    both members' voicemail processes are up (scenarios fail one over to the other). The
    active member's name."""
    cluster.start_pair(interval_ms=INTERVAL_MS, missed=MISSED, **spec)
    # 60 s: an operator process takes 15 s and more to start on a loaded 2-core machine
    member = wait_until(lambda: _routed(cluster), timeout=60)
    wait_until(lambda: cluster.call() == f"vm-{member}", timeout=10)
    wait_until(lambda: _status_names(cluster, member), timeout=10)
    wait_until(lambda: _both_up(cluster), timeout=10)
    return member


def _both_up(cluster: LocalCluster) -> bool:
    members = (cluster.pair().get("status") or {}).get("members") or {}
    return all((members.get(m) or {}).get("serviceUp") for m in ("primary", "secondary"))


def _status_names(cluster: LocalCluster, member: str) -> bool:
    return (cluster.pair().get("status") or {}).get("activeMember") == member


def _routed(cluster: LocalCluster) -> str | None:
    member = cluster.selector().get("pairwarden.io/member", "none")
    return None if member == "none" else member
