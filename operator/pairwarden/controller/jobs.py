"""Replication Jobs: the operator starts `pairwarden replicate` from the active member to the
inactive one at the configured intervals, at most one Job per pair at a time, and reads the
result back from the Job (docs/replication.md).

The report travels as the termination message of the Job's pod: the replicate process writes
it to the container's terminationMessagePath, the kubelet copies it into the pod's status, and
the operator lists the finished Job's pods by their `job-name` label and decodes it with
`ReplicationReport.from_message`. The pod needs no API token for that (it has none).

The operator keeps the replication Jobs in a `JobIndex`, fed by one watch per namespace, so a
replication tick reads no list from the API server: at 2,000 pairs three label-selected lists
per Job were the API server's largest cost. Its own creations and deletions go into the index
at once, so a Job it has just started is never missed.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from kubernetes_asyncio import client

from pairwarden import watching
from pairwarden.controller.client import to_dict
from pairwarden.controller.secrets import TOKEN_KEY
from pairwarden.protocol import LABEL_PAIR, ReplicationReport, parse_time

LABEL_REPLICATION = "pairwarden.io/replication"
LABEL_KIND = "pairwarden.io/replication-kind"
EPOCH_ANNOTATION = "pairwarden.io/epoch"  # the pair's epoch (so the direction) at the start
# Nanoseconds of wall time at creation: orders two Jobs made within one second, which their
# creationTimestamp (whole seconds) cannot, so cleanup never keeps an older one for the newest.
CREATED_ANNOTATION = "pairwarden.io/created-ns"
TOKEN_DIR = "/var/run/pairwarden/replication"
TERMINATION_LOG = "/dev/termination-log"
TTL_SECONDS = 300
MAX_NAME = 63  # the Job's name is also the value of its pods' job-name label
LABEL_JOB_NAME = "job-name"  # set on a Job's pods by the Job controller (every version)

ReplicationKind = Literal["files", "database", "all"]
JobState = Literal["active", "succeeded", "failed"]


def selector(pair: str) -> str:
    return f"{LABEL_PAIR}={pair},{LABEL_REPLICATION}=true"


def job_name(pair: str, short_id: str) -> str:
    stem = "-replicate-"
    return f"{pair[: MAX_NAME - len(stem) - len(short_id)]}{stem}{short_id}"


@dataclass(frozen=True)
class ReplicationJob:
    """One copy the operator orders: which pair, from which member's file API to which, with
    which token, image and identity. The Job's manifest is made from it alone (`job_body`)."""

    namespace: str
    pair: str
    source_url: str
    target_url: str
    secret_name: str
    image: str
    kind: ReplicationKind = "all"
    owner: dict[str, Any] | None = None  # the FailoverPair's ownerReference
    directories: Sequence[str] | None = None
    service_account: str | None = None
    deadline_seconds: int = 600
    epoch: int | None = None  # the pair's epoch (so the direction) when the Job starts

    def args(self) -> list[str]:
        """The replicate command's arguments."""
        token_file = f"{TOKEN_DIR}/{TOKEN_KEY}"
        args = ["--from", self.source_url, "--to", self.target_url, "--pair", self.pair]
        args += ["--token-file", token_file, "--report-json", TERMINATION_LOG]
        if self.kind in ("database", "all"):
            args.append("--db")
        if self.kind == "database":
            args.append("--no-files")
        if self.directories:
            args += ["--directories", *self.directories]
        return args


# The images run as uid/gid 10001 (images/Dockerfile); the restricted Pod Security profile.
POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def job_body(name: str, job: ReplicationJob) -> dict[str, Any]:
    """The Job manifest (pure). backoffLimit 0: the next interval is the retry."""
    labels = {LABEL_PAIR: job.pair, LABEL_REPLICATION: "true", LABEL_KIND: job.kind}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # The Job calls no Kubernetes API: no token in the pod at all.
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        "containers": [
            {
                "name": "replicate",
                "image": job.image,
                "command": ["pairwarden", "replicate"],
                "args": job.args(),
                "volumeMounts": [{"name": "token", "mountPath": TOKEN_DIR, "readOnly": True}],
                "terminationMessagePath": TERMINATION_LOG,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "securityContext": CONTAINER_SECURITY,
            }
        ],
        # 0440 with the pod's fsGroup: readable by the image's uid 10001, by no one else.
        "volumes": [
            {"name": "token", "secret": {"secretName": job.secret_name, "defaultMode": 0o440}}
        ],
    }
    if job.service_account:
        pod_spec["serviceAccountName"] = job.service_account
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if job.epoch is not None:
        metadata["annotations"] = {EPOCH_ANNOTATION: str(job.epoch)}
    if job.owner:
        metadata["ownerReferences"] = [job.owner]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": job.deadline_seconds,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def job_state(job: dict[str, Any]) -> JobState:
    """Finished once a Complete or Failed condition is True, as the Job controller says."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return "succeeded" if cond["type"] == "Complete" else "failed"
    return "active"


@dataclass(frozen=True)
class JobResult:
    name: str
    succeeded: bool
    finished: datetime | None
    report: ReplicationReport | None
    message: str
    epoch: int | None = None  # the pair's epoch when the Job started

    def status_fields(self) -> dict[str, Any]:
        """camelCase fields for `status.replication` (lastRun/lastSuccess/files/bytes/message);
        the caller keeps lastSuccess from before when this run failed."""
        out: dict[str, Any] = {"message": self.message}
        if self.epoch is not None:
            out["epoch"] = self.epoch
        if self.finished is not None:
            stamp = self.finished.isoformat().replace("+00:00", "Z")
            out["lastRun"] = stamp
            if self.succeeded:
                out["lastSuccess"] = stamp
        if self.report:
            out["files"] = self.report.files
            out["bytes"] = self.report.bytes + self.report.db_bytes
        return out


def finished_at(job: dict[str, Any]) -> datetime | None:
    status = job.get("status") or {}
    stamps = [status.get("completionTime")] + [
        c.get("lastTransitionTime") for c in status.get("conditions") or []
    ]
    times = [t for s in stamps if (t := parse_time(str(s) if s else None))]
    return max(times) if times else None


def report_of(pods: Iterable[dict[str, Any]]) -> ReplicationReport | None:
    """The report a Job's pods left in their termination messages (pure): the last one to
    finish that left one. None when no pod did (killed before writing, or already gone)."""
    ended = [
        (str(terminated.get("finishedAt") or ""), report)
        for pod in pods
        for container in (pod.get("status") or {}).get("containerStatuses") or []
        if isinstance(terminated := (container.get("state") or {}).get("terminated"), dict)
        and (report := ReplicationReport.from_message(terminated.get("message")))
    ]
    return max(ended, key=lambda e: e[0])[1] if ended else None


def result_of(job: dict[str, Any], pods: Iterable[dict[str, Any]] = ()) -> JobResult | None:
    """The result of a finished Job (None while it runs), with the report its pods left."""
    state = job_state(job)
    if state == "active":
        return None
    epoch = ((job.get("metadata") or {}).get("annotations") or {}).get(EPOCH_ANNOTATION)
    report = report_of(pods)
    conds = (job.get("status") or {}).get("conditions") or []
    failed = [c for c in conds if c.get("type") == "Failed" and c.get("status") == "True"]
    reason = f"{failed[0].get('reason', '')}: {failed[0].get('message', '')}" if failed else ""
    if report is not None and report.error:
        message = report.error
    elif state == "failed":
        message = reason.strip(": ") or "replication job failed"
    else:
        message = f"copied {report.files} files" if report else "replication done"
    return JobResult(
        name=job["metadata"]["name"],
        succeeded=state == "succeeded",
        finished=finished_at(job),
        report=report,
        message=message,
        epoch=int(epoch) if epoch and epoch.isdigit() else None,
    )


async def read_result(
    api: client.ApiClient, namespace: str, job: dict[str, Any]
) -> JobResult | None:
    """A finished Job's result (None while it runs), its report read from its pods' status:
    one list by the `job-name` label (the operator may list pods in the namespace)."""
    if job_state(job) == "active":
        return None
    selector = f"{LABEL_JOB_NAME}={job['metadata']['name']}"
    listed = await client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector)
    return result_of(job, to_dict(api, listed).get("items") or [])


PairKey = tuple[str, str]  # (namespace, pair)


@dataclass
class JobIndex:
    """The replication Jobs as the watch last delivered them, by pair, with the operator's own
    creations and deletions applied at once. `jobs()` answers None for a namespace whose first
    listing has not arrived yet: the caller then asks the API server, as before a restart.

    A listing may have been taken before a Job the operator has just created: such a Job stays
    in the index until the watch delivers it, or a second one would be started beside it."""

    _jobs: dict[PairKey, dict[str, dict[str, Any]]] = field(default_factory=dict)
    _synced: set[str | None] = field(default_factory=set)  # namespaces listed; None: all
    _unseen: dict[str, dict[str, Any]] = field(default_factory=dict)  # created, not yet watched

    def jobs(self, namespace: str, pair: str) -> list[dict[str, Any]] | None:
        if None not in self._synced and namespace not in self._synced:
            return None
        return list(self._jobs.get((namespace, pair), {}).values())

    def listed(self, scope: str | None, items: Iterable[dict[str, Any]]) -> list[PairKey]:
        """Replace what the index holds for `scope` (a namespace, or None for all) with a
        fresh listing; the pairs whose Job finished meanwhile."""
        before = {key: jobs for key, jobs in self._jobs.items() if scope is None or key[0] == scope}
        for key in before:
            del self._jobs[key]
        for job in items:
            self.record("ADDED", job)
        for job in list(self._unseen.values()):
            if scope is None or job["metadata"].get("namespace") == scope:
                self._apply("ADDED", job)
        self._synced.add(scope)
        return [
            key
            for key, jobs in self._jobs.items()
            if any(
                name not in before.get(key, {}) or _newly_finished(before[key][name], job)
                for name, job in jobs.items()
                if job_state(job) != "active"
            )
        ]

    def created(self, job: dict[str, Any]) -> None:
        """The operator's own creation, before the watch delivers it."""
        self._unseen[str(job["metadata"]["name"])] = _summary(job)
        self._apply("ADDED", job)

    def record(self, kind: str, job: dict[str, Any]) -> PairKey | None:
        """Take one event (or the operator's own deletion); the pair if this Job just
        finished."""
        self._unseen.pop(str((job.get("metadata") or {}).get("name")), None)
        return self._apply(kind, job)

    def _apply(self, kind: str, job: dict[str, Any]) -> PairKey | None:
        meta = job.get("metadata") or {}
        pair = (meta.get("labels") or {}).get(LABEL_PAIR)
        if not pair:
            return None
        key, name = (str(meta.get("namespace") or ""), str(pair)), str(meta.get("name"))
        jobs = self._jobs.setdefault(key, {})
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            jobs.pop(name, None)
            if not jobs:
                del self._jobs[key]
            return None
        before = jobs.get(name)
        jobs[name] = _summary(job)
        finished = job_state(job) != "active" and (before is None or _newly_finished(before, job))
        return key if finished else None

    def forget(self, namespace: str, pair: str) -> None:
        self._jobs.pop((namespace, pair), None)


def _summary(job: dict[str, Any]) -> dict[str, Any]:
    """What results and clean-up read: the pod template is most of a Job and not needed."""
    meta = job.get("metadata") or {}
    kept = ("name", "namespace", "labels", "annotations", "creationTimestamp", "resourceVersion")
    return {
        "metadata": {k: meta[k] for k in kept if k in meta},
        "status": job.get("status") or {},
    }


def _newly_finished(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return job_state(before) == "active" and job_state(after) != "active"


async def watch(
    api: client.ApiClient,
    namespace: str | None,
    index: JobIndex,
    finished: Callable[[str, str], None],
) -> None:
    """Keep `index` current for `namespace` (None: all) until cancelled, and call
    `finished(namespace, pair)` when a pair's Job completes or fails: the pair reads the
    result at once instead of polling."""
    batch = client.BatchV1Api(api)
    lister = (
        functools.partial(batch.list_job_for_all_namespaces, label_selector=LABEL_REPLICATION)
        if namespace is None
        else functools.partial(
            batch.list_namespaced_job, namespace, label_selector=LABEL_REPLICATION
        )
    )

    def listed(items: list[dict[str, Any]]) -> None:
        for key in index.listed(namespace, items):
            finished(*key)

    def changed(kind: str, job: dict[str, Any]) -> None:
        key = index.record(kind, job)
        if key is not None:
            finished(*key)

    await watching.follow(lister, listed, changed, f"replication Job ({namespace or 'all'})")


async def list_jobs(
    api: client.ApiClient, namespace: str, pair: str, index: JobIndex | None = None
) -> list[dict[str, Any]]:
    """The pair's replication Jobs, oldest first: from the index once it has listed, else from
    the API server."""
    items = index.jobs(namespace, pair) if index is not None else None
    if items is None:
        batch = client.BatchV1Api(api)
        listed = await batch.list_namespaced_job(namespace, label_selector=selector(pair))
        items = to_dict(api, listed).get("items") or []
    return sorted(items, key=_creation_order)


def _creation_order(job: dict[str, Any]) -> tuple[str, int, str]:
    meta = job["metadata"]
    created = str((meta.get("annotations") or {}).get(CREATED_ANNOTATION) or "")
    return (
        meta.get("creationTimestamp") or "",
        int(created) if created.isdigit() else 0,
        meta["name"],
    )


async def ensure_replication_job(
    api: client.ApiClient, job: ReplicationJob, index: JobIndex | None = None
) -> str | None:
    """Start a replication Job unless one is still running for the pair; the new Job's name,
    or None when one is active (never two at once: they would race on the target's batch)."""
    listed = await list_jobs(api, job.namespace, job.pair, index)
    if any(job_state(j) == "active" for j in listed):
        return None
    name = job_name(job.pair, secrets.token_hex(3))
    body = job_body(name, job)
    body["metadata"].setdefault("annotations", {})[CREATED_ANNOTATION] = str(time.time_ns())
    batch = client.BatchV1Api(api)
    created = await batch.create_namespaced_job(job.namespace, body)
    if index is not None:
        index.created(to_dict(api, created))
    return name


def newest_finished(jobs: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The most recently finished Job, if any is left (pure)."""
    done = [j for j in jobs if job_state(j) != "active"]
    done.sort(key=lambda j: (finished_at(j) is not None, finished_at(j) or datetime.min))
    return done[-1] if done else None


async def cleanup_jobs(
    api: client.ApiClient,
    namespace: str,
    pair: str,
    keep: int = 3,
    index: JobIndex | None = None,
) -> list[str]:
    """Delete finished Jobs beyond the newest `keep` (and their pods); ttlSecondsAfterFinished
    does the same where the TTL controller runs. Returns the deleted names."""
    jobs = await list_jobs(api, namespace, pair, index)
    finished = [j for j in jobs if job_state(j) != "active"]
    doomed = finished[: max(0, len(finished) - keep)]
    return [
        job["metadata"]["name"] for job in doomed if await delete_job(api, namespace, job, index)
    ]


async def delete_job(
    api: client.ApiClient, namespace: str, job: dict[str, Any], index: JobIndex | None = None
) -> bool:
    """Delete one Job and its pods; False when it was already gone."""
    gone = True
    try:
        await client.BatchV1Api(api).delete_namespaced_job(
            job["metadata"]["name"], namespace, propagation_policy="Background"
        )
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        gone = False
    if index is not None:
        index.record("DELETED", job)
    return gone
