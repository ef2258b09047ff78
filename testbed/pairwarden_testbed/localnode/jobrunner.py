"""Sandbox stand-in for the Job controller and kubelet, for replication Jobs only: runs a
Job's first container as a local process and writes the Job's status like the real
controller (startTime, active, succeeded/failed, completionTime, Complete/Failed conditions).

Each attempt is a Pod, as the Job controller makes it (`job-name` and `controller-uid` labels,
the Job as its controller owner), bound to the node `JOB_NODE` so the sandbox's kubelet leaves
it alone. When the process exits, the Pod's status says so as a kubelet writes it: phase
Succeeded or Failed, and the container's `state.terminated` with the termination message
(podspec.termination_message), which is where the operator reads the replication report.
The Job's status is written after the Pod's, as the real controller counts finished pods.

A leading `pairwarden` becomes `python -m pairwarden.cli`; Secret and emptyDir volumes become
files in a work dir (so `--token-file` works), the terminationMessagePath a file there;
downward API env gets the pod's fields. The child acts as what its pod template would be given
(credentials.py): a replication Job's ServiceAccount mounts no token (the chart, the operator),
so it gets no kubeconfig at all. Honours backoffLimit (immediate retries), activeDeadlineSeconds,
ttlSecondsAfterFinished, and kills the process (and deletes its pods, as the garbage collector
would) when its Job is deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pairwarden.kube import sync_api_client
from pairwarden_testbed.credentials import credentials, write_kubeconfig_as
from pairwarden_testbed.lifecycle import Service
from pairwarden_testbed.localnode import podspec, security
from pairwarden_testbed.localnode.watcher import ResourceWatcher

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]
LABEL_REPLICATION = "pairwarden.io/replication"
TERMINATION_LOG = "/dev/termination-log"
JOB_NODE = "pairwarden-jobrunner"  # the node the runner's pods are bound to


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_runnable(job: Obj) -> bool:
    """Replication Jobs, or Jobs whose containers all run `pairwarden/...` images."""
    meta = job.get("metadata") or {}
    if (meta.get("labels") or {}).get(LABEL_REPLICATION) == "true":
        return True
    spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    return podspec.is_local_pod({"spec": spec})


def is_finished(job: Obj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def pod_for(job: Obj, suffix: str) -> dict[str, Any]:
    """The Pod the Job controller would create for one attempt of `job` (pure)."""
    meta = job["metadata"]
    name, uid = str(meta["name"]), str(meta.get("uid", ""))
    template = job["spec"]["template"]
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels.update({"job-name": name, "controller-uid": uid})
    owner: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid}
    owner.update({"controller": True, "blockOwnerDeletion": True})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-{suffix}", "labels": labels, "ownerReferences": [owner]},
        "spec": {**template["spec"], "nodeName": JOB_NODE},
    }


def terminated_pod_status(
    container: Obj, started: str, exit_code: int, message: str
) -> dict[str, Any]:
    """A finished pod's status as the kubelet writes it (pure)."""
    terminated: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started,
        "finishedAt": _now(),
    }
    if message:
        terminated["message"] = message
    status = {"name": container["name"], "image": container.get("image", ""), "imageID": ""}
    status.update({"ready": False, "started": False, "restartCount": 0})
    return {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "startTime": started,
        "containerStatuses": [{**status, "state": {"terminated": terminated}}],
    }


def final_status(started: str, succeeded: bool, reason: str, message: str) -> dict[str, Any]:
    """The status the Job controller writes when a Job (with one pod) ends (pure)."""
    now = _now()
    kind = "Complete" if succeeded else "Failed"
    status: dict[str, Any] = {
        "startTime": started, "active": 0, "ready": 0,
        "succeeded": 1 if succeeded else 0, "failed": 0 if succeeded else 1,
        "conditions": [{"type": kind, "status": "True", "lastProbeTime": now,
                        "lastTransitionTime": now, "reason": reason, "message": message}],
    }  # fmt: skip
    if succeeded:
        status["completionTime"] = now
    return status


class _Run:
    """One Job being run: its work dir, its process and its deadline."""

    def __init__(self, runner: LocalJobRunner, job: Obj) -> None:
        self.runner = runner
        self.job = job
        meta = job["metadata"]
        self.name = str(meta["name"])
        self.uid = str(meta.get("uid", ""))
        self.workdir = runner.workdir / f"{self.name}-{self.uid[:8]}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cancelled = threading.Event()
        self.thread = threading.Thread(target=self._main, name=f"job-{self.name}", daemon=True)

    def cancel(self) -> None:
        self.cancelled.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _volumes(self, pod_spec: Obj) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for vol in pod_spec.get("volumes") or []:
            path = self.workdir / "volumes" / str(vol["name"])
            path.mkdir(parents=True, exist_ok=True)
            if "secret" in vol:
                secret = self.runner.core.read_namespaced_secret(
                    vol["secret"]["secretName"], self.runner.namespace
                )
                podspec.write_secret(path, secret.data, _access({"spec": pod_spec}, vol))
            out[str(vol["name"])] = path
        return out

    def _command(self) -> tuple[list[str], dict[str, str]]:
        pod_spec = self.job["spec"]["template"]["spec"]
        container = pod_spec["containers"][0]
        mounts = podspec.mount_map(container, self._volumes(pod_spec))
        mounts.append((self.message_path(container), str(self.message_file)))
        pod = pod_for(self.job, "local")
        pod["metadata"]["namespace"] = self.runner.namespace
        extra: dict[str, str] = {}
        credential = credentials(
            self.runner.core, self.runner.namespace, pod_spec, container["name"]
        )
        if credential is not None:
            path = write_kubeconfig_as(
                self.runner.kubeconfig, credential, self.workdir / "kubeconfig"
            )
            extra["KUBECONFIG"] = str(path)
        env = podspec.environment(container, pod, "127.0.0.1", mounts, os.environ, extra)
        argv = podspec.command_line(container, mounts, env)
        return argv, env

    @staticmethod
    def message_path(container: Obj) -> str:
        return str(container.get("terminationMessagePath") or TERMINATION_LOG)

    @property
    def message_file(self) -> Path:
        return self.workdir / "termination-log"

    @property
    def log_file(self) -> Path:
        return self.workdir / "output.log"

    def _main(self) -> None:
        started = _now()
        self.runner.write_status(self.name, self.uid, {"startTime": started, "active": 1})
        spec = self.job.get("spec") or {}
        attempts = int(spec.get("backoffLimit", 6)) + 1
        deadline = spec.get("activeDeadlineSeconds")
        end = time.monotonic() + float(deadline) if deadline else None
        outcome: tuple[bool, str, str] = (False, "BackoffLimitExceeded", "no attempt ran")
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            argv, env = self._command()
        except (ApiException, KeyError, ValueError, OSError) as exc:
            argv, env, attempts = [], {}, 0
            outcome = (False, "PodFailed", f"cannot start: {exc}")
        for attempt in range(attempts):
            code = self._attempt(argv, env, end)
            if self.cancelled.is_set():
                return
            if code == 0:
                outcome = (True, "Completed", "Reached expected number of succeeded pods")
                break
            if code is None:
                outcome = (False, "DeadlineExceeded", "Job was active longer than specified")
                break
            outcome = (False, "BackoffLimitExceeded", f"attempt {attempt + 1} exited {code}")
        self.runner.write_status(self.name, self.uid, final_status(started, *outcome))
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None:
            self.runner.expire_later(self.name, self.uid, float(ttl))

    def _attempt(self, argv: list[str], env: dict[str, str], end: float | None) -> int | None:
        """One pod: created, run, its status written when the process ends. The exit code,
        or None when the deadline killed it."""
        container = self.job["spec"]["template"]["spec"]["containers"][0]
        pod = self.runner.create_pod(pod_for(self.job, secrets.token_hex(3)[:5]))
        started = _now()
        self.message_file.unlink(missing_ok=True)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        try:
            code: int | None = self.proc.wait(
                None if end is None else max(0.0, end - time.monotonic())
            )
        except subprocess.TimeoutExpired:
            self.cancel()
            self.cancelled.clear()
            self.proc.wait()
            code = None
        if pod is not None and not self.cancelled.is_set():
            exit_code = 137 if code is None else code  # killed: 128 + SIGKILL
            message = podspec.termination_message(
                container, self.message_file, self.log_file, exit_code
            )
            status = terminated_pod_status(container, started, exit_code, message)
            self.runner.write_pod_status(pod, status)
        return code


def _access(pod: Obj, volume: Obj) -> Callable[[str], security.FileAccess]:
    return lambda key: security.secret_file_access(pod, volume, key)


class LocalJobRunner(Service):
    """`with LocalJobRunner(kubeconfig, namespace) as runner: ...` runs replication Jobs."""

    def __init__(
        self, kubeconfig: str | os.PathLike[str], namespace: str, *, workdir: Path | None = None
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.namespace = namespace
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="jobrunner-"))
        self._api = sync_api_client(self.kubeconfig)
        self.core = client.CoreV1Api(self._api)
        self.batch = client.BatchV1Api(self._api)
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = ResourceWatcher(self._api, namespace, "jobs", self._on_job)

    def start(self) -> LocalJobRunner:
        self._watcher.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._watcher.stop()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.cancel()
            run.thread.join(5)
        self._api.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_path(self, name: str) -> Path | None:
        with self._lock:
            run = self._runs.get(name)
        return run.workdir / "output.log" if run else None

    # ---- jobs ----------------------------------------------------------------------------

    def _on_job(self, kind: str, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        uid = job["metadata"].get("uid", "")
        with self._lock:
            known = self._runs.get(name)
        if known is not None and (kind == "DELETED" or known.uid != uid):
            known.cancel()
            with self._lock:
                self._runs.pop(name, None)
            known = None
        if kind == "DELETED":
            self.delete_pods(uid)  # the garbage collector's part
        if kind == "DELETED" or known is not None or self._stop.is_set():
            return
        if not is_runnable(job) or is_finished(job) or (job.get("status") or {}).get("startTime"):
            return  # finished, or started by an earlier runner: never run a Job twice
        run = _Run(self, job)
        with self._lock:
            self._runs[name] = run
        log.info("job %s: starting", name)
        run.thread.start()

    # ---- writing -------------------------------------------------------------------------

    def write_status(self, name: str, uid: str, status: dict[str, Any]) -> None:
        """Merge `status` into the Job's, unless the Job is now another one of that name."""

        def change(obj: dict[str, Any]) -> dict[str, Any] | None:
            if obj["metadata"].get("uid", "") != uid:
                return None
            return {**obj, "status": {**(obj.get("status") or {}), **status}}

        self._replace_status("job", name, change)

    def write_pod_status(self, name: str, status: dict[str, Any]) -> None:
        self._replace_status("pod", name, lambda obj: {**obj, "status": status})

    def _replace_status(
        self,
        kind: Literal["job", "pod"],
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> None:
        """Read, change, replace /status; again on a conflict, never on 404 (gone)."""
        if kind == "job":
            read, replace = self.batch.read_namespaced_job, self.batch.replace_namespaced_job_status
        else:
            read, replace = self.core.read_namespaced_pod, self.core.replace_namespaced_pod_status
        for _ in range(10):
            try:
                resp = read(name, self.namespace, _preload_content=False, _request_timeout=5)
                body = change(json.loads(resp.data))
                if body is not None:
                    replace(name, self.namespace, body, _request_timeout=5)
                return
            except ApiException as exc:
                if exc.status == 404:
                    return
                if exc.status != 409:
                    log.warning("status of %s %s: %s %s", kind, name, exc.status, exc.reason)
                    time.sleep(0.1)

    def create_pod(self, pod: dict[str, Any]) -> str | None:
        """The created pod's name; None (logged) when the API server refuses it."""
        try:
            self.core.create_namespaced_pod(self.namespace, pod, _request_timeout=5)
        except ApiException as exc:
            log.warning("pod %s: %s %s", pod["metadata"]["name"], exc.status, exc.reason)
            return None
        return str(pod["metadata"]["name"])

    def delete_pods(self, job_uid: str) -> None:
        if not job_uid or self._stop.is_set():
            return
        with contextlib.suppress(ApiException):
            self.core.delete_collection_namespaced_pod(
                self.namespace, label_selector=f"controller-uid={job_uid}", _request_timeout=5
            )

    def expire_later(self, name: str, uid: str, ttl: float) -> None:
        def expire() -> None:
            if self._stop.is_set():
                return
            with contextlib.suppress(ApiException):
                self.batch.delete_namespaced_job(
                    name, self.namespace, propagation_policy="Background",
                    body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)),
                )  # fmt: skip

        timer = threading.Timer(ttl, expire)
        timer.daemon = True
        timer.start()
