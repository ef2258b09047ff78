"""The replication Job index: what a tick reads instead of listing Jobs, kept by one watch per
namespace and by the operator's own writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pairwarden.controller import jobs
from pairwarden.controller.jobs import JobIndex
from pairwarden.kube import async_api_client
from pairwarden_testbed.localnode.jobrunner import final_status
from pairwarden_testbed.waiting import eventually_async

NS = "voice"


def job(name: str, pair: str = "vm", finished: bool | None = None, ns: str = NS) -> dict[str, Any]:
    status = {} if finished is None else final_status("2026-01-05T12:00:00Z", finished, "r", "m")
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"pairwarden.io/pair": pair, "pairwarden.io/replication": "true"},
            "creationTimestamp": f"2026-01-05T12:00:0{name[-1]}Z",
        },
        "spec": {"template": {"spec": {"containers": [{"name": "replicate"}]}}},
        "status": status,
    }


def names(index: JobIndex, pair: str = "vm", ns: str = NS) -> list[str] | None:
    listed = index.jobs(ns, pair)
    return None if listed is None else sorted(j["metadata"]["name"] for j in listed)


def test_unknown_until_the_namespace_is_listed() -> None:
    index = JobIndex()
    assert index.jobs(NS, "vm") is None  # the caller must ask the API server
    index.listed(NS, [])
    assert index.jobs(NS, "vm") == []
    assert index.jobs("other", "vm") is None
    index.listed(None, [])  # a cluster-wide watch knows every namespace
    assert index.jobs("other", "vm") == []


def test_a_job_is_reported_finished_once() -> None:
    index = JobIndex()
    index.listed(NS, [])
    assert index.record("ADDED", job("j1")) is None  # running
    assert index.record("MODIFIED", job("j1", finished=True)) == (NS, "vm")
    assert index.record("MODIFIED", job("j1", finished=True)) is None  # already known
    assert index.record("ADDED", job("j2", finished=False)) == (NS, "vm")  # failed, first seen
    assert names(index) == ["j1", "j2"]
    assert "spec" not in index.jobs(NS, "vm")[0]  # type: ignore[index]  # not kept


def test_deleted_and_deleting_jobs_leave_the_index() -> None:
    index = JobIndex()
    index.listed(NS, [job("j1"), job("j2"), job("j3", pair="other")])
    index.record("DELETED", job("j1"))
    deleting = job("j2")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-05T12:01:00Z"
    index.record("MODIFIED", deleting)
    assert names(index) == []
    assert names(index, "other") == ["j3"]
    index.forget(NS, "other")
    assert names(index, "other") == []


def test_a_fresh_listing_replaces_the_namespace_and_reports_what_finished_meanwhile() -> None:
    index = JobIndex()
    index.listed(NS, [job("j1"), job("j2", finished=True), job("k1", pair="b", ns="elsewhere")])
    index.listed("elsewhere", [job("k1", pair="b", ns="elsewhere")])
    finished = index.listed(
        NS,
        [
            job("j1", finished=True),  # was running: finished in the gap
            job("j2", finished=True),  # unchanged
            job("j4", pair="c"),  # new, running
        ],
    )
    assert finished == [(NS, "vm")]
    assert names(index) == ["j1", "j2"]
    assert names(index, "c") == ["j4"]
    assert names(index, "b", "elsewhere") == ["k1"]  # another namespace is left alone
    assert index.listed(NS, [job("j3", finished=True)]) == [(NS, "vm")]  # new and finished
    assert names(index) == ["j3"]  # j1, j2 and j4 were deleted while the watch was away


def test_a_listing_older_than_the_operators_own_creation_keeps_it() -> None:
    """The first listing can be in flight while the first reconciliations start Jobs: the
    Jobs must not vanish from the index, or each pair would start a second one."""
    index = JobIndex()
    index.created(job("j1"))  # before the first listing arrived
    index.listed(NS, [])  # taken before j1 existed
    assert names(index) == ["j1"]
    index.record("ADDED", job("j1"))  # the watch delivers it
    index.listed(NS, [])  # a later listing without it: deleted meanwhile
    assert names(index) == []


async def test_the_watch_and_the_operators_writes_keep_the_index(
    sandbox: Any, sandbox_only: Any, namespace: str
) -> None:
    """A tick after the first listing reads no Job list from the API server; a Job the
    operator just created is in the index before the watch delivers it; a Job that finishes
    wakes its pair; a deleted one leaves."""
    api = await async_api_client(str(sandbox.kubeconfig_path))
    index, woken = JobIndex(), []
    task = asyncio.create_task(
        jobs.watch(api, namespace, index, lambda ns, pair: woken.append((ns, pair)))
    )
    try:
        await eventually_async(lambda: index.jobs(namespace, "vm") is not None)
        sandbox.reset_stats()
        job = jobs.ReplicationJob(namespace, "vm", "http://a/replication", "http://b/r", "t", "i")
        name = await jobs.ensure_replication_job(api, job, index)
        assert name is not None and names(index, ns=namespace) == [name]
        assert await jobs.ensure_replication_job(api, job, index) is None
        assert "list jobs" not in sandbox.stats()["requests"]

        from kubernetes_asyncio import client

        done = {"status": final_status("2026-01-05T12:00:00Z", True, "Completed", "ok")}
        await client.BatchV1Api(api).patch_namespaced_job_status(name, namespace, done)
        await eventually_async(lambda: woken == [(namespace, "vm")])
        newest = jobs.newest_finished(await jobs.list_jobs(api, namespace, "vm", index))
        assert newest is not None
        result = await jobs.read_result(api, namespace, newest)
        assert result is not None and result.name == name and result.succeeded
        assert result.report is None  # no pod ran it: succeeded, without a report
        assert await jobs.cleanup_jobs(api, namespace, "vm", keep=0, index=index) == [name]
        assert names(index, ns=namespace) == []
        assert "list jobs" not in sandbox.stats()["requests"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await api.close()
