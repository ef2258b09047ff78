"""Scale benchmark: one operator replica against N simulated pairs.

Three processes, as in a cluster: the sandbox API server (`pairwarden-testbed sandbox up`), the real
operator, and this one with 2N lightweight lease writers on one asyncio loop, speaking the
agent's protocol (a PUT of the member Lease every R with `MemberReport.to_annotations()` and
`spec.renewTime`, an extra write at once for a clean stop). Not full agents: no voicemail
processes, no fencing; a member answers while the active Lease names it and says so at once
when that changes (the revoke of a manual move waits for it), as the agent does. Each client
has its own identity, so the sandbox's per-user counters separate the operator's requests
from the writers'. All three share the machine's cores: the
figures are upper bounds.

Measured per N: time until every pair has an active member after the operator starts; API
writes per second per pair in steady state (writers, operator, total) over >= 3 renewals;
operator CPU (utime+stime from /proc) and RSS over that window; reaction while faults are
injected into a sample of pairs, from the cause to the Service selector change seen by a watch:
a clean stop (`pairwarden.io/agent=stopping`, from just before that write) and a crash (the
active member stops renewing; from its last renewal sent + the window W). The writers publish
an unchanging data version, as idle agents do, so replication runs once per pair and then only
after a role change; `--changing-data` makes every pair busy instead. Once steady state is
measured, a census of what a pair costs the API server (bench/_census.py: objects per pair by
kind, bytes and managedFields, watches by kind), and over the whole run the operator's open
sockets (a verdict: at most SOCKETS).

    python bench/scale.py                        # 100, 500, 2000 pairs; 1000 ms x 30
    python bench/scale.py --short                # 100 and 500 pairs; 500 ms x 20 (make bench)
    python bench/scale.py --short --backend all  # + 20 on the real control plane (and sandbox)
    python bench/scale.py --pairs 2000 --profile 20   # also py-spy the operator (if on PATH)
    python bench/scale.py --pairs 500 --changing-data  # a replication Job per pair per minute
    python bench/scale.py --backend kubernetes --pairs 100,500   # real kube-apiserver + etcd

`--backend kubernetes` starts the real control plane (hack/control-plane.sh, Kubernetes 1.20.2 and
etcd 3.4) in place of the sandbox, one per pair count: every client then uses its admin identity,
so writes are counted at the API server from its own `apiserver_request_total` (a difference
over the steady window, by verb and resource) and split by what only the agents do (PUT of a
Lease) against all the rest (operator, controller-manager, leader election); etcd's puts and
deletes over the same window stand beside them. No kube-scheduler runs (there is no node: it
only retried the replication Jobs' pods, an Event each time) and the pods name none anyway,
so no scheduler write enters the count, and get pod IPs from 10.244/16 (an Endpoints refuses
loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _census
from _backends import BACKENDS, TIMED_WRITES, Backend, resolve
from _common import (
    RunLog,
    machine,
    open_sockets,
    percentile,
    sample_process,
    seconds,
    summary,
    verdict,
)
from pairwarden import GROUP, VERSION
from pairwarden.agent.core import (
    RelayInputs,
    hello_period,
    must_renew_own_lease,
    own_renewal_due,
    relayed_since,
    report_news,
)
from pairwarden.controller import handlers
from pairwarden.controller.reconcile import HOUSEKEEPING
from pairwarden.protocol import (
    ANNOTATION_ACTIVE_MEMBER,
    ANNOTATION_REQUEST,
    ANNOTATION_REQUEST_ID,
    LABEL_MEMBER,
    LABEL_PAIR,
    MEMBERS,
    HeartbeatSizing,
    Member,
    MemberReport,
    other,
)
from pairwarden_testbed.lifecycle import sigterm_unwinds
from pairwarden_testbed.localcluster import OperatorProcess, failover_pair

NS = "scale"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
PODS = f"/api/v1/namespaces/{NS}/pods"
SERVICES = f"/api/v1/namespaces/{NS}/services"
PAIRS = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/failoverpairs"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
MERGE = {"Content-Type": "application/merge-patch+json"}

# Targets (issue 7)
WRITES_PER_PAIR = 0.2
REACTION_P99 = 1.0
CPU_CORES = 1.0
RSS_MB = 500.0
# The operator's sockets at most: kopf's session, bounded (controller.handlers: a TLS
# connection costs it ~300 KiB), the operator's own client (kubernetes_asyncio's pool of 100,
# its watches included), its metrics listener and its event loop's self-pipe (a socket pair):
# 121 at 200 pairs on a slow server (load 24), on kube-apiserver and the sandbox alike. kopf's
# session had no bound before, and a start opened one connection per pair.
SOCKETS = (
    handlers.kopf_connections([NS])
    + kubernetes_asyncio.client.Configuration().connection_pool_maxsize
    + 3
)
SHORT_KUBERNETES = 20  # pairs on the real control plane in --short (make bench)
STRAGGLERS = 60.0  # seconds a fault may take to flip before it counts as never flipped


def micro_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Writer:
    """One member's agent, reduced to its writes: renew every R, write a stop at once; the
    standby's heartbeat rides the holder's renewal (docs/protocol.md) through the agent's own
    rule (`must_renew_own_lease`), its hello a call into the other writer (both live in
    this process: the peer link works while the other writer runs). The standby's read of
    the active Lease per R is left out: reads are not what is counted."""

    def __init__(self, sim: Simulation, pair: str, member: Member) -> None:
        self.sim, self.pair, self.member = sim, pair, member
        self.name = f"{pair}-{member}"
        self.pod = f"{pair}-{member}"
        self.obj: dict[str, Any] | None = None
        self.started = datetime.now(UTC)
        self.stopping = False
        self.last_sent = math.nan  # monotonic, before the last successful renewal was sent
        self.last_wall: datetime | None = None
        self.errors = 0
        self.renewals = 0  # with --changing-data, each renewal publishes new data
        self.renewing = asyncio.Lock()  # a fault waits for a renewal in flight to land
        self.answered = False  # the answer the last renewal carried
        self.task: asyncio.Task[None] | None = None
        self.written: MemberReport | None = None  # what the last successful renewal carried
        self.hello_heard: float | None = None  # the other writer's last hello, heard
        self.relayed_at: float | None = None
        self.hello_failed_since: float | None = None
        # every renewal attempted: (sent, answered, HTTP status; 0 when no answer came)
        self.history: list[tuple[float, float, int]] = []

    def report(self) -> MemberReport:
        contact = None
        if self.member == "secondary":  # the real agent: when it last saw the primary renew
            primary = self.sim.writers[(self.pair, "primary")]
            contact = primary.started if self.sim.static_contact else primary.last_wall
        heard = self.hello_heard
        relayed = None if heard is None else max(0, round((time.monotonic() - heard) * 1000))
        return MemberReport(
            peer_heard_ms=relayed,
            agent_running=not self.stopping,
            service_up=True,
            answering=self.answering(),
            epoch=self.sim.epochs.get(self.pair, 0),  # the active Lease's, as heard
            cpu_percent=3,
            calls_in_progress=0,
            started=self.started,
            primary_contact=contact,
            settings_digest="bench",
            data_version=f"{self.name}-{self.renewals}" if self.sim.changing_data else "idle",
        )

    def answering(self) -> bool:
        """As the agent's `decide_answer`: while the active Lease names this member."""
        return not self.stopping and self.sim.holders.get(self.pair) == self.member

    def hear_active(self) -> None:
        """The active Lease moved: an agent whose answer changes says so at once (an urgent
        renewal), which is what a revoke waits for before its grant."""
        if self.task is not None and not self.task.done() and self.answering() != self.answered:
            self.sim.tasks.append(asyncio.get_running_loop().create_task(self.renew_quietly()))

    async def renew_quietly(self) -> None:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            await self.renew()

    async def renew(self) -> None:
        async with self.renewing:
            await self._renew()

    async def _renew(self) -> None:
        assert self.obj is not None
        body = json.loads(json.dumps(self.obj))
        meta, spec = body["metadata"], body.setdefault("spec", {})
        report = self.report()
        meta.setdefault("annotations", {}).update(report.to_annotations())
        now = datetime.now(UTC)
        spec.update(
            holderIdentity="" if self.stopping else self.pod,
            renewTime=micro_time(now),
            leaseDurationSeconds=self.sim.sizing.lease_duration_seconds,
        )
        answered = self.answering()
        sent = time.monotonic()
        url = f"{LEASES}/{self.name}"
        status = 0
        # An agent gives up on a renewal after its request timeout (then tries again).
        timeout = aiohttp.ClientTimeout(total=self.sim.sizing.request_timeout)
        try:
            async with self.sim.writers_http.put(url, json=body, timeout=timeout) as response:
                status = response.status
                await self._answered(response, url)
        finally:
            self.history.append((sent, time.monotonic(), status))
        if 200 <= status < 300:
            self.last_sent, self.last_wall, self.written = sent, now, report
            self.answered = answered
            self.renewals += 1

    async def _answered(self, response: aiohttp.ClientResponse, url: str) -> None:
        """Keep the Lease as written, or (409) as it is now, for the next renewal."""
        if response.status == 409:
            async with self.sim.writers_http.get(url) as fresh:
                self.obj = await fresh.json()
        if response.status >= 300:
            self.errors += 1
            return
        self.obj = await response.json()

    def relay_inputs(self, now: float) -> RelayInputs:
        urgent, changed = report_news(self.report(), self.written)
        holder = self.sim.holders.get(self.pair)
        return RelayInputs(
            pod=self.pod,
            holder=None if self.stopping or not holder else f"{self.pair}-{holder}",
            linked=True,
            last_own_sent=None if math.isnan(self.last_sent) else self.last_sent,
            api_heard=now,
            relayed_at=self.relayed_at,
            hello_failed_since=self.hello_failed_since,
            urgent=urgent,
            report_changed=changed,
        )

    def hello(self, now: float) -> None:
        """agent.runner.Agent.relay_once, the hello and its acknowledgement."""
        holder = self.sim.writers[(self.pair, other(self.member))]
        if holder.task is None or holder.task.done():
            self.hello_failed_since = self.hello_failed_since or now
            return
        self.hello_failed_since = None
        holder.hello_heard = now
        relayed = holder.written.peer_heard_ms if holder.written is not None else None
        if relayed is not None and not math.isnan(holder.last_sent):
            at = relayed_since(now, round((now - holder.last_sent) * 1000), relayed)
            if at is not None:
                self.relayed_at = max(self.relayed_at or at, at)

    async def run(self) -> None:
        sizing = self.sim.sizing
        with contextlib.suppress(aiohttp.ClientError, OSError):
            await self.renew()  # at once, as an agent does when its Lease appears
        await asyncio.sleep(random.uniform(0, sizing.renew_period))  # spread the phases
        while True:
            now = time.monotonic()
            inputs = self.relay_inputs(now)
            relaying = inputs.holder is not None and inputs.holder != self.pod
            if must_renew_own_lease(inputs, sizing, now) is not None:
                before = self.last_sent
                try:
                    await self.renew()
                except (aiohttp.ClientError, OSError):
                    self.errors += 1
                if self.last_sent == before or math.isnan(self.last_sent):  # failed: later
                    await asyncio.sleep(sizing.renew_period / 2)
                    continue
            elif relaying:
                self.hello(now)
            now = time.monotonic()
            due = own_renewal_due(self.relay_inputs(now), sizing, now)[0]
            cap = hello_period(sizing) if relaying else sizing.renew_period
            await asyncio.sleep(max(0.0, min(due - now, cap)))

    async def stop_cleanly(self) -> float:
        """SIGTERM: one write saying `stopping` (holder cleared), then silence. The time just
        before that write."""
        await self.crash()
        self.stopping = True
        began = time.monotonic()
        # A stop write that fails (or times out) leaves silence, as an agent's would: the
        # fault stays timed from here, not the benchmark ended.
        with contextlib.suppress(aiohttp.ClientError, OSError):
            await self.renew()
        return began

    async def crash(self) -> None:
        """Stop renewing between two renewals: one cancelled in flight might or might not
        reach the API server, and the cause (the last renewal + W) would be unknown."""
        async with self.renewing:
            self.cancel()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


@dataclass
class Flips:
    """Selector member per pair, as the Service watch delivers it, with arrival times."""

    expected: int
    events: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    activated: dict[str, float] = field(default_factory=dict)
    all_active: asyncio.Event = field(default_factory=asyncio.Event)
    # every Service event per pair: (arrival, watch event type, selector member)
    seen: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)

    def record(self, pair: str, member: str, at: float, kind: str = "MODIFIED") -> None:
        self.seen.setdefault(pair, []).append((at, kind, member))
        self.events.setdefault(pair, []).append((at, member))
        if member != "none" and pair not in self.activated:
            self.activated[pair] = at
            if len(self.activated) >= self.expected:
                self.all_active.set()

    def current(self, pair: str) -> str:
        events = self.events.get(pair)
        return events[-1][1] if events else "none"

    def first(self, pair: str, member: str, after: float) -> float:
        for at, value in self.events.get(pair, []):
            if at >= after and value == member:
                return at
        return math.nan


@dataclass
class Decisions:
    """When the operator decided each role change: the active Lease's `acquireTime`, which
    `leases.write_active` stamps from the operator's wall clock just before its first write of
    a flip, mapped onto this process's monotonic clock (one machine, one clock). It splits a
    reaction into detection (cause -> decision: watch delivery to the operator, its wake-up
    and step) and application (decision -> selector seen here: the Lease and Service writes
    and the watch delivery back)."""

    offset: float = field(default_factory=lambda: time.time() - time.monotonic())
    events: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    def record(self, obj: dict[str, Any]) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        member = (meta.get("annotations") or {}).get(ANNOTATION_ACTIVE_MEMBER, "none")
        stamp = spec.get("acquireTime")
        if not stamp or member not in MEMBERS:
            return
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - self.offset
        pair = meta["name"].removesuffix("-active")
        self.events.setdefault(pair, []).append((at, member))

    def first(self, pair: str, member: str, after: float) -> float:
        return min(
            (at for at, m in self.events.get(pair, []) if m == member and at >= after),
            default=math.nan,
        )


@dataclass
class Row:
    pairs: int
    activation: float = math.nan
    writer_writes: float = math.nan
    operator_writes: float = math.nan
    operator_verbs: dict[str, int] = field(default_factory=dict)
    writer_verbs: dict[str, int] = field(default_factory=dict)
    steady_seconds: float = 0.0
    cpu_cores: float = math.nan
    cpu_cores_faults: float = math.nan
    rss_mb: float = math.nan
    sockets: int = -1  # the operator's open sockets, the most seen in any second of its run
    stop_reactions: list[float] = field(default_factory=list)
    crash_reactions: list[float] = field(default_factory=list)
    manual_reactions: list[float] = field(default_factory=list)  # --manual
    missed_flips: int = 0
    # by fault: cause -> the operator's decision, and decision -> selector seen (Decisions)
    detection: dict[str, list[float]] = field(default_factory=dict)
    application: dict[str, list[float]] = field(default_factory=dict)
    # during the faults, by write: the API server's own latency p50, p99 (bucket bounds), n
    server_latency: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    spurious: int = 0  # selector changes of pairs that had no fault injected
    rewrites: int = 0  # their Service events after activation that kept the member
    # their role moves (the active Lease's member changed): away from a member whose renewals
    # the API server stored within W before (needless), or not (it was silent there)
    moves_renewing: int = 0
    moves_back: int = 0  # away from a member back after the server had not heard it for W
    moves_silent: int = 0
    # per such pair: its Service events and active Lease events, seconds after it was active
    unfaulted: dict[str, Any] = field(default_factory=dict)
    # holders whose renewals really were apart more than W at the API server before the
    # faults (the bench's writers or the server too slow): a move for them is no spurious one
    silent_writers: list[str] = field(default_factory=list)
    writer_errors: int = 0
    rewatches: int = 0
    bench_cpu: float = math.nan  # this process (the writers), cores over steady state
    server_cpu: dict[str, float] = field(default_factory=dict)  # API server(s), cores steady
    etcd_writes: float = math.nan  # etcd puts + deletes per second per pair (kubernetes)
    backend: str = "sandbox"
    load: str = ""  # the load average when the row was measured
    operator_stop: float = math.nan  # SIGTERM to exit, seconds
    cancelled_daemons: int = 0  # daemons kopf had to cancel on that stop
    notes: list[str] = field(default_factory=list)
    census: dict[str, Any] = field(default_factory=dict)  # _census.Census.as_json()

    @property
    def total_writes(self) -> float:
        return self.writer_writes + self.operator_writes

    def reaction(self, q: float) -> float:
        return percentile(self.stop_reactions + self.crash_reactions, q)


class Simulation:
    def __init__(
        self, pairs: int, interval_ms: int, missed: int, workdir: Path, backend: str
    ) -> None:
        self.n = pairs
        self.backend: Backend = BACKENDS[backend](workdir)
        self.interval_ms, self.missed = interval_ms, missed
        self.sizing = HeartbeatSizing.from_spec(interval_ms, missed, 3)
        self.workdir = workdir
        self.names = [f"p{i:04d}" for i in range(pairs)]
        self.writers: dict[tuple[str, Member], Writer] = {
            (p, m): Writer(self, p, m) for p in self.names for m in MEMBERS
        }
        self.flips = Flips(pairs)
        self.holders: dict[str, str] = {}  # pair -> the member its active Lease names
        self.epochs: dict[str, int] = {}  # pair -> its active Lease's epoch
        # pair -> every active Lease event: (arrival, epoch, member it names)
        self.lease_history: dict[str, list[tuple[float, int, str]]] = {}
        self.decisions = Decisions()
        self.static_contact = False  # --static-contact: primary-contact never moves
        self.changing_data = False  # --changing-data: a replication Job per pair per interval
        self.manual = False  # --manual: also a sample of manual failover requests
        self.reactions_only = False  # bench/failover.py: no settling for a steady window
        self.tasks: list[asyncio.Task[None]] = []
        self.lease_watch: asyncio.Task[None] | None = None
        self.started_writers = 0
        self.rewatches = 0  # watches the server ended (or that failed) and were resumed
        self.writer_connections = 0  # --writer-connections; 0: one per member

    # ---------------------------------------------------------------- set-up

    async def create_objects(self) -> None:
        sem = asyncio.Semaphore(32)

        async def post(path: str, body: dict[str, Any]) -> None:
            async with sem, self.admin.post(path, json=body) as response:
                if response.status >= 300:
                    raise RuntimeError(f"POST {path}: {response.status} {await response.text()}")

        async def pod(name: str) -> None:
            body = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": "voicemail"}},
                "spec": {
                    "containers": [{"name": "voicemail", "image": "pairwarden/vm:dev"}],
                    "schedulerName": "pairwarden-bench-none",  # no scheduler writes
                },
            }
            await post(PODS, body)
            status = {"status": {"phase": "Running", "podIP": self.backend.pod_ip(name)}}
            async with (
                sem,
                self.admin.patch(f"{PODS}/{name}/status", json=status, headers=MERGE) as r,
            ):
                if r.status >= 300:
                    raise RuntimeError(f"pod status {name}: {r.status} {await r.text()}")

        async def pair(name: str) -> None:
            await asyncio.gather(pod(f"{name}-primary"), pod(f"{name}-secondary"))
            service = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"{name}-calls"},
                "spec": {"selector": {"app": name}, "ports": [{"port": 5070}]},
            }
            await post(SERVICES, service)
            body = failover_pair(
                name=name,
                service=f"{name}-calls",
                interval_ms=self.interval_ms,
                missed=self.missed,
            )
            await post(PAIRS, body)

        await asyncio.gather(*(pair(name) for name in self.names))

    async def watch(
        self, session: aiohttp.ClientSession, path: str, selector: str, handle: Any
    ) -> None:
        """Watch `path` for good: kube-apiserver closes a watch whose client falls behind
        ("Forcing watcher close due to unresponsiveness", seen here under load), so each end
        of the stream resumes from the last resourceVersion (or lists anew if that is gone)."""
        version = ""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        while True:
            params = {"watch": "1", "timeoutSeconds": "7200", "allowWatchBookmarks": "true"}
            if selector:
                params["labelSelector"] = selector
            if version:
                params["resourceVersion"] = version
            try:
                async with session.get(path, params=params, timeout=timeout) as response:
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":  # 410 Gone: list anew
                            version = ""
                            break
                        version = event["object"]["metadata"].get("resourceVersion", version)
                        if event["type"] != "BOOKMARK":
                            handle(event["type"], event["object"], time.monotonic())
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.5)
            self.rewatches += 1

    def on_service(self, kind: str, obj: dict[str, Any], at: float) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED" or not name.endswith("-calls"):
            return
        selector = (obj.get("spec") or {}).get("selector") or {}
        self.flips.record(name.removesuffix("-calls"), selector.get(LABEL_MEMBER, "none"), at, kind)

    def on_active_lease(self, kind: str, obj: dict[str, Any], at: float) -> None:
        if kind == "DELETED":
            return
        self.decisions.record(obj)
        pair = obj["metadata"]["name"].removesuffix("-active")
        holder = ((obj.get("metadata") or {}).get("annotations") or {}).get(
            ANNOTATION_ACTIVE_MEMBER, "none"
        )
        if (obj.get("spec") or {}).get("holderIdentity") in (None, ""):
            holder = "none"  # revoked: nobody may answer
        self.epochs[pair] = int((obj.get("spec") or {}).get("leaseTransitions") or 0)
        self.lease_history.setdefault(pair, []).append((at, self.epochs[pair], holder))
        if self.holders.get(pair) != holder:
            self.holders[pair] = holder
            for member in MEMBERS:
                if (writer := self.writers.get((pair, member))) is not None:
                    writer.hear_active()

    def on_lease(self, kind: str, obj: dict[str, Any], at: float) -> None:
        labels = obj["metadata"].get("labels") or {}
        pair, member = labels.get("pairwarden.io/pair"), labels.get(LABEL_MEMBER)
        writer = self.writers.get((pair, member))  # type: ignore[arg-type]
        if kind != "ADDED" or writer is None or writer.task is not None:
            return
        writer.obj = obj
        writer.task = asyncio.get_running_loop().create_task(writer.run())
        self.started_writers += 1
        if self.started_writers == len(self.writers) and self.lease_watch is not None:
            self.lease_watch.cancel()  # every renewal would come back here for nothing

    def on_job(self, kind: str, obj: dict[str, Any], at: float) -> None:
        """The operator's replication Jobs: done at once (no job runner here), so the
        operator sees them finish and schedules the next one per its interval."""
        if kind != "ADDED":
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {"type": "Complete", "status": "True", "lastTransitionTime": stamp}
        status = {"status": {"conditions": [condition], "completionTime": stamp, "succeeded": 1}}
        path = f"{JOBS}/{obj['metadata']['name']}/status"

        async def complete() -> None:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with self.jobrunner.patch(path, json=status, headers=MERGE) as response:
                    await response.read()

        self.tasks.append(asyncio.get_running_loop().create_task(complete()))

    # ---------------------------------------------------------------- phases

    async def run(self, profile: float, short: bool) -> Row:
        row = Row(self.n, backend=self.backend.name)
        with self.backend as server:
            self.admin = server.session("admin")
            self.jobrunner = server.session("jobrunner")
            # One connection per member, as each agent holds its own: through a shared pool
            # of 64 the renewals queued in this process once kube-apiserver answered in 1 s,
            # minutes behind at 1,000 pairs, and their members were silent at the server
            # while the operator's own requests came back in time (issue 24).
            connections = self.writer_connections or len(self.writers)
            self.writers_http = server.session("writers", limit=connections)
            try:
                await server.prepare(self.admin, NS)
                self.tasks.append(
                    asyncio.create_task(self.watch(self.admin, SERVICES, "", self.on_service))
                )
                self.tasks.append(
                    asyncio.create_task(self.watch(self.jobrunner, JOBS, "", self.on_job))
                )
                active = f"{LABEL_PAIR},!{LABEL_MEMBER}"  # the active Leases only
                self.tasks.append(
                    asyncio.create_task(
                        self.watch(self.admin, LEASES, active, self.on_active_lease)
                    )
                )
                began = time.monotonic()
                await self.create_objects()
                print(
                    f"  {self.n} pairs: {self.n} FailoverPairs, {2 * self.n} pods, {self.n} "
                    f"Services created in {time.monotonic() - began:.1f} s"
                )
                self.lease_watch = asyncio.create_task(
                    self.watch(self.writers_http, LEASES, LABEL_MEMBER, self.on_lease)
                )
                self.tasks.append(self.lease_watch)
                kubeconfig = str(server.kubeconfig_for("operator"))
                log = self.workdir / f"operator-{self.n}.log"
                operator = OperatorProcess(kubeconfig, NS, log)
                operator.start()
                assert operator.process is not None
                self.tasks.append(asyncio.create_task(count_sockets(row, operator.process.pid)))
                try:
                    await self.phases(row, operator.process.pid, profile, short)
                finally:
                    stopping = time.monotonic()
                    operator.stop(timeout=60)
                    row.operator_stop = time.monotonic() - stopping
                    row.cancelled_daemons = log.read_text().count("is cancelled. Will escalate")
            finally:
                for task in self.tasks:
                    task.cancel()
                for writer in self.writers.values():
                    writer.cancel()
                await asyncio.sleep(0)
                await self.writers_http.close()
                await self.admin.close()
                await self.jobrunner.close()
        row.writer_errors = sum(w.errors for w in self.writers.values())
        row.rewatches = self.rewatches
        if self.backend.watch_closes:
            row.notes.append(
                f"the API server closed {self.backend.watch_closes} watches of slow clients"
            )
        return row

    async def phases(self, row: Row, pid: int, profile: float, short: bool) -> None:
        started = time.monotonic()
        budget = 120.0 + self.n * 0.1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flips.all_active.wait(), budget)
        if len(self.flips.activated) < self.n:
            row.notes.append(f"only {len(self.flips.activated)}/{self.n} activated")
        else:
            row.activation = max(self.flips.activated.values()) - started
        print(f"  all pairs active {row.activation:.1f} s after the operator started")

        # steady state: past start-up writes, then >= 3 renewal periods
        period, window = self.sizing.renew_period, self.sizing.window
        settled = await self.settle(period)
        print(f"  steady state begins {settled:.0f} s after all pairs were active")
        steady = 3 * period
        counts0 = await self.backend.counts(self.admin)
        cpu0, own0, t0 = sample_process(pid), sample_process_self(), time.monotonic()
        api0 = {name: sample_process(p).cpu_seconds for name, p in self.backend.pids().items()}
        if profile > 0:
            self.tasks.append(asyncio.create_task(py_spy(pid, profile, self.workdir, self.n)))
        await asyncio.sleep(steady)
        cpu1, own1, t1 = sample_process(pid), sample_process_self(), time.monotonic()
        api1 = {name: sample_process(p).cpu_seconds for name, p in self.backend.pids().items()}
        counts1 = await self.backend.counts(self.admin)
        stats = counts1.minus(counts0)
        row.load = load_average()
        row.steady_seconds = stats.at  # the requests' window: between the two snapshots
        row.cpu_cores = (cpu1.cpu_seconds - cpu0.cpu_seconds) / (t1 - t0)
        row.bench_cpu = (own1 - own0) / (t1 - t0)
        row.server_cpu = {name: (api1[name] - api0[name]) / (t1 - t0) for name in api1}
        row.etcd_writes = stats.etcd_writes / stats.at / self.n  # read just after /metrics
        row.rss_mb = cpu1.rss_mb
        row.operator_verbs = dict(sorted(stats.operator.items()))
        row.writer_verbs = dict(sorted(stats.writers.items()))
        row.writer_writes = _writes(row.writer_verbs) / row.steady_seconds / self.n
        row.operator_writes = _writes(row.operator_verbs) / row.steady_seconds / self.n
        print(
            f"  steady state measured over {t1 - t0:.1f} s (requests: {row.steady_seconds:.1f} s"
            " between the server's two snapshots)"
        )
        census = await _census.take(self.admin, NS, self.n)
        row.census = census.as_json()
        _census.print_census(census, self.backend.name)

        # faults into a sample: clean stops spread over the window, crashes all at once
        serving = [p for p in self.names if self.flips.current(p) in MEMBERS]
        if len(serving) < self.n:
            row.notes.append(f"{self.n - len(serving)} pairs had no active member before faults")
        sample = min(len(serving) // 4, max(20, self.n // 20))
        chosen = random.sample(serving, 3 * sample if self.manual else 2 * sample)
        stops, crashes, manuals = chosen[:sample], chosen[sample : 2 * sample], chosen[2 * sample :]
        counts2 = await self.backend.counts(self.admin)
        cpu2, t2 = sample_process(pid), time.monotonic()
        crashed: dict[str, tuple[Member, float]] = {}
        victims: dict[str, Writer] = {}
        for pair in crashes:
            victim: Member = self.flips.current(pair)  # type: ignore[assignment]
            if victim not in MEMBERS:
                row.notes.append(f"{pair} lost its active member before its fault")
                continue
            victims[pair] = self.writers[(pair, victim)]
        # at once: each waits for its renewal in flight (up to a request timeout) to land
        await asyncio.gather(*(writer.crash() for writer in victims.values()))
        for pair, writer in victims.items():
            crashed[pair] = (writer.member, writer.last_sent + window)
        stopped: dict[str, tuple[Member, float]] = {}
        gap = min(window, 10.0) / max(1, sample)  # 0: fewer than 4 pairs serving, no faults
        for pair in stops:
            victim = self.flips.current(pair)  # type: ignore[assignment]
            if victim not in MEMBERS:
                row.notes.append(f"{pair} lost its active member before its fault")
                continue
            stopped[pair] = (victim, await self.writers[(pair, victim)].stop_cleanly())
            await asyncio.sleep(gap)
        requested: dict[str, tuple[Member, float]] = {}
        for pair in manuals:
            victim = self.flips.current(pair)  # type: ignore[assignment]
            if victim in MEMBERS:
                requested[pair] = (victim, await self.request(pair, victim))
                await asyncio.sleep(gap)
        deadline = max((cause for _, cause in crashed.values()), default=t2) + 5.0
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        cpu3, t3 = sample_process(pid), time.monotonic()
        faulted = set(stops) | set(crashes) | set(manuals)
        # (label, reactions, faults, how long before its cause a flip may count): a crash's
        # cause is computed (last renewal + W), so an early flip shows as negative; a stop's
        # and a request's are writes, and a flip before them was not theirs
        kinds = (
            ("clean stop", row.stop_reactions, stopped, 0.0),
            ("crash", row.crash_reactions, crashed, window),
            ("manual", row.manual_reactions, requested, 0.0),
        )

        def unflipped() -> int:
            return sum(
                math.isnan(self.flips.first(pair, other(victim), cause - since))
                for _, _, faults, since in kinds
                for pair, (victim, cause) in faults.items()
            )

        # A slow flip is not a missing one: stragglers get STRAGGLERS more seconds (the
        # CPU under faults stays measured over the fixed span above).
        for _ in range(int(STRAGGLERS / 0.5)):
            if not unflipped():
                break
            await asyncio.sleep(0.5)
        during = (await self.backend.counts(self.admin)).minus(counts2)
        row.server_latency = {
            key: (during.latency_quantile(key, 0.5), during.latency_quantile(key, 0.99), n)
            for key in TIMED_WRITES
            if (n := during.latency_count(key))
        }
        unfaulted = [p for p in self.names if p not in faulted]
        tally = needless_moves(
            {p: self.flips.seen.get(p, []) for p in unfaulted},
            {p: self.flips.activated.get(p, math.inf) for p in unfaulted},
            {p: self.lease_history.get(p, []) for p in unfaulted},
            {w.name: w.history for w in self.writers.values()},
            window,
        )
        row.spurious, row.rewrites = tally.changes, tally.rewrites
        row.moves_renewing, row.moves_back = tally.renewing, tally.back
        row.moves_silent = tally.silent
        row.unfaulted = {
            pair: {
                "service": [(round(at - began, 3), kind, member) for at, kind, member in events],
                "active lease": [
                    (round(at - began, 3), epoch, holder)
                    for at, epoch, holder in self.lease_history.get(pair, [])
                ],
                "renewals": {
                    member: [
                        (round(sent - began, 3), round(done - sent, 3), code)
                        for sent, done, code in self.writers[(pair, member)].history
                    ]
                    for member in MEMBERS
                },
            }
            for pair, events in self.flips.seen.items()
            if pair not in faulted
            and any(at > self.flips.activated.get(pair, math.inf) for at, _, _ in events)
            for began in [self.flips.activated[pair]]
        }
        # holders only: a standby renews its own Lease rarely, its hello riding the holder's
        holding = [w for w in self.writers.values() if self.holders.get(w.pair) == w.member]
        row.silent_writers = silent_writers(holding, window, t2)
        row.cpu_cores_faults = (cpu3.cpu_seconds - cpu2.cpu_seconds) / (t3 - t2)
        row.rss_mb = max(row.rss_mb, cpu3.rss_mb)
        for label, reactions, faults, since in kinds:
            for pair, (victim, cause) in faults.items():
                flipped = self.flips.first(pair, other(victim), cause - since)
                if math.isnan(flipped):
                    row.missed_flips += 1
                    row.notes.append(f"{label} of {pair} ({victim}) never flipped")
                    continue
                reactions.append(flipped - cause)
                decided = self.decisions.first(pair, other(victim), cause - since)
                if not math.isnan(decided):
                    row.detection.setdefault(label, []).append(decided - cause)
                    row.application.setdefault(label, []).append(flipped - decided)

    async def request(self, pair: str, active: Member) -> float:
        """A manual failover (or failback) request on the FailoverPair, as `kubectl
        pairwarden` writes it; the time just before that write."""
        action = "failover" if active == "primary" else "failback"
        body = {
            "metadata": {
                "annotations": {
                    ANNOTATION_REQUEST: action,
                    ANNOTATION_REQUEST_ID: f"bench-{random.getrandbits(48):012x}",
                }
            }
        }
        began = time.monotonic()
        async with self.admin.patch(f"{PAIRS}/{pair}", json=body, headers=MERGE) as response:
            if response.status >= 300:
                raise RuntimeError(f"request {pair}: {response.status} {await response.text()}")
        return began

    async def operator_writes(self) -> int:
        return _writes((await self.backend.counts(self.admin)).settling)

    async def settle(self, period: float) -> float:
        """Wait until the operator's start-up work has died down (every pair's first
        replication Job and its result, and the first contact the secondary reports, which the
        operator writes at the pair's next reconciliation, at most HOUSEKEEPING later): past
        that, a renewal period without an operator write, or 12 periods at most. The seconds
        it took. Busy pairs (--changing-data) never settle."""
        began = time.monotonic()
        if self.reactions_only:  # the writes are not measured: two renewals are enough
            await asyncio.sleep(2 * period)
            return time.monotonic() - began
        await asyncio.sleep(max(period, HOUSEKEEPING) + 2)
        if self.changing_data:
            return time.monotonic() - began
        before = await self.operator_writes()
        for _ in range(10):
            await asyncio.sleep(period)
            after = await self.operator_writes()
            if after == before:
                break
            before = after
        return time.monotonic() - began


@dataclass(frozen=True)
class Tally:
    """What happened to the pairs that had no fault injected, once active (`needless_moves`)."""

    changes: int  # Service events naming another member than the one before
    rewrites: int  # Service events naming the same member again (no caller is dropped)
    renewing: int  # role moves away from a member the API server heard steadily (needless)
    back: int  # away from one renewing again, after the server did not hear it for W
    silent: int  # role moves away from a member the API server did not hear for W


def needless_moves(
    service: dict[str, list[tuple[float, str, str]]],
    activated: dict[str, float],
    leases: dict[str, list[tuple[float, int, str]]],
    renewals: dict[str, list[tuple[float, float, int]]],
    window: float,
) -> Tally:
    """Sort the unfaulted pairs' events after each became active. `service`: per pair, the
    Service events (arrival, type, member selected); `leases`: the active Lease's events
    (arrival, epoch, member named); `renewals`: per member Lease name, each renewal (sent,
    answered, HTTP status). A move is judged by the member it left, by its renewals the API
    server stored (answered 2xx): none within W before the move, it was silent there (the
    writers, or the server, too slow: a real silence as far as anyone can tell); some, but
    more than W apart within 2 W before, it was back from such a silence (the engine's
    "heard twice" rule may move then; issue 24 says nothing should); otherwise it renewed
    steadily and the move was needless (the operator's defect)."""
    changes = rewrites = renewing = back = silent = 0
    for pair, events in service.items():
        began, before = activated.get(pair, math.inf), None
        for at, _, member in events:
            if at > began:
                if member == before:
                    rewrites += 1
                else:
                    changes += 1
            before = member
    for pair, history in leases.items():
        began = activated.get(pair, math.inf)
        for (_, _, left), (at, _, member) in itertools.pairwise(history):
            if at <= began or member == left or left not in MEMBERS:
                continue
            stored = sorted(
                done
                for _, done, code in renewals.get(f"{pair}-{left}", [])
                if 200 <= code < 300 and done <= at
            )
            if not stored or stored[-1] < at - window:
                silent += 1
                continue
            since = [t for t in stored if t >= at - 2 * window]
            earlier = [t for t in stored if t < at - 2 * window][-1:]
            gaps = [b - a for a, b in itertools.pairwise(earlier + since)]
            if not earlier and since[0] - (at - 2 * window) > window:
                gaps.append(window + 1)  # nothing stored in the first W of the span
            if any(gap > window for gap in gaps):
                back += 1
            else:
                renewing += 1
    return Tally(changes, rewrites, renewing, back, silent)


def silent_writers(writers: Any, window: float, until: float) -> list[str]:
    """Writers with two successive successful renewals (or the first and `until`) answered
    more than `window` apart before `until`: silent at the API server itself."""
    silent = []
    for writer in writers:
        answered = [done for _, done, code in writer.history if 200 <= code < 300 and done < until]
        if not answered:
            continue
        gaps = [b - a for a, b in itertools.pairwise(answered)]
        if max(gaps, default=0.0) > window:
            silent.append(f"{writer.name} {max(gaps):.1f} s")
    return silent


async def count_sockets(row: Row, pid: int) -> None:
    """The operator's open sockets every second, the most kept: its start (every pair's first
    writes at once) is when its pools fill."""
    while True:
        row.sockets = max(row.sockets, open_sockets(pid))
        await asyncio.sleep(1.0)


def load_average() -> str:
    return f"{os.getloadavg()[0]:.0f}"


def print_ratios(rows: list[Row]) -> None:
    """kubernetes / sandbox for each figure, per pair count measured on both."""
    by = {(r.backend, r.pairs): r for r in rows}
    pairs = [n for (b, n) in by if b == "kubernetes" and ("sandbox", n) in by]
    if not pairs:
        return
    print("\nratio kubernetes / sandbox:")
    for n in sorted(pairs):
        k, s = by[("kubernetes", n)], by[("sandbox", n)]
        figures = {
            "writes/s/pair": (k.total_writes, s.total_writes),
            "operator CPU": (k.cpu_cores, s.cpu_cores),
            "RSS": (k.rss_mb, s.rss_mb),
            "reaction p50": (k.reaction(50), s.reaction(50)),
            "reaction p99": (k.reaction(99), s.reaction(99)),
            "activation": (k.activation, s.activation),
            "API server CPU": (sum(k.server_cpu.values()), sum(s.server_cpu.values())),
        }
        detail = ", ".join(
            f"{name} {a / b:.2f}" if b else f"{name} n/a" for name, (a, b) in figures.items()
        )
        print(f"  {n:>5} pairs: {detail}")


def sample_process_self() -> float:
    return time.process_time()


def _writes(verbs: dict[str, int]) -> int:
    return sum(n for key, n in verbs.items() if key.split()[0] in WRITE_VERBS)


async def py_spy(pid: int, duration: float, workdir: Path, n: int) -> None:
    """`py-spy record` of the operator during steady state, if py-spy is installed."""
    binary = shutil.which("py-spy")
    if binary is None:
        print("  (py-spy not on PATH: no profile)")
        return
    out = Path.cwd() / f"scale-{n}-operator.speedscope.txt"
    process = await asyncio.create_subprocess_exec(
        binary, "record", "--pid", str(pid), "--duration", str(int(duration)),
        "--format", "raw", "--output", str(out), "--nonblocking",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    await process.wait()
    print(f"  py-spy profile of the operator: {out}")


def keep_logs(directory: Path) -> None:
    """Every log of the run (the operator's, and the control plane's on kubernetes), named
    by where it was: `kubernetes-100-operator-100.log`, `...-control-plane-logs-etcd.log`."""
    for log in directory.rglob("*.log"):
        shutil.copy(log, Path.cwd() / "-".join(log.relative_to(directory).parts))


def print_table(rows: list[Row], window: float, period: float) -> None:
    print(
        f"\nheartbeat window W = {window:.0f} s, renew period R = {period:.2f} s; "
        f"targets: writes/s/pair <= {WRITES_PER_PAIR}, reaction p99 < {REACTION_P99} s, "
        f"CPU < {CPU_CORES} core, RSS < {RSS_MB:.0f} MB, operator sockets <= {SOCKETS}\n"
        "(writes are per renewal, so "
        "'@R=10s' rescales them to the default 1000 ms x 30 sizing; the verdict uses it)"
    )
    print(
        " pairs | writes/s/pair agents operator  total @R=10s | operator CPU steady faults |"
        "  RSS MB | sockets |"
        " reaction p50    p99  (n) | activation | backend    | load | verdict"
    )
    for r in rows:
        n_react = len(r.stop_reactions) + len(r.crash_reactions)
        checks = {
            "writes": r.total_writes * period / 10.0 <= WRITES_PER_PAIR,
            "reaction": r.reaction(99) < REACTION_P99 and r.missed_flips == 0,
            # a move away from a member the API server heard within W: the operator's defect
            "no needless moves": r.moves_renewing == 0,
            # holders the API server did not hear for W: it (or the writers) could not keep up
            "renewals stored": not r.silent_writers,
            "cpu": max(r.cpu_cores, r.cpu_cores_faults) < CPU_CORES,
            "rss": r.rss_mb < RSS_MB,
            "sockets": r.sockets <= SOCKETS,
        }
        failed = [k for k, ok in checks.items() if not ok]
        print(
            f" {r.pairs:>5} |              {r.writer_writes:6.3f}  {r.operator_writes:6.3f} "
            f"{r.total_writes:6.3f} {r.total_writes * period / 10.0:6.3f} |"
            f"            {r.cpu_cores:6.2f} {r.cpu_cores_faults:6.2f} |"
            f" {r.rss_mb:7.1f} | {r.sockets:7d} |"
            f"         {seconds(r.reaction(50))} {seconds(r.reaction(99))}"
            f" {n_react:4d} | {r.activation:8.1f} s | {r.backend:<10} | {r.load:>4} | "
            + (verdict(True) if not failed else f"FAIL ({', '.join(failed)})")
        )
    print("\nreaction by fault (p50 / p99 / max, seconds):")
    for r in rows:
        for label, values in (
            ("clean stop", r.stop_reactions),
            ("crash", r.crash_reactions),
            ("manual", r.manual_reactions),
        ):
            if not values and label == "manual":
                continue
            print(
                f"  {r.pairs:>5} pairs {label:<10} n={len(values):<4}"
                f"{seconds(percentile(values, 50))} {seconds(percentile(values, 99))}"
                f" {seconds(max(values, default=math.nan))}"
            )
        for label in r.detection:
            d50, d99, _ = summary(r.detection[label])
            a50, a99, _ = summary(r.application[label])
            print(
                f"  {'':>5}       {label:<10} cause -> decision {seconds(d50)} {seconds(d99)};"
                f" decision -> selector seen {seconds(a50)} {seconds(a99)}"
            )
        if r.server_latency:
            print(
                f"  {'':>5}       API server's own latency of writes during the faults "
                "(p50 / p99, bucket bounds): "
                + ", ".join(
                    f"{key} {a:.2f} / {b:.2f} s (n={n})"
                    for key, (a, b, n) in r.server_latency.items()
                )
            )
        if r.missed_flips:
            print(f"  {r.pairs:>5} pairs: {r.missed_flips} faults never flipped the Service")
    print("\nrequests in steady state by verb (per second per pair):")
    for r in rows:
        names = ("operator", "writers") if r.backend == "sandbox" else ("others", "lease PUT")
        for who, verbs in zip(names, (r.operator_verbs, r.writer_verbs), strict=True):
            detail = ", ".join(
                f"{k} {n / r.steady_seconds / r.pairs:.4f}" for k, n in verbs.items()
            )
            print(f"  {r.pairs:>5} {r.backend} {who:<9} {detail or '-'}")
        servers = ", ".join(f"{k} {v:.2f}" for k, v in r.server_cpu.items())
        etcd = (
            "" if math.isnan(r.etcd_writes) else f"; etcd puts+deletes/s/pair {r.etcd_writes:.3f}"
        )
        print(
            f"  {r.pairs:>5} {r.backend}: CPU cores of {servers}{etcd}, of the writers "
            f"{r.bench_cpu:.2f}; "
            f"writer errors {r.writer_errors}; watches resumed {r.rewatches}; "
            f"operator stopped {r.operator_stop:.1f} s after "
            f"SIGTERM, {r.cancelled_daemons} daemons cancelled; "
            f"selector changes without a fault {r.spurious} (and {r.rewrites} rewrites of the"
            f" same member); role moves without a fault {r.moves_renewing} away from a member"
            f" the API server heard steadily, {r.moves_back} from one back after the server"
            f" had not heard it for W, {r.moves_silent} from one it had not heard for W"
            f"; holders whose renewals were"
            f" more than W apart at the API server before the faults {len(r.silent_writers)}"
            + (f"; {'; '.join(r.notes)}" if r.notes else "")
        )


def plan(pairs: str, short: bool, backends: list[str]) -> list[tuple[str, int]]:
    """(backend, pair count) in the order they run. `--pairs` applies to every backend.
    `--short` without it: the sandbox at 100 and 500 pairs, the real control plane (a
    control plane per count, minutes of start-up work each) at SHORT_KUBERNETES only, and
    the sandbox at that count too, so the kubernetes/sandbox ratios have a pair."""
    if pairs:
        counts = [int(x) for x in pairs.split(",")]
        return [(b, n) for b in backends for n in counts]
    if not short:
        return [(b, n) for b in backends for n in (100, 500, 2000)]
    sandbox = [100, 500]
    if "kubernetes" in backends:
        sandbox = [SHORT_KUBERNETES, *sandbox]
    by = {"sandbox": sandbox, "kubernetes": [SHORT_KUBERNETES]}
    return [(b, n) for b in backends for n in by[b]]


async def main_async(args: argparse.Namespace) -> int:
    interval, missed = (500, 20) if args.short else (args.interval_ms, args.missed)
    sizing = HeartbeatSizing.from_spec(interval, missed, 3)
    note = (
        f" (--short: 500 ms x 20; sandbox 100 and 500 pairs, kubernetes {SHORT_KUBERNETES})"
        if args.short
        else ""
    )
    print(f"pairwarden scale benchmark{note}")
    print(f"machine: {machine()}")
    print(
        f"heartbeat {interval} ms x {missed} = {sizing.window:.0f} s window, "
        f"R = {sizing.renew_period:.2f} s; the API server, the operator and the writers are three "
        "processes competing for the same cores"
    )
    rows: list[Row] = []
    log = RunLog("scale", args.json)
    with tempfile.TemporaryDirectory(prefix="pairwarden-scale-") as tmp:
        for backend, n in plan(args.pairs, args.short, resolve(args.backend)):
            began = time.monotonic()
            try:
                sim = Simulation(n, interval, missed, Path(tmp) / f"{backend}-{n}", backend)
                sim.static_contact = args.static_contact
                sim.changing_data = args.changing_data
                sim.manual = args.manual
                sim.writer_connections = args.writer_connections
                rows.append(await sim.run(args.profile, args.short))
            except Exception as error:  # report and go on: a FAIL, not a crash
                print(f"  {n} pairs: failed: {error!r}")
                row = Row(n, backend=backend, load=load_average())
                row.notes.append(f"failed: {error!r}")
                rows.append(row)
            print(f"  {n} pairs done in {time.monotonic() - began:.0f} s")
            # This row now: a run stopped during a larger count keeps it (printed and in JSON).
            print_table(rows[-1:], sizing.window, sizing.renew_period)
            log.add(backend, rows[-1], window=sizing.window, renew_period=sizing.renew_period)
            if args.keep_logs:
                keep_logs(Path(tmp))
    print("\nevery row:")
    print_table(rows, sizing.window, sizing.renew_period)
    print_ratios(rows)
    log.finish()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--short",
        action="store_true",
        help=f"500 ms x 20; 100 and 500 pairs (kubernetes: {SHORT_KUBERNETES}) unless --pairs",
    )
    parser.add_argument("--pairs", default="", help="comma-separated pair counts")
    parser.add_argument("--interval-ms", type=int, default=1000)
    parser.add_argument("--missed", type=int, default=30)
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy seconds (steady)")
    parser.add_argument(
        "--static-contact",
        action="store_true",
        help="secondaries report a fixed primary-contact (isolates its cost in status writes)",
    )
    parser.add_argument(
        "--changing-data",
        action="store_true",
        help="active members publish new data every renewal: a replication Job per pair at "
        "every interval (default: idle pairs, whose data version never changes)",
    )
    parser.add_argument(
        "--backend",
        default="sandbox",
        help="sandbox, kubernetes (the real control plane), sandbox,kubernetes, or all "
        "(kubernetes only when its binaries are cached)",
    )
    parser.add_argument(
        "--manual", action="store_true", help="also a sample of manual failover requests"
    )
    parser.add_argument(
        "--writer-connections",
        type=int,
        default=0,
        help="the simulated members' HTTP connections (default 0: one each, as agents have)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="copy operator logs to cwd")
    parser.add_argument(
        "--json", default=None, help="the run's JSON (default bench/results/scale-<time>.json)"
    )
    args = parser.parse_args(argv)
    # SIGTERM unwinds as Ctrl-C does: every `with` and `finally` stops what it started (the
    # API server or control plane, the operator); asyncio.run cancels what is left.
    with sigterm_unwinds():
        return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
