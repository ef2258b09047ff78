"""Replication Jobs end to end: files changed on the active member reach the standby, and after
a failover the changes made on the new active member come back (the reference's two-way)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from e2e.conftest import start, start_on_primary
from e2e.scenarios import assert_serving, status
from kubernetes import client

from pairwarden_testbed.localcluster import LocalCluster, wait_until

FAST = {"fileIntervalSeconds": 1, "databaseIntervalSeconds": 1}


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _has(root: Path, relative: str, text: str) -> bool:
    path = root / relative
    return path.exists() and path.read_text() == text


def _policy(cluster: LocalCluster) -> dict[str, Any]:
    policy = client.NetworkingV1Api(cluster.api).read_namespaced_network_policy(
        "vm-members", cluster.namespace
    )
    result: dict[str, Any] = cluster.api.sanitize_for_serialization(policy)
    return result


def _condition(cluster: LocalCluster, kind: str) -> str | None:
    found = [c for c in status(cluster).get("conditions", []) if c["type"] == kind]
    return found[0]["status"] if found else None


def test_changes_reach_the_standby_and_come_back_after_failover(cluster: LocalCluster) -> None:
    start_on_primary(cluster, replication=FAST)
    primary, secondary = cluster.data_dir("vm-primary"), cluster.data_dir("vm-secondary")
    _write(primary, "Localize/Prompts/greeting.txt", "hello from the primary")
    wait_until(
        lambda: _has(secondary, "Localize/Prompts/greeting.txt", "hello from the primary"), 30
    )
    # The very first Job may beat the token Secret into the pods (503, retried next interval).
    wait_until(lambda: _condition(cluster, "ReplicationHealthy") == "True", 30)
    assert status(cluster)["replication"]["lastSuccess"]
    # The Job's report (its pod's termination message) reached status: the copy was counted.
    wait_until(lambda: status(cluster)["replication"].get("files", 0) >= 1, 30)
    # ...through the agents' file API port, which the pair's NetworkPolicy admits from the
    # pair's replication Jobs only (the stand-in proxy does not enforce it: the object is read)
    # (a pair applied before its Service gets its policy within netpol.RETRY_SECONDS)
    policy = wait_until(lambda: _policy(cluster), 15, tolerate=(client.ApiException,))
    files = next(r for r in policy["spec"]["ingress"] if r.get("from"))
    assert files["ports"] == [{"protocol": "TCP", "port": 8082}]
    assert policy["metadata"]["ownerReferences"][0]["name"] == "vm"

    cluster.request("failover")
    assert_serving(cluster, "secondary")
    _write(secondary, "UnityMTA/queued-message.txt", "left while the primary was away")
    wait_until(
        lambda: _has(primary, "UnityMTA/queued-message.txt", "left while the primary was away"), 30
    )
    (secondary / "Localize/Prompts/greeting.txt").unlink()
    wait_until(lambda: not (primary / "Localize/Prompts/greeting.txt").exists(), 30)


def test_no_replication_while_paused(cluster: LocalCluster) -> None:
    start(cluster, replication=FAST)
    wait_until(lambda: (status(cluster).get("replication") or {}).get("lastRun"), 30)
    cluster.patch_pair({"spec": {"paused": True}})
    wait_until(lambda: status(cluster).get("phase") == "Paused", 10)
    wait_until(lambda: not _running_jobs(cluster), 30)  # a Job started before the pause ends
    jobs_before = _job_names(cluster)
    active = status(cluster)["activeMember"]
    standby = "secondary" if active == "primary" else "primary"
    _write(cluster.data_dir(f"vm-{active}"), "Support/while-paused.txt", "x")
    time.sleep(3 * FAST["fileIntervalSeconds"])  # three intervals in manual mode
    assert _job_names(cluster) <= jobs_before  # no new Job (old ones may be cleaned up)
    assert not (cluster.data_dir(f"vm-{standby}") / "Support/while-paused.txt").exists()


def _jobs(cluster: LocalCluster) -> list[client.V1Job]:
    return list(client.BatchV1Api(cluster.api).list_namespaced_job(cluster.namespace).items)


def _job_names(cluster: LocalCluster) -> set[str]:
    return {job.metadata.name for job in _jobs(cluster)}


def _running_jobs(cluster: LocalCluster) -> list[str]:
    return [j.metadata.name for j in _jobs(cluster) if not (j.status.succeeded or j.status.failed)]
