"""Randomized, seeded fault schedules against the real operator, agents and voicemail processes.

A schedule is a short list of faults at random instants (a seed makes it again): kill -9 of a
member's pod, its agent, its voicemail process or the operator (also between the active Lease
write and the Service patch, held there by a failing Service patch); API errors (500, 409, a
hung call) on each verb the operator uses; foreign writes to the active Lease, the status and
the Service selector; a member cut from the API; and the control plane's own life: the API
server unreachable for everyone, every request slow, a storm of 5xx, the operator stopped and
started again (a rolling restart). When the schedule ends every fault stops and the invariant
must come back within a stated bound and stay: exactly one member answers, it holds the active
Lease, a call through the Service reaches it, and the status names it.

Two more checks: **no role move without a cause the reference names** (a transition blamed on
a member's silence, HeartbeatLost or NotAnswering, in a schedule that faulted no member is a
failure: an outage, a restart or a slow API is not a cause), and a schedule of control-plane
faults only must keep every call through the Service answered and move no role at all.

The faults go through a `Backend`: `LocalBackend` drives the sandbox's local kubelet, link and
fault injection; the foreign writes and every check use the Kubernetes API only, so the same
schedules can run on a real control plane with a backend that breaks nodes its own way.

`python -m pairwarden_testbed.chaos --runs N [--seed S]` prints one line per schedule (its seed
replays it: `CHAOS_SEED=S`) and ends with
`chaos: N schedules, F failures, worst convergence X s`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.engine.schedule import RESYNC_SECONDS
from pairwarden.protocol import (
    ANNOTATION_ACTIVE_MEMBER,
    LABEL_MEMBER,
    MEMBERS,
    Member,
    MemberReport,
    member_lease_name,
)
from pairwarden_testbed.localcluster import HARNESS, LocalCluster, place_call
from pairwarden_testbed.waiting import NotYet, eventually

PAIR, SERVICE, LEASE = "vm", "vm-calls", "vm-active"
INTERVAL_MS, MISSED = 200, 10
WINDOW = INTERVAL_MS * MISSED / 1000  # W = 2 s
SPAN = 6.0  # faults land within this many seconds of a schedule's start
# After the faults stop: a dead holder is judged lost W after its last observed renewal, a
# drift is repaired on the operator's periodic resync, and processes that were killed start
# again (the kubelet's restart backoff, an operator's start-up) on a loaded machine.
RESYNC = RESYNC_SECONDS
STARTUP = 10.0
BOUND = WINDOW + RESYNC + STARTUP  # the sandbox pair's (Runner.bound: any W)
STABLE_WINDOWS = 2  # the invariant must then hold this many windows

# The operator's API calls (resource, verb, object name) a fault can fail.
OPERATOR_CALLS: tuple[tuple[str, str, str | None], ...] = (
    ("leases", "patch", LEASE),  # the active Lease: the flip's first write
    ("leases", "update", LEASE),  # its read-then-replace fallback
    ("leases", "get", LEASE),
    ("services", "patch", SERVICE),  # the flip's second write
    ("failoverpairs/status", "patch", PAIR),
    ("pods", "patch", None),  # role labels
    ("pods", "list", None),
    ("events", "create", None),
)
ERRORS = (500, 409, 504)  # 504 after a hang longer than a client waits: a timeout

# The control plane's faults, which hit every client of the API but the checks' own.
# An outage for everyone silences the holder once its fence runs out (W - R/2 after its last
# renewal) unless its peer vouches for it (the agents' failsafe, issue 24 deliverable 1), and
# so does a storm of 5xx (half the renewals and reads failing, 185 of 265 calls lost at W = 6
# s with no role moved, before it). With the failsafe on main, outages of up to two windows are
# drawn and every call of every calm schedule counts, storms too (here and in
# e2e/test_control_plane.py); PAIRWARDEN_FAILSAFE=0 draws only outages short enough for a
# renewal to land before the fence and does not count a storm's calls (the agents of an older
# release).
FAILSAFE = os.environ.get("PAIRWARDEN_FAILSAFE", "1") == "1"
NEED_FAILSAFE = frozenset() if FAILSAFE else frozenset({"storm"})  # calls not counted
RENEW = WINDOW / 3  # the pair's renewal period: renewalsPerWindow 3
# 0.5 s at W = 2 s, 0.5 s to spare: with 0.3 s, and latency up to 0.3 s after it, 3 of 40
# calls went unanswered at load 25 (no move): the holder's agent fenced itself.
SHORT_OUTAGE = WINDOW - 1.5 * RENEW - 0.5
LONGEST_OUTAGE = 2 * WINDOW if FAILSAFE else SHORT_OUTAGE
# An agent gives a request max(0.5, min(5, R/2)) s and renews R after its renewal and its read
# of the active Lease have finished: latency well under that leaves renewals alive.
MOST_LATENCY = 0.15
STORM_SHARES = (0.2, 0.3, 0.5)  # of every request answered 503
FOREVER = 10**9

KINDS = (
    "kill_pod",
    "kill_agent",
    "kill_voicemail",
    "kill_operator",
    "kill_operator_mid_flip",
    "api_error",
    "foreign_lease",
    "foreign_status",
    "foreign_selector",
    "partition",
    "api_down",
    "latency",
    "storm",
    "restart_operator",
)
# The real control plane's own processes stopped (SIGSTOP) and resumed (SIGCONT) `lasts`
# later: etcd (kube-apiserver holds every request) or kube-apiserver (nothing answers). Only a
# real control plane has them (`real_runner`); the sandbox's schedules never draw them.
PAUSES = {"etcd_pause": "etcd", "apiserver_pause": "kube-apiserver"}
# Kinds that fault a member (its pod, its processes, its link): the causes of silence.
MEMBER_FAULTS = frozenset(
    {"kill_pod", "kill_agent", "kill_voicemail", "kill_operator_mid_flip", "partition"}
)
# Kinds that fault only the control plane or the operator: the data path needs neither, so
# every call must be answered and no role may move.
CALM = frozenset(
    {"kill_operator", "api_error", "api_down", "latency", "storm", "restart_operator", *PAUSES}
)
SILENCE = frozenset({"HeartbeatLost", "NotAnswering"})


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the schedule starts
    kind: str
    member: Member
    param: tuple[Any, ...] = ()
    lasts: float = 0.0  # for faults that are undone (a pod or link back, an operator start)

    def describe(self) -> str:
        extra = f" {self.param}" if self.param else ""
        return f"{self.at:.2f}s {self.kind} {self.member}{extra}"


@dataclass(frozen=True)
class Schedule:
    seed: int
    faults: tuple[Fault, ...]
    name: str = ""  # a schedule written by hand (a case from an issue) rather than a seed's

    @property
    def label(self) -> str:
        return self.name or f"seed={self.seed} (replay: CHAOS_SEED={self.seed})"

    def describe(self) -> str:
        return "; ".join(f.describe() for f in self.faults)


def make_schedule(seed: int, kinds: tuple[str, ...] = KINDS) -> Schedule:
    """The schedule of `seed`: one to four faults within SPAN seconds."""
    rng = random.Random(seed)
    faults = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(kinds)
        param: tuple[Any, ...] = ()
        if kind == "api_error":
            resource, verb, name = rng.choice(OPERATOR_CALLS)
            param = (resource, verb, name, rng.choice(ERRORS), rng.randint(1, 5))
        elif kind == "foreign_lease":
            param = (rng.choice((True, False)),)  # bump the epoch, or keep it
        elif kind == "latency":
            param = (round(rng.uniform(0.05, MOST_LATENCY), 2),)
        elif kind == "storm":
            param = (rng.choice(STORM_SHARES),)
        longest = LONGEST_OUTAGE if kind == "api_down" else 2 * WINDOW
        faults.append(
            Fault(
                at=round(rng.uniform(0, SPAN), 2),
                kind=kind,
                member=rng.choice(MEMBERS),
                param=param,
                lasts=round(rng.uniform(0.2, longest), 2),
            )
        )
    return Schedule(seed, tuple(sorted(faults, key=lambda f: f.at)))


class Backend(Protocol):
    """What a schedule needs from the cluster beyond the Kubernetes API."""

    api: client.ApiClient

    def kill_pod(self, member: Member) -> None: ...
    def revive_pod(self, member: Member) -> None: ...
    def kill_container(self, member: Member, container: str) -> None: ...
    def kill_operator(self) -> None: ...
    def stop_operator(self) -> None: ...
    def start_operator(self) -> None: ...
    def operator_running(self) -> bool: ...
    def api_fault(self, resource: str, verb: str, name: str | None, status: int, count: int,
                  delay: float) -> None: ...  # fmt: skip
    def clear_api_faults(self) -> None: ...
    def api_down(self, seconds: float) -> None: ...
    def api_latency(self, delay: float, seconds: float) -> None: ...
    def api_storm(self, share: float, seconds: float) -> None: ...
    def cut(self, member: Member) -> None: ...
    def heal(self, member: Member) -> None: ...
    def pause(self, component: str) -> None: ...
    def resume(self, component: str) -> None: ...
    def answering(self) -> list[Member]: ...
    def call(self) -> str | None: ...


class LocalBackend:
    """The sandbox, the local kubelet and links, and the operator as a child process."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.api = cluster.api
        self._address: tuple[str, int] | None = None

    def kill_pod(self, member: Member) -> None:
        self.cluster.kubelet.kill_pod(f"{PAIR}-{member}", signal.SIGKILL)

    def revive_pod(self, member: Member) -> None:
        self.cluster.kubelet.revive_pod(f"{PAIR}-{member}")

    def kill_container(self, member: Member, container: str) -> None:
        self.cluster.kubelet.kill_container(f"{PAIR}-{member}", container, signal.SIGKILL)

    def kill_operator(self) -> None:
        if self.cluster.operator is not None:
            self.cluster.operator.stop(signal.SIGKILL)

    def stop_operator(self) -> None:
        """A rolling restart's stop: SIGTERM, and the operator's own graceful exit."""
        if self.cluster.operator is not None:
            self.cluster.operator.stop(signal.SIGTERM)

    def start_operator(self) -> None:
        if not self.operator_running():
            self.cluster.start_operator()

    def operator_running(self) -> bool:
        op = self.cluster.operator
        return op is not None and op.process is not None and op.process.poll() is None

    def api_fault(
        self, resource: str, verb: str, name: str | None, status: int, count: int, delay: float
    ) -> None:
        self.cluster.sandbox.inject_fault(
            verb=verb, resource=resource, name=name, status=status, count=count, delay=delay
        )

    def clear_api_faults(self) -> None:
        if self.cluster.real is None:  # a real server has no fault hooks: nothing to clear
            self.cluster.sandbox.clear_faults()

    def api_down(self, seconds: float) -> None:
        """Every request but the checks' own refused (503) for `seconds`."""
        self.cluster.sandbox.inject_fault(status=503, count=FOREVER, seconds=seconds, spare=HARNESS)

    def api_latency(self, delay: float, seconds: float) -> None:
        self.cluster.sandbox.inject_fault(
            status=0, delay=delay, count=FOREVER, seconds=seconds, spare=HARNESS
        )

    def api_storm(self, share: float, seconds: float) -> None:
        self.cluster.sandbox.inject_fault(
            status=503, fraction=share, count=FOREVER, seconds=seconds, spare=HARNESS
        )

    def cut(self, member: Member) -> None:
        self.cluster.kubelet.link(f"{PAIR}-{member}").cut()

    def heal(self, member: Member) -> None:
        self.cluster.kubelet.link(f"{PAIR}-{member}").heal()

    def pause(self, component: str) -> None:
        if self.cluster.real is None:
            raise ValueError(f"the sandbox has no {component} process to pause")
        self.cluster.real.plane.pause(component)

    def resume(self, component: str) -> None:
        if self.cluster.real is not None:
            self.cluster.real.plane.resume(component)

    def answering(self) -> list[Member]:
        return self.cluster.answering_members(PAIR)

    def call(self) -> str | None:
        if self.cluster.real is None:
            return self.cluster.call(SERVICE)
        # The address read once, as a phone system has it: a read while the real API server
        # is paused would wait for it, and with it the schedule's own resume.
        if self._address is None:
            self._address = self.cluster.service_address(SERVICE)
        return place_call(self._address, "chaos", timeout=2.0)


@dataclass
class Outcome:
    schedule: Schedule
    converged: float | None  # seconds after the faults stopped, None: not within BOUND
    problem: str = ""
    log: list[str] = field(default_factory=list)
    broken: str = ""  # a check besides convergence that failed: a needless move, a lost call

    @property
    def failed(self) -> bool:
        return self.converged is None or bool(self.broken)


class Runner:
    """Plays schedules on one backend, one after the other, each from a whole pair."""

    def __init__(self, backend: Backend, namespace: str = "voice", window: float = WINDOW) -> None:
        self.backend = backend
        self.namespace = namespace
        self.window = window  # the pair's W: the calm wait after the faults, `bound`, stability
        self.bound = window + RESYNC + STARTUP  # BOUND for the sandbox's W
        self.core = client.CoreV1Api(backend.api)
        self.coordination = client.CoordinationV1Api(backend.api)
        self.custom = client.CustomObjectsApi(backend.api)
        self._undo: list[tuple[float, Callable[[], None]]] = []

    # ---- checks (Kubernetes API and callers only) -------------------------------------

    def problem(self) -> str | None:
        """None when the pair is whole, else what is not."""
        try:
            lease = self.coordination.read_namespaced_lease(LEASE, self.namespace)
            annotations = lease.metadata.annotations or {}
            holder = annotations.get(ANNOTATION_ACTIVE_MEMBER, "none")
            holder_pod = lease.spec.holder_identity or ""
            if holder not in MEMBERS or holder_pod != f"{PAIR}-{holder}":
                return f"active Lease names {holder!r} ({holder_pod!r})"
            answering = self.backend.answering()
            if answering != [holder]:
                return f"answering {answering}, Lease holder {holder}"
            service = self.core.read_namespaced_service(SERVICE, self.namespace)
            routed = (service.spec.selector or {}).get(LABEL_MEMBER)
            if routed != holder:
                return f"Service routes to {routed}, Lease holder {holder}"
            answered = self.backend.call()
            if answered != f"{PAIR}-{holder}":
                return f"a call through the Service was answered by {answered}"
            pair = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, PAIR
            )
            status = pair.get("status") or {}
            if status.get("activeMember") != holder:
                return f"status names {status.get('activeMember')}, Lease holder {holder}"
            ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
            if ready is not None and ready.get("status") != "True":
                return f"Ready={ready.get('status')}: {ready.get('message')}"
        except (client.ApiException, OSError) as error:
            return f"API: {error!r}"[:200]
        return None

    def wait_whole(self, bound: float) -> tuple[float | None, str]:
        """Seconds until the pair is whole and stays so for STABLE_WINDOWS, or None within
        `bound`."""
        start = time.monotonic()
        whole_since: float | None = None
        last = ""
        while True:
            now = time.monotonic()
            problem = self.problem()
            if problem is None:
                whole_since = now if whole_since is None else whole_since
                if now - whole_since >= STABLE_WINDOWS * self.window:
                    return whole_since - start, ""
            else:
                whole_since, last = None, problem
            if now - start > bound + STABLE_WINDOWS * self.window:
                return None, last
            time.sleep(0.1)

    # ---- faults ------------------------------------------------------------------------

    def _later(self, delay: float, undo: Callable[[], None]) -> None:
        self._undo.append((time.monotonic() + delay, undo))

    def _run_due(self, until: float) -> None:
        for entry in sorted(self._undo, key=lambda e: e[0]):
            if entry[0] <= until:
                self._undo.remove(entry)
                entry[1]()

    def holder(self) -> Member | None:
        lease = self.coordination.read_namespaced_lease(LEASE, self.namespace)
        member = (lease.metadata.annotations or {}).get(ANNOTATION_ACTIVE_MEMBER)
        return member if member in MEMBERS else None

    def inject(self, fault: Fault) -> None:
        b, m = self.backend, fault.member
        if fault.kind == "kill_pod":
            b.kill_pod(m)
            self._later(fault.lasts, lambda: b.revive_pod(m))
        elif fault.kind == "kill_agent":
            b.kill_container(m, "agent")
        elif fault.kind == "kill_voicemail":
            b.kill_container(m, "voicemail")
        elif fault.kind == "kill_operator":
            b.kill_operator()
            self._later(fault.lasts, b.start_operator)
        elif fault.kind == "kill_operator_mid_flip":
            self._kill_mid_flip(fault)
        elif fault.kind == "api_error":
            resource, verb, name, status, count = fault.param
            delay = 3.0 if status == 504 else 0.0
            b.api_fault(resource, verb, name, status, count, delay)
        elif fault.kind == "foreign_lease":
            (bump,) = fault.param
            lease = self.coordination.read_namespaced_lease(LEASE, self.namespace)
            epoch = int(lease.spec.lease_transitions or 0) + (1 if bump else 0)
            body = {
                "metadata": {"annotations": {ANNOTATION_ACTIVE_MEMBER: m}},
                "spec": {"holderIdentity": f"{PAIR}-{m}", "leaseTransitions": epoch},
            }
            self.coordination.patch_namespaced_lease(LEASE, self.namespace, body)
        elif fault.kind == "foreign_status":
            status = {"status": {"epoch": 99, "activeMember": m}}
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, PAIR, status
            )
        elif fault.kind == "foreign_selector":
            body = {"spec": {"selector": {LABEL_MEMBER: m}}}
            self.core.patch_namespaced_service(SERVICE, self.namespace, body)
        elif fault.kind == "partition":
            b.cut(m)
            self._later(fault.lasts, lambda: b.heal(m))
        elif fault.kind == "api_down":
            b.api_down(fault.lasts)
        elif fault.kind == "latency":
            (delay,) = fault.param
            b.api_latency(delay, fault.lasts)
        elif fault.kind == "storm":
            (share,) = fault.param
            b.api_storm(share, fault.lasts)
        elif fault.kind == "restart_operator":
            b.stop_operator()
            self._later(fault.lasts, b.start_operator)
        elif fault.kind in PAUSES:
            component = PAUSES[fault.kind]
            b.pause(component)
            self._later(fault.lasts, lambda: b.resume(component))
        else:
            raise ValueError(f"unknown fault kind {fault.kind}")

    def _kill_mid_flip(self, fault: Fault) -> None:
        """Hold the operator between its Lease write and its Service patch (the patch fails
        while the flip is under way), kill -9 it there, and start it again later."""
        b = self.backend
        before = self.holder()
        b.api_fault("services", "patch", SERVICE, 500, 1000, 0.0)
        if before is not None:
            b.kill_pod(before)
            with contextlib.suppress(NotYet):  # no flip in time: kill the operator anyway
                eventually(lambda: self.holder() not in (before, None), 4 * WINDOW, "a flip")
            self._later(fault.lasts, lambda: b.revive_pod(before))
        b.kill_operator()
        b.clear_api_faults()
        self._later(fault.lasts, b.start_operator)

    def end_faults(self) -> None:
        """Every fault stops: undo what is pending, heal, revive, run the operator."""
        self._run_due(float("inf"))
        b = self.backend
        b.clear_api_faults()
        for member in MEMBERS:
            with contextlib.suppress(Exception):
                b.heal(member)
            with contextlib.suppress(Exception):
                b.revive_pod(member)
        b.start_operator()

    def epoch(self) -> int:
        lease = self.coordination.read_namespaced_lease(LEASE, self.namespace)
        return int(lease.spec.lease_transitions or 0)

    def moves_after(self, epoch: int) -> list[tuple[int, str]]:
        """The role moves the status records beyond `epoch`: (epoch, cause)."""
        pair = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "failoverpairs", PAIR
        )
        moves = (pair.get("status") or {}).get("transitions") or []
        return [(int(t["epoch"]), str(t["cause"])) for t in moves if int(t["epoch"]) > epoch]

    def play(self, schedule: Schedule) -> Outcome:
        outcome = Outcome(schedule, None)
        calm = all(f.kind in CALM for f in schedule.faults)
        before = self.epoch()
        dialled: list[Dialled] = []
        last_call = 0.0
        start = time.monotonic()

        def wait_until(instant: float) -> None:
            """Undo what is due until `instant`; in a calm schedule, dial all along."""
            nonlocal last_call
            while time.monotonic() < instant:
                self._run_due(time.monotonic())
                if calm and time.monotonic() - last_call >= 0.2:
                    last_call = time.monotonic()
                    dialled.append((last_call - start, self.backend.call()))
                time.sleep(0.02)

        try:
            for fault in schedule.faults:
                wait_until(start + fault.at)
                self.inject(fault)
            wait_until(start + SPAN)
            if calm:  # every fault over, and a window more for a needless move to show
                wait_until(start + max(f.at + f.lasts for f in schedule.faults) + self.window)
        except Exception as error:  # a fault that could not be injected ends the schedule
            outcome.log.append(f"fault injection: {error!r}"[:200])
        finally:
            self.end_faults()
        # Convergence counts from the schedule's end (SPAN, and a window more in a calm one,
        # while the calls are dialled), not from its last fault: 0.00 s is a pair already
        # whole then.
        outcome.converged, outcome.problem = self.wait_whole(self.bound)
        outcome.broken = judge_moves(schedule, self.moves_after(before), dialled)
        return outcome


# A call dialled through the Service: seconds after the schedule began, and the pod that
# answered (None: refused or no answer).
Dialled = tuple[float, str | None]


def judge_moves(schedule: Schedule, moves: list[tuple[int, str]], dialled: list[Dialled]) -> str:
    """The checks besides convergence, '' when they pass: no move blamed on a member's
    silence unless the schedule faulted a member (the reference's causes are a member's
    faults; an outage, a restart or a slow API is none), and in a schedule of control-plane
    faults only, no move at all and every call answered (storms: once FAILSAFE). A lost call
    is named by when it was dialled and who answered the calls either side of it, to lay
    beside the faults' instants and the members' logs."""
    kinds = {f.kind for f in schedule.faults}
    if not kinds & MEMBER_FAULTS:
        needless = [f"{cause} at epoch {epoch}" for epoch, cause in moves if cause in SILENCE]
        if needless:
            return "a move without a faulted member: " + ", ".join(needless)
    if kinds <= CALM:
        if moves:
            return "a move in a schedule that faulted no member: " + ", ".join(
                f"{cause} at epoch {epoch}" for epoch, cause in moves
            )
        lost = [i for i, (_, answer) in enumerate(dialled) if answer is None]
        if lost and not kinds & NEED_FAILSAFE:
            where = ", ".join(_around(dialled, i) for i in lost[:5])
            return f"{len(lost)} of {len(dialled)} calls through the Service unanswered ({where})"
    return ""


def _around(dialled: list[Dialled], i: int) -> str:
    """`at 3.81s (vm-primary before, vm-primary after)` for the lost call dialled[i]."""
    answered = [answer for _, answer in dialled]
    before = next((a for a in reversed(answered[:i]) if a), "nobody")
    after = next((a for a in answered[i + 1 :] if a), "nobody")
    return f"at {dialled[i][0]:.2f}s ({before} before, {after} after)"


@contextlib.contextmanager
def local_runner() -> Iterator[Runner]:
    """A fresh sandbox cluster with a whole pair (W = 2 s), and a Runner on it. CHAOS_KEEP
    names a directory to keep each cluster's logs in (operator.log, the pods' logs), one
    `cluster-HHMMSS` per cluster; a failure's line gives the wall-clock time to look for."""
    keep = os.environ.get("CHAOS_KEEP")
    workdir = Path(keep) / time.strftime("cluster-%H%M%S") if keep else None
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    with LocalCluster(workdir=workdir) as cluster:
        cluster.start_pair(interval_ms=INTERVAL_MS, missed=MISSED)
        runner = Runner(LocalBackend(cluster), cluster.namespace)
        whole, problem = runner.wait_whole(180)
        if whole is None:
            raise RuntimeError(f"the pair never became whole: {problem}")
        linked(cluster)
        yield runner


# The pair on a real control plane: W = 6 s, as the e2e scenarios there (e2e/conftest.py: at
# 1-2 s a loaded machine's kube-apiserver answers renewals too late and the pair flaps).
REAL_INTERVAL_MS, REAL_MISSED = 200, 30
REAL_WINDOW = REAL_INTERVAL_MS * REAL_MISSED / 1000


@contextlib.contextmanager
def real_runner(plane: Any) -> Iterator[Runner]:
    """A whole pair (W = 6 s) in a fresh namespace of the real control plane `plane` (a
    `controlplane.ControlPlane` that is up), with the local kubelet and proxy as its node,
    and a Runner on it: for the faults only a real control plane has (PAUSES)."""
    import uuid

    from pairwarden_testbed.localcluster import RealBackend

    keep = os.environ.get("CHAOS_KEEP")
    workdir = Path(keep) / time.strftime("real-%H%M%S") if keep else None
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    namespace = f"chaos-{uuid.uuid4().hex[:8]}"
    with LocalCluster(namespace, workdir=workdir, real=RealBackend(plane)) as cluster:
        cluster.start_pair(interval_ms=REAL_INTERVAL_MS, missed=REAL_MISSED)
        runner = Runner(LocalBackend(cluster), namespace, window=REAL_WINDOW)
        whole, problem = runner.wait_whole(180)
        if whole is None:
            raise RuntimeError(f"the pair never became whole: {problem}")
        linked(cluster, renew=REAL_WINDOW / 3)
        yield runner


def linked(cluster: LocalCluster, renew: float = RENEW) -> None:
    """Both agents have published where their failsafe peer link listens, and each has had
    a renewal period to read the other's: learnt while the API server is there, as on a
    cluster, before any outage a schedule draws."""
    leases = client.CoordinationV1Api(cluster.api)

    def published() -> bool:
        return all(
            MemberReport.from_annotations(
                leases.read_namespaced_lease(
                    member_lease_name(PAIR, m), cluster.namespace
                ).metadata.annotations
            ).peer_contact
            for m in MEMBERS
        )

    eventually(published, 60, "both failsafe peer links published", poll=0.2)
    time.sleep(2 * renew)


def seeds(runs: int, first: int | None = None) -> list[int]:
    """CHAOS_SEED replays one schedule; else `runs` seeds from `first` (default: random)."""
    if os.environ.get("CHAOS_SEED"):
        return [int(os.environ["CHAOS_SEED"])]
    base = first if first is not None else random.SystemRandom().randrange(10**6)
    return [base + i for i in range(runs)]


def run(seed_list: list[int], kinds: tuple[str, ...] = KINDS, out: Any = None) -> int:
    """Play the schedules of `seed_list`. The number of failures; the summary line last."""
    return play_all([make_schedule(seed, kinds) for seed in seed_list], out)


def play_all(
    schedules: list[Schedule],
    out: Any = None,
    runners: Callable[[], contextlib.AbstractContextManager[Runner]] = lambda: local_runner(),
) -> int:
    """Play `schedules` one after the other on clusters `runners` makes (the sandbox's by
    default); a cluster is kept while its pair comes back whole and replaced after a failure.
    The number of failures; the summary line last."""
    out = out if out is not None else sys.stdout
    failures, worst = 0, 0.0
    stack = contextlib.ExitStack()
    runner: Runner | None = None
    began = time.monotonic()
    try:
        for schedule in schedules:
            if runner is None:
                runner = stack.enter_context(runners())
            outcome = runner.play(schedule)
            if outcome.failed:
                failures += 1
                what = (
                    outcome.broken
                    if outcome.converged is not None
                    else f"not whole within {runner.bound:.0f}s: {outcome.problem}"
                    + (f"; {outcome.broken}" if outcome.broken else "")
                )
                print(
                    f"FAIL {schedule.label} at {time.strftime('%H:%M:%S')}: "
                    f"{what} | {schedule.describe()}",
                    file=out,
                    flush=True,
                )
                stack.close()
                stack, runner = contextlib.ExitStack(), None
            else:
                assert outcome.converged is not None
                worst = max(worst, outcome.converged)
                print(
                    f"ok   {schedule.label} whole after {outcome.converged:.2f}s | "
                    f"{schedule.describe()}",
                    file=out,
                    flush=True,
                )
    finally:
        stack.close()
    took = time.monotonic() - began
    print(f"(took {took:.0f} s)", file=out)
    print(
        f"chaos: {len(schedules)} schedules, {failures} failures, worst convergence {worst:.1f} s",
        file=out,
        flush=True,
    )
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pairwarden_testbed.chaos")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("CHAOS_RUNS", "200")))
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    args = parser.parse_args(argv)
    return 1 if run(seeds(args.runs, args.seed)) else 0


if __name__ == "__main__":
    sys.exit(main())
