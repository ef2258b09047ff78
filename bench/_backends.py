"""The API servers bench/scale.py runs against: the sandbox (a process of its own) or the real
control plane (kube-apiserver 1.20 + etcd 3.4, `pairwarden_testbed.controlplane`).

Each gives HTTP sessions per identity, a kubeconfig for the operator, the pids whose CPU is
the server's, and write counters read from the server itself: the sandbox's per-user
`/sandbox/stats`, or kube-apiserver's `apiserver_request_total` and etcd's mvcc counters.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pairwarden_testbed import controlplane, processes

REPO = Path(__file__).resolve().parent.parent
CRDS = ("failoverpairs.pairwarden.io.yaml",)
# The sandbox's identities besides admin, told apart in its /sandbox/stats (bench/scale.py).
IDENTITIES = ("operator", "jobrunner", "writers")
HTTP_VERBS = {
    "GET": "get",  # reads: counted beside the writes (a read costs the API server too)
    "LIST": "list",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
    "DELETECOLLECTION": "deletecollection",
}
# Writes the control plane makes on its own whatever the pairs do (leader election of the
# controller-manager and scheduler, 1.20's endpointsleases lock; events): not the operator's
# start-up work, so they do not keep `settle()` waiting.
HOUSEKEEPING_WRITES = ("update leases", "update endpoints", "create events", "patch events")
# The writes a flip waits on (an agent's stop, the active Lease, the Service), whose latency
# the API server measures itself (`apiserver_request_duration_seconds`).
TIMED_WRITES = ("update leases", "patch leases", "patch services")
TIMED_LABELS = [
    (next(http for http, verb in HTTP_VERBS.items() if verb == key.split()[0]), key.split()[1])
    for key in TIMED_WRITES
]  # ("PUT", "leases"), ...: the labels of their lines in /metrics


@dataclass
class Counts:
    """Cumulative requests by "verb resource": the operator's (sandbox) or all but the lease
    renewals (kubernetes); the writers' (sandbox) or every PUT of a Lease (kubernetes)."""

    operator: dict[str, int] = field(default_factory=dict)
    writers: dict[str, int] = field(default_factory=dict)
    etcd_writes: float = float("nan")
    # monotonic time of the server's snapshot (when its answer began); in a difference
    # (`minus`), the seconds between the two snapshots: the window of every rate taken from
    # them. The reader's own timestamps around the reads made it longer by a read and a parse
    # of /metrics, which counted 1-3 % more writes per second than were made.
    at: float = float("nan")
    # TIMED_WRITES: cumulative count per histogram bucket (upper bound in seconds)
    latency: dict[str, dict[float, float]] = field(default_factory=dict)

    @property
    def settling(self) -> dict[str, int]:
        return {k: n for k, n in self.operator.items() if k not in HOUSEKEEPING_WRITES}

    def minus(self, before: Counts) -> Counts:
        def sub(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            diff = {k: n - b.get(k, 0) for k, n in a.items()}
            return {k: n for k, n in diff.items() if n}

        latency = {
            key: {le: n - before.latency.get(key, {}).get(le, 0.0) for le, n in buckets.items()}
            for key, buckets in self.latency.items()
        }
        return Counts(
            sub(self.operator, before.operator),
            sub(self.writers, before.writers),
            etcd_writes=self.etcd_writes - before.etcd_writes,
            at=self.at - before.at,
            latency=latency,
        )

    def latency_quantile(self, key: str, q: float) -> float:
        """The upper bound of the histogram bucket holding the q-quantile (q in 0..1) of the
        API server's own latency for `key`; NaN without samples."""
        buckets = sorted(self.latency.get(key, {}).items())
        total = buckets[-1][1] if buckets else 0.0
        if total <= 0:
            return float("nan")
        return next(le for le, n in buckets if n >= q * total)

    def latency_count(self, key: str) -> int:
        buckets = self.latency.get(key, {})
        return int(max(buckets.values(), default=0.0))


class Backend:
    name = ""
    watch_closes = 0  # watches the server closed because their client fell behind

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Backend:
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        raise NotImplementedError

    def session(self, user: str, limit: int = 100) -> aiohttp.ClientSession:
        raise NotImplementedError

    def kubeconfig_for(self, user: str) -> Path:
        raise NotImplementedError

    def pids(self) -> dict[str, int]:
        raise NotImplementedError

    def pod_ip(self, pod: str) -> str:
        return "127.0.0.1"

    async def prepare(self, admin: aiohttp.ClientSession, namespace: str) -> None:
        async with admin.post(
            "/api/v1/namespaces", json={"metadata": {"name": namespace}}
        ) as response:
            response.raise_for_status()

    async def counts(self, admin: aiohttp.ClientSession) -> Counts:
        raise NotImplementedError


class SandboxBackend(Backend):
    """`pairwarden-testbed sandbox up` as a child process. In one process with the writers,
    the API server and 4,000 writers at 2,000 pairs shared one interpreter lock and a single
    core, which stretched every reaction measured through it."""

    name = "sandbox"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> SandboxBackend:
        command = [
            sys.executable, "-m", "pairwarden_testbed.cli", "sandbox", "up",
            "--kubeconfig", str(self.workdir / "sandbox.kubeconfig"),
            *(f"--identity={user}" for user in IDENTITIES),
        ]  # fmt: skip
        log = self.workdir / "sandbox.log"
        with log.open("a") as stderr:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        try:  # stopped meanwhile (a signal unwinds here too): the server goes with us
            assert self.process.stdout is not None
            line = self.process.stdout.readline()  # "sandbox API server listening on URL"
            if "listening on" not in line:
                raise RuntimeError(f"sandbox did not start: {line!r}; see {log}")
        except BaseException:
            self.__exit__()
            raise
        self.url = line.split("listening on", 1)[1].split()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def session(self, user: str, limit: int = 100) -> aiohttp.ClientSession:
        config = yaml.safe_load(self.kubeconfig_for(user).read_text())
        token = config["users"][0]["user"]["token"]
        return aiohttp.ClientSession(
            self.url,
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(limit=limit),
        )

    def kubeconfig_for(self, user: str) -> Path:
        """The kubeconfig `sandbox up` wrote for this identity (IDENTITIES, or admin)."""
        name = "sandbox" if user == "admin" else user
        return self.workdir / f"{name}.kubeconfig"

    def pids(self) -> dict[str, int]:
        assert self.process is not None
        return {"sandbox": self.process.pid}

    async def counts(self, admin: aiohttp.ClientSession) -> Counts:
        async with admin.get("/sandbox/stats") as response:
            at = time.monotonic()
            stats = (await response.json())["by_user"]
        return Counts(dict(stats.get("operator", {})), dict(stats.get("writers", {})), at=at)


class KubernetesBackend(Backend):
    """The real control plane, started for this run and stopped after it. Every client uses
    the admin identity (system:masters): RBAC is not what is measured here."""

    name = "kubernetes"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.plane = controlplane.ControlPlane(workdir / "control-plane")
        self.ssl: ssl.SSLContext | None = None
        self.ips: dict[str, str] = {}

    def __enter__(self) -> KubernetesBackend:
        began = time.monotonic()
        self.plane.up()  # stopped during it (a signal, an error), it stops what it started
        print(f"  control plane up in {time.monotonic() - began:.0f} s")
        # No scheduler: there is no node. With nothing to place pods on, it retried the pod
        # the Job controller makes for each replication Job, for the rest of the run, each
        # retry a FailedScheduling Event (0.013 writes/s per pair at 200 pairs, counted
        # against the pairs); deleting those pods made it worse (every deletion retries every
        # Pending pod: 25 Events per pair). The bench's own pods name no scheduler anyway.
        try:  # stopped meanwhile (a signal unwinds here too): the plane goes with us
            scheduler = self.plane.state["pids"].get("kube-scheduler")
            processes.stop([("kube-scheduler", scheduler)], self.plane.directory, grace=10)
        except BaseException:
            self.plane.down()
            raise
        self.ssl = ssl.create_default_context(cafile=str(self.plane.ca_file))
        return self

    def __exit__(self, *exc: object) -> None:
        log = self.plane.directory / "logs" / "kube-apiserver.log"
        if log.exists():
            self.watch_closes = log.read_text(errors="replace").count(
                "Forcing watcher close due to unresponsiveness"
            )
        self.plane.down()

    def session(self, user: str, limit: int = 100) -> aiohttp.ClientSession:
        token = self.plane.state["tokens"]["admin"]
        return aiohttp.ClientSession(
            self.plane.server,
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(limit=limit, ssl=self.ssl),
        )

    def kubeconfig_for(self, user: str) -> Path:
        return self.plane.kubeconfig

    def pids(self) -> dict[str, int]:
        pids = self.plane.state["pids"]
        return {k: pids[k] for k in ("kube-apiserver", "etcd", "kube-controller-manager")}

    def pod_ip(self, pod: str) -> str:
        n = self.ips.setdefault(pod, f"10.244.{len(self.ips) // 250}.{len(self.ips) % 250 + 2}")
        return n

    async def prepare(self, admin: aiohttp.ClientSession, namespace: str) -> None:
        """The CRDs by a plain POST (1.20 drops `x-kubernetes-validations`, hack/README.md),
        established; the namespace and its default ServiceAccount with its token (pods need
        both)."""
        crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        for name in CRDS:
            body = yaml.safe_load((REPO / "crds" / name).read_text())
            async with admin.post(crds, json=body) as response:
                if response.status >= 300:
                    raise RuntimeError(f"CRD {name}: {response.status} {await response.text()}")
            await _poll(admin, f"{crds}/{body['metadata']['name']}", _established)
        await super().prepare(admin, namespace)
        # 1.20's admission refuses a pod whose ServiceAccount has no token Secret yet ("No API
        # token found"), which follows the account by a moment: wait for both.
        await _poll(
            admin,
            f"/api/v1/namespaces/{namespace}/serviceaccounts/default",
            lambda account: bool(account.get("secrets")),
        )

    async def counts(self, admin: aiohttp.ClientSession) -> Counts:
        """Parsed in a thread, and only its request counters: /metrics is megabytes, and
        parsing it whole on the event loop stalled the writers' renewals under load."""
        async with admin.get("/metrics") as response:
            at = time.monotonic()
            text = await response.text()
        counts = await asyncio.to_thread(_request_counts, text)
        counts.at = at
        counts.etcd_writes = await self.etcd_writes()
        return counts

    async def etcd_writes(self) -> float:
        """etcd's puts + deletes (3.4: etcd_mvcc_*_total, or the debugging names)."""
        url = f"http://127.0.0.1:{self.plane.state['ports']['etcd']}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(("etcd_mvcc_", "etcd_debugging_mvcc_")):
                name, _, value = line.partition(" ")
                found[name] = found.get(name, 0.0) + float(value)
        for names in (
            ("etcd_mvcc_put_total", "etcd_mvcc_delete_total"),
            ("etcd_debugging_mvcc_put_total", "etcd_debugging_mvcc_delete_total"),
        ):
            if names[0] in found:
                return sum(found.get(n, 0.0) for n in names)
        return float("nan")


def _request_counts(metrics: str) -> Counts:
    """Requests (writes, GETs and LISTs) by "verb resource[/subresource]" from kube-apiserver's
    `apiserver_request_total`; a PUT of a Lease goes to `writers`, the rest to `operator`."""

    def wanted(line: str) -> bool:
        if line.startswith("apiserver_request_total{"):
            return True
        # thousands of bucket lines: only those of TIMED_WRITES reach the (slow) parser
        return line.startswith("apiserver_request_duration_seconds_bucket{") and any(
            f'resource="{resource}"' in line and f'verb="{verb}"' in line
            for verb, resource in TIMED_LABELS
        )

    lines = "\n".join(line for line in metrics.splitlines() if wanted(line))
    counts = Counts()
    for family in text_string_to_metric_families(lines + "\n"):
        for sample in family.samples:
            verb = HTTP_VERBS.get(sample.labels.get("verb", ""))
            if verb is None:
                continue
            resource = sample.labels.get("resource", "")
            if not resource:  # /metrics, /healthz (the path is the subresource): readers'
                continue
            if sample.labels.get("subresource"):
                resource += "/" + sample.labels["subresource"]
            key = f"{verb} {resource}"
            if sample.name.endswith("_bucket"):
                if key in TIMED_WRITES:
                    buckets = counts.latency.setdefault(key, {})
                    le = float(sample.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + sample.value
                continue
            into = counts.writers if key == "update leases" else counts.operator
            into[key] = into.get(key, 0) + int(sample.value)
    return counts


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


async def _poll(admin: aiohttp.ClientSession, path: str, ok: Any, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        async with admin.get(path) as response:
            if response.status == 200 and ok(await response.json()):
                return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{path} not ready after {limit:.0f} s")


BACKENDS: dict[str, type[Backend]] = {"sandbox": SandboxBackend, "kubernetes": KubernetesBackend}


def resolve(choice: str) -> list[str]:
    """`sandbox`, `kubernetes`, a comma list, or `all`: the sandbox, then the real control
    plane when its binaries are cached here (else a line saying it was skipped and why)."""
    if choice != "all":
        names = choice.split(",")
        unknown = [n for n in names if n not in BACKENDS]
        if unknown:
            raise SystemExit(f"unknown backend {', '.join(unknown)}: sandbox or kubernetes")
        return names
    reason = controlplane.unavailable()
    if reason is None:
        return ["sandbox", "kubernetes"]
    print(f"backend kubernetes: skipped ({reason})")
    return ["sandbox"]
