"""Replication as the operator runs it: when a Job is due, and what its result means.

The reference copies changed files at the File Replication Interval and the database every
minute, from the active server to the inactive one, and the other way round after a failover
("two-way"). Here one Job does both (the replicate command copies the database only when it
changed), at the shorter of the two intervals, and a role change makes the next Job due at
once, in the new direction. Nothing runs while the pair is paused or a member is down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes_asyncio import client

from pairwarden.api.models import (
    Condition,
    FailoverPairSpec,
    FailoverPairStatus,
    ReplicationStatus,
    member_from_wire,
)
from pairwarden.controller import jobs, metrics, pods, secrets
from pairwarden.protocol import Member, MemberReport, other


@dataclass(frozen=True)
class ReplicationSettings:
    """How the operator launches Jobs: set from its command line (the chart's values)."""

    image: str = "pairwarden/agent:dev"
    service_account: str | None = None
    agent_port: int = 8082  # the agents' file API (agent/main.py REPLICATION_PORT)


@dataclass
class ReplicationMemory:
    secret: str | None = None
    running: str | None = None  # the Job we started and have not read the result of
    version: str | None = None  # the source's data version when that Job started
    epoch: int | None = None  # the pair's epoch (so the direction) when that Job started


def stale(memory: ReplicationMemory, status: FailoverPairStatus) -> bool:
    """Pure: our running Job copies in a direction the pair has left (a failover since it
    started). The new active member refuses its writes (409 target-active), so letting it run
    only holds back the copy the other way, which waits for our Job to end."""
    return memory.running is not None and memory.epoch not in (None, status.epoch)


def interval_seconds(spec: FailoverPairSpec) -> float:
    return float(
        min(spec.replication.file_interval_seconds, spec.replication.database_interval_seconds)
    )


def due(
    spec: FailoverPairSpec,
    status: FailoverPairStatus,
    both_up: bool,
    now: datetime,
    version: str = "",
) -> bool:
    """Pure: should a replication Job start now? `version` is the active member's data
    version ("" when its agent publishes none: then at every interval)."""
    if spec.paused or member_from_wire(status.active_member) is None or not both_up:
        return False
    return seconds_until_due(spec, status, now, version) == 0.0


def copy_key(source: MemberReport | None, target: MemberReport | None) -> str:
    """What a finished copy stays good for: the active member's data version, onto the
    standby as its agent last started. A standby recreated with an empty volume reports a new
    start while the active's data is unchanged, and needs a copy all the same. "" when the
    active publishes no version: then a copy at every interval."""
    if source is None or not source.data_version:
        return ""
    started = target.started.isoformat() if target is not None and target.started else ""
    return f"{source.data_version}@{started}"


def seconds_until_due(
    spec: FailoverPairSpec, status: FailoverPairStatus, now: datetime, version: str = ""
) -> float | None:
    """Pure: seconds until the next copy is due (0: now), or None: not until the active
    member's data version moves from the one last copied. An idle pair then sleeps until its
    resync or the renewal that reports new data (the observation book wakes it), instead of
    looking every few seconds to find nothing changed."""
    replication = status.replication
    last = replication.last_run if replication else None
    if replication is None or last is None:
        return 0.0
    if replication.epoch != status.epoch:
        return 0.0  # a new active member since: copy in the new direction at once
    if version and version == replication.data_version:
        return None  # nothing changed since the last copy
    return max(0.0, interval_seconds(spec) - (now - last).total_seconds())


def with_result(
    status: FailoverPairStatus,
    result: jobs.JobResult,
    now: datetime,
    version: str | None = None,
) -> FailoverPairStatus:
    """Pure: the status after a finished Job, with the ReplicationHealthy condition;
    `version` is the source's data version when the Job started."""
    before = (
        status.replication.model_dump(mode="json", by_alias=True, exclude_none=True)
        if (status.replication)
        else {}
    )
    fields = result.status_fields()
    if result.succeeded and version:
        fields["dataVersion"] = version
    replication = ReplicationStatus.model_validate({**before, **fields})
    if replication.last_success is not None:
        lag = max(0.0, (now - replication.last_success).total_seconds())
        replication = replication.model_copy(update={"lag_seconds": round(lag, 3)})
    condition = Condition(
        type="ReplicationHealthy",
        status="True" if result.succeeded else "False",
        reason="Replicated" if result.succeeded else "ReplicationFailed",
        message=result.message[:1000],
        last_transition_time=now,
    )
    kept = [c for c in status.conditions if c.type != condition.type]
    old = next((c for c in status.conditions if c.type == condition.type), None)
    if old is not None and old.status == condition.status:
        condition = condition.model_copy(update={"last_transition_time": old.last_transition_time})
    return status.model_copy(update={"replication": replication, "conditions": [*kept, condition]})


def unread_job(
    listed: list[dict[str, Any]], memory: ReplicationMemory, status: FailoverPairStatus
) -> dict[str, Any] | None:
    """Pure: the finished Job whose result is not in status yet. Ours, known by its name (Job
    times have whole seconds, so two quick Jobs can share one), once it finished. With no Job
    of ours, after a restart: the newest one, if it finished after the last recorded run."""
    if memory.running is not None:
        mine = next((j for j in listed if j["metadata"]["name"] == memory.running), None)
        return mine if mine is not None and jobs.job_state(mine) != "active" else None
    newest = jobs.newest_finished(listed)
    finished = jobs.finished_at(newest) if newest is not None else None
    if finished is None:
        return None
    last_run = status.replication.last_run if status.replication else None
    return newest if last_run is None or finished > last_run else None


@dataclass(frozen=True)
class PairStep:
    """The pair as one reconcile step leaves it: what replication reads a result into and
    starts the next Job from."""

    body: Any
    spec: FailoverPairSpec
    status: FailoverPairStatus
    pod_names: Mapping[Member, str | None]
    both_up: bool  # the engine's decision: both members up, so a copy may run
    owner: dict[str, Any]
    now: datetime
    version: str = ""  # the active member's data version: a change makes a copy due

    def due(self, status: FailoverPairStatus) -> bool:
        """Whether a copy is due with `status` (the step's, or with a finished Job read in)."""
        return due(self.spec, status, self.both_up, self.now, self.version)


async def tick(
    api: client.ApiClient,
    settings: ReplicationSettings,
    memory: ReplicationMemory,
    step: PairStep,
    index: jobs.JobIndex | None = None,
) -> tuple[FailoverPairStatus, jobs.JobResult | None]:
    """Read a finished Job into status, and start the next one when due; never the next one
    while the result of ours is unread (it may finish while we look up the pods' addresses)."""
    status, now = step.status, step.now
    meta = step.body["metadata"]
    namespace, pair = meta["namespace"], meta["name"]
    if memory.running is None and not step.due(status):
        return status, None
    listed = await jobs.list_jobs(api, namespace, pair, index)
    if stale(memory, status):
        for old in [j for j in listed if j["metadata"]["name"] == memory.running]:
            if jobs.job_state(old) == "active":
                await jobs.delete_job(api, namespace, old, index)
                listed.remove(old)
        memory.running = None
    unread = unread_job(listed, memory, status)
    finished = await jobs.read_result(api, namespace, unread) if unread is not None else None
    if memory.running is not None and finished is None:
        if any(j["metadata"]["name"] == memory.running for j in listed):
            return status, None  # our Job still runs
        memory.running = None  # gone without a result: deleted by hand, or by its TTL
    if finished is not None:
        started_from = memory.version if memory.running == finished.name else None
        status = with_result(status, finished, now, started_from)
        memory.running = None
        await jobs.cleanup_jobs(api, namespace, pair, index=index)
    if status.replication and status.replication.last_success is not None:
        lag = (now - status.replication.last_success).total_seconds()
        metrics.REPLICATION_LAG.labels(namespace, pair).set(max(0.0, lag))
    if step.due(status):
        memory.secret = memory.secret or await secrets.ensure_token(
            api, namespace, pair, step.owner
        )
        source = member_from_wire(status.active_member)
        assert source is not None  # step.due: only while a member is active
        addresses = [
            await pods.ip(api, namespace, step.pod_names[m]) for m in (source, other(source))
        ]
        if all(addresses):
            urls = [f"http://{ip}:{settings.agent_port}/replication" for ip in addresses]
            job = jobs.ReplicationJob(
                namespace=namespace,
                pair=pair,
                source_url=urls[0],
                target_url=urls[1],
                secret_name=memory.secret,
                image=settings.image,
                owner=step.owner,
                directories=step.spec.replication.directories,
                service_account=settings.service_account,
                epoch=status.epoch,
            )
            started = await jobs.ensure_replication_job(api, job, index)
            if started:  # None: a Job is still running (perhaps a previous operator's)
                memory.running, memory.version, memory.epoch = started, step.version, status.epoch
    return status, finished
