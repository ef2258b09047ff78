"""Replication Jobs and the token Secret on the sandbox, run by the local job runner: one Job
per pair at a time, the report read back from the termination message of the Job's pod, old
Jobs cleaned up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pairwarden.controller import jobs
from pairwarden.controller.jobs import (
    ReplicationJob,
    cleanup_jobs,
    ensure_replication_job,
    job_body,
    job_name,
    list_jobs,
    newest_finished,
    read_result,
    result_of,
)
from pairwarden.controller.secrets import ensure_token, token_of
from pairwarden.kube import async_api_client
from pairwarden_testbed.localnode.jobrunner import LocalJobRunner, final_status

from .helpers import member, seed, tree

OWNER: dict[str, Any] | None = None  # a FailoverPair ownerReference in the operator
IMAGE = "pairwarden/replicate:dev"


def test_job_manifest() -> None:
    job = ReplicationJob(
        "ns", "vm", "http://a/replication", "http://b/replication", "vm-replication-token", IMAGE
    )
    body = job_body("vm-replicate-abc123", replace(job, kind="database"))
    spec = body["spec"]
    assert (spec["backoffLimit"], spec["ttlSecondsAfterFinished"]) == (0, 300)
    assert spec["activeDeadlineSeconds"] > 0
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["pairwarden", "replicate"]
    assert {"--db", "--no-files"} <= set(container["args"])
    assert body["metadata"]["labels"]["pairwarden.io/replication"] == "true"
    assert len(job_name("x" * 80, "abc123")) == 63
    assert "annotations" not in body["metadata"]
    with_epoch = job_body("j", replace(job, epoch=7))
    done = {**with_epoch, "status": final_status("2026-01-05T12:00:00Z", True, "Completed", "")}
    result = result_of(done)
    assert result is not None and result.epoch == 7 and result.status_fields()["epoch"] == 7


def test_result_of_a_failed_job_without_report() -> None:
    status = final_status("2026-01-05T12:00:00Z", False, "DeadlineExceeded", "too long")
    job = {"metadata": {"name": "j"}, "status": status}
    result = result_of(job)
    assert result is not None and not result.succeeded
    assert "DeadlineExceeded" in result.message
    assert "lastSuccess" not in result.status_fields()
    assert result_of({"metadata": {"name": "j"}, "status": {"active": 1}}) is None


@pytest.fixture
async def kube(sandbox: Any) -> AsyncIterator[Any]:
    api = await async_api_client(str(sandbox.kubeconfig_path))
    yield api
    await api.close()


async def _finished(api: Any, namespace: str, name: str) -> jobs.JobResult:
    for _ in range(600):  # the child is a real process: wait for it, up to 30 s
        for job in await list_jobs(api, namespace, "vm"):
            result = await read_result(api, namespace, job)
            if job["metadata"]["name"] == name and result is not None:
                return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {name} did not finish")


async def test_token_secret_is_created_once(kube: Any, namespace: str) -> None:
    from kubernetes_asyncio import client

    name = await ensure_token(kube, namespace, "vm", OWNER)
    secret = await client.CoreV1Api(kube).read_namespaced_secret(name, namespace)
    token = token_of(kube.sanitize_for_serialization(secret))
    assert name == "vm-replication-token" and token is not None and token.startswith("vm.")
    assert await ensure_token(kube, namespace, "vm", OWNER or {}) == name  # type: ignore[arg-type]
    again = await client.CoreV1Api(kube).read_namespaced_secret(name, namespace)
    assert token_of(kube.sanitize_for_serialization(again)) == token  # never rotated


async def test_a_replication_job_runs_reports_and_is_cleaned_up(
    kube: Any, namespace: str, sandbox: Any, tmp_path: Path
) -> None:
    from kubernetes_asyncio import client

    secret_name = await ensure_token(kube, namespace, "vm", OWNER)
    secret = await client.CoreV1Api(kube).read_namespaced_secret(secret_name, namespace)
    token = token_of(kube.sanitize_for_serialization(secret))
    assert token is not None
    a, b = tmp_path / "a", tmp_path / "b"
    seed(a, 9)
    with LocalJobRunner(sandbox.kubeconfig_path, namespace, workdir=tmp_path / "jobs"):
        async with member(a, token=token) as ua, member(b, token=token) as ub:
            job = ReplicationJob(namespace, "vm", ua, ub, secret_name, IMAGE, owner=OWNER)
            name = await ensure_replication_job(kube, job)
            assert name is not None
            assert await ensure_replication_job(kube, job) is None  # never two at once
            result = await _finished(kube, namespace, name)
            assert result.succeeded, result
            assert tree(b) == tree(a)
            assert result.report is not None and result.report.files == 9
            newest = newest_finished(await list_jobs(kube, namespace, "vm"))
            assert newest is not None and newest["metadata"]["name"] == name
            latest = await read_result(kube, namespace, newest)
            assert latest is not None and latest.status_fields()["files"] == 9
            # a Job against a member that does not answer fails with the replicate's reason
            unanswered = "http://127.0.0.1:9/replication"
            bad = await ensure_replication_job(
                kube, replace(job, target_url=unanswered, kind="files")
            )
            assert bad is not None
            failed = await _finished(kube, namespace, bad)
            assert not failed.succeeded
            assert failed.report is not None and "target" in failed.message
    assert sorted(await cleanup_jobs(kube, namespace, "vm", keep=1)) == [name]
    assert [j["metadata"]["name"] for j in await list_jobs(kube, namespace, "vm")] == [bad]
