"""Failover latency benchmark: the sandbox, the real operator and two real members (agent +
voicemail process) on loopback (`LocalCluster`), each fault injected N times.

Measured from the fault to (a) the Service selector naming the other member, as seen by a
watch on the Service (arrival time of the watch event), (b) the first call dialled at the
Service from a new socket and answered by the new active pod, and (c) the first SIP INVITE
answered by the new active pod from a caller that sends every INVITE from one UDP port (a PBX
or SIP trunk), calling without pause through the fault: its flow is pinned to the old member
until the kube-proxy stand-in drops it as the old member leaves the Service. Also: API writes
in steady state, by resource.

    python bench/failover.py                 # 30 runs per fault, 200 ms x 10 heartbeat
    python bench/failover.py --short         # 5 runs per fault (make bench)
    python bench/failover.py --runs 100
    python bench/failover.py --backend kubernetes   # the real control plane, without a node
    python bench/failover.py --backend node         # a real node: kubelet, containerd, kube-proxy
    python bench/failover.py --backend kubernetes --real-node --runs 5   # with the local node

`--backend node` runs on a real node (containerd, kubelet, kube-proxy 1.20 beside the real
control plane, `hack/control-plane.sh up DIR --with-node`): the chart's operator and the
example's members from the project's own images, each fault as a node has it (crash: kill -9
both containers of the active pod; clean stop: `kubectl delete pod`; voicemail exit: kill -9
its container; manual), timed by tests/realnode/measure.py from the fault to the selector, to
the EndpointSlice holding the new pod alone, and to the first call answered through
kube-proxy's ClusterIP from a new port and from one fixed UDP port. `all` runs it where a node
can run here (root, Debian's containerd, sipp), else prints why not.

`--backend kubernetes` runs on the real control plane (kube-apiserver 1.20 + etcd + the
controller-manager) with no node: no pod runs there, so the members are bench/scale.py's
simulated agents (4 x runs pairs, a sample of each fault), and the figure is the fault to the
Service selector change as a watch on the real API server delivers it. `--real-node` adds the
whole path as callers see it: real agents and voicemail processes on the repository's local
node (kubelet and kube-proxy stand-ins registered as a Node), every fault, through the real
EndpointSlice controller to the first call answered.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

# bench/ for its siblings; the repository for the node backend (tests/realnode's pair).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _backends import resolve
from _common import RunLog, machine, seconds, summary, verdict
from pairwarden.protocol import LABEL_MEMBER, other
from pairwarden_testbed.lifecycle import sigterm_unwinds
from pairwarden_testbed.localcluster import Chart, LocalCluster, RealBackend, free_port, wait_until
from pairwarden_testbed.sipcaller import call_through
from pairwarden_testbed.waiting import Arrivals

SERVICE = "vm-calls"
WRITE_VERBS = ("create", "update", "patch", "delete")
SERVICE_CIDR = "127.96.0.0/16"  # conftest.py's: Service IPs on loopback
ACCOUNTS = ("bench-operator", "bench-agent")  # ServiceAccounts on the real control plane
PBX_PACE = 0.02  # between one fixed-port call's end and the next INVITE: a busy trunk
NODE_CRASH_BOUND = 1.0  # kill -9 of the active pod's containers: PodCrashed, not W (issue 26)


class SelectorWatch:
    """Watches the callers' Service; remembers when each selector value arrived."""

    def __init__(self, kubeconfig: str, namespace: str, service: str = SERVICE) -> None:
        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.namespace, self.service = namespace, service
        self.events: Arrivals[str] = Arrivals()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="selector-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                stream = watch.Watch().stream(
                    self.core.list_namespaced_service,
                    self.namespace,
                    field_selector=f"metadata.name={self.service}",
                    timeout_seconds=60,
                )
                for event in stream:
                    selector = event["object"].spec.selector or {}
                    self.events.add(time.monotonic(), str(selector.get(LABEL_MEMBER, "none")))
                    if self.stopped.is_set():
                        return
            except Exception:  # the sandbox went away, or a reconnect: try again unless stopping
                if self.stopped.wait(0.05):
                    return

    def current(self) -> str:
        return self.events.last("none")

    def wait_for(self, member: str, after: float, timeout: float) -> float:
        """Arrival time of the first event at or after `after` naming `member`; NaN if none."""
        return self.events.wait_for(member, after, timeout)

    def stop(self) -> None:
        self.stopped.set()
        self.api.close()


class FixedPortCaller:
    """A PBX: SIP INVITEs one after another from one UDP source port, through the Service;
    remembers when each was answered and by which pod."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.address = cluster.sip_address()
        self.port = free_port()
        self.answers: Arrivals[str] = Arrivals()  # (monotonic time of the 200 OK, pod)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fixed-port-caller", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            began = time.monotonic()
            outcome = call_through(self.address, 0, caller="pbx", local_port=self.port, timeout=0.3)
            if outcome.code == 200 and outcome.pod:
                self.answers.add(began + outcome.setup_ms / 1000, outcome.pod)
            self.stopped.wait(PBX_PACE)

    def wait_for(self, pod: str, after: float, timeout: float) -> float:
        """When `pod` first answered at or after `after`; NaN if not within `timeout`."""
        return self.answers.wait_for(pod, after, timeout)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)


@dataclass
class Fault:
    name: str
    description: str
    bound: float  # seconds, the target at p99
    inject: Callable[[LocalCluster, str], None]  # (cluster, active member)
    recover: Callable[[LocalCluster, str], None] | None = None


@dataclass
class Result:
    fault: str
    window: float
    bound: float
    flips: list[float] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)
    fixed_port: list[float] = field(default_factory=list)
    endpoints: list[float] = field(default_factory=list)  # the real node's EndpointSlice
    fresh: list[float] = field(default_factory=list)  # the real node's FreshCalls
    errors: list[str] = field(default_factory=list)
    # The real node's crash: per run, seconds from the kill to each stage (timeline.py).
    stages: list[dict[str, float]] = field(default_factory=list)
    # What the target bounds: "flip" (the selector), or "fresh" (the first of the calls dialled
    # anew every 0.1 s answered by the other member: the node's crash, as new callers find it;
    # a call dialled into the dead member waits for its INVITE's retransmission, `answers`).
    judged: str = "flip"

    @property
    def judged_values(self) -> list[float]:
        return self.fresh if self.judged == "fresh" else self.flips

    def ok(self, runs: int) -> bool:
        _, p99, _ = summary(self.judged_values)
        return len(self.flips) == runs and not math.isnan(p99) and p99 <= self.bound


def _request(cluster: LocalCluster, active: str) -> None:
    """What `kubectl pairwarden failover|failback` writes, away from the active member."""
    cluster.request("failover" if active == "primary" else "failback")


def _kill_containers(cluster: LocalCluster, member: str) -> None:
    """The node's crash: both containers die (the agent first, so it cannot report the
    other), the kubelet reports them terminated and restarts them (PodCrashed at once)."""
    for container in ("agent", "voicemail"):
        cluster.kubelet.kill_container(f"vm-{member}", container, signal.SIGKILL)


def faults(window: float) -> list[Fault]:
    def revive(c: LocalCluster, m: str) -> None:
        c.kubelet.revive_pod(f"vm-{m}")

    return [
        Fault(
            "crash",
            "kill -9 the active pod",
            window + 1.0,
            lambda c, m: c.kubelet.kill_pod(f"vm-{m}", signal.SIGKILL),
            revive,
        ),
        Fault(
            "container crash",
            "kill -9 both containers of the active pod (the kubelet restarts them)",
            1.0,
            _kill_containers,
        ),
        Fault(
            "clean stop",
            "SIGTERM the active pod",
            1.0,
            lambda c, m: c.kubelet.kill_pod(f"vm-{m}", signal.SIGTERM),
            revive,
        ),
        Fault(
            "voicemail exit",
            "kill -9 the voicemail container",
            1.0,
            lambda c, m: c.kubelet.kill_container(f"vm-{m}", "voicemail", signal.SIGKILL),
        ),
        Fault("manual", "failover/failback request annotation", 0.5, _request),
    ]


def _healthy_standby(cluster: LocalCluster, active: str, standby: str) -> bool:
    status = cluster.pair().get("status") or {}
    members = status.get("members") or {}
    return status.get("activeMember") == active and bool(
        (members.get(standby) or {}).get("serviceUp")
    )


def _await_standby(cluster: LocalCluster, active: str, standby: str) -> None:
    wait_until(lambda: _healthy_standby(cluster, active, standby), timeout=60)


def _answered_by(cluster: LocalCluster, pod: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.call(timeout=0.3) == pod:
            return time.monotonic()
        time.sleep(0.005)
    return math.nan


def run_fault(
    cluster: LocalCluster,
    watchers: tuple[SelectorWatch, FixedPortCaller],
    fault: Fault,
    runs: int,
    window: float,
) -> Result:
    selectors, pbx = watchers
    result = Result(fault.name, window, fault.bound)
    for i in range(runs):
        try:
            active = wait_until(lambda: _live_member(selectors), timeout=30)
            standby = other(active)  # type: ignore[arg-type]
            _await_standby(cluster, active, standby)
            t0 = time.monotonic()
            fault.inject(cluster, active)
            flipped = selectors.wait_for(standby, t0, timeout=window * 3 + 10)
            answered = _answered_by(cluster, f"vm-{standby}", timeout=window * 3 + 10)
            pinned = pbx.wait_for(f"vm-{standby}", t0, timeout=window * 3 + 10)
            if math.isnan(flipped):
                result.errors.append(f"run {i + 1}: selector never named {standby}")
            else:
                result.flips.append(flipped - t0)
                result.answers.append(answered - t0)
                result.fixed_port.append(pinned - t0)
            if fault.recover is not None:
                fault.recover(cluster, active)
            # the victim back as a healthy standby before the next run
            _await_standby(cluster, standby, active)
        except Exception as error:  # report, do not crash: the table shows what was measured
            result.errors.append(f"run {i + 1}: {error!r}")
            traceback.print_exc(limit=3)
            break
    return result


def _live_member(selectors: SelectorWatch) -> str | None:
    member = selectors.current()
    return None if member == "none" else member


def steady_writes(cluster: LocalCluster, duration: float) -> dict[str, int]:
    cluster.sandbox.reset_stats()
    time.sleep(duration)
    requests: dict[str, int] = cluster.sandbox.stats()["requests"]
    return {k: n for k, n in sorted(requests.items()) if k.split()[0] in WRITE_VERBS}


def print_results(results: list[Result], runs: dict[str, int], backend: str) -> None:
    """One row per fault, each naming its backend and verdict (`make bench` prints both
    backends one after the other)."""
    print(
        "\nfault            backend    runs  window  target |  flip p50   p99     max | "
        "slice p50   p99     max | answered p50  p99     max | fixed port p50 p99    max | "
        "fresh call p50 p99    max | verdict"
    )
    for r in results:
        columns = " |".join(
            f"{seconds(p50)} {seconds(p99)} {seconds(top)}"
            for p50, p99, top in map(
                summary, (r.flips, r.endpoints, r.answers, r.fixed_port, r.fresh)
            )
        )
        n = runs[r.fault]
        print(
            f"{r.fault:<16} {backend:<10} {len(r.flips):>2}/{n:<2} "
            f"{r.window:5.1f}s {r.bound:6.2f}s |{columns} | {verdict(r.ok(n))}"
            f"  ({r.judged} p99 {summary(r.judged_values)[1] / r.bound:.0%} of target)"
        )
        for e in r.errors:
            print(f"    ! {e}")


class Rows:
    """Each finished row at once: printed, and into the run's JSON (a run stopped by a
    signal or a crash keeps every row it finished). `log` None: printed only."""

    def __init__(self, log: RunLog | None) -> None:
        self.log = log

    def done(self, result: Result, runs: int, backend: str) -> None:
        print_results([result], {result.fault: runs}, backend)
        if self.log is not None:
            self.log.add(backend, result, runs=runs)


def measure_cluster(
    interval_ms: int,
    missed: int,
    runs: int,
    only: list[str] | None,
    steady: float,
    plane: Any = None,
    rows: Rows | None = None,
) -> tuple[list[Result], dict[str, int], dict[str, int]]:
    """On the sandbox, or on `plane` (a real control plane that is up) with the local node:
    the kubelet and kube-proxy stand-ins registered as a Node, the real EndpointSlice
    controller between the Service and the proxy."""
    window = interval_ms * missed / 1000
    results: list[Result] = []
    counts: dict[str, int] = {}
    writes: dict[str, int] = {}
    real, chart = None, None
    namespace = "voice"
    if plane is not None:
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        real = RealBackend(plane, agent_account=ACCOUNTS[1])
        chart = Chart(admin_rbac(namespace), {"serviceAccountName": ACCOUNTS[0]})
    with LocalCluster(namespace, real=real, chart=chart) as cluster:
        selectors = SelectorWatch(cluster.kubeconfig, cluster.namespace)
        pbx: FixedPortCaller | None = None
        try:
            began = time.monotonic()
            cluster.start_pair(interval_ms=interval_ms, missed=missed)
            wait_until(lambda: _live_member(selectors), timeout=60)
            wait_until(lambda: _healthy_standby(cluster, "primary", "secondary"), timeout=60)
            print(
                f"  heartbeat {interval_ms} ms x {missed} = {window:.1f} s window: "
                f"pair active and standby healthy {time.monotonic() - began:.1f} s after create"
            )
            if steady > 0 and real is None:
                time.sleep(window)  # past start-up writes (labels, first status)
                writes = steady_writes(cluster, steady)
            pbx = FixedPortCaller(cluster)
            for fault in faults(window):
                if only is not None and fault.name not in only:
                    continue
                began = time.monotonic()
                results.append(run_fault(cluster, (selectors, pbx), fault, runs, window))
                counts[fault.name] = runs
                print(
                    f"  {fault.name}: {len(results[-1].flips)} runs "
                    f"in {time.monotonic() - began:.0f} s"
                )
                if rows is not None:
                    rows.done(results[-1], runs, "sandbox" if plane is None else "kubernetes")
        finally:
            selectors.stop()
            if pbx is not None:
                pbx.stop()
    return results, counts, writes


def load() -> str:
    return f"{os.getloadavg()[0]:.0f}"


def admin_rbac(namespace: str) -> list[dict[str, Any]]:
    """ServiceAccounts for the operator and the members, bound to cluster-admin: RBAC is not
    what this benchmark measures (the e2e scenarios run with the chart's)."""
    accounts = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": n}} for n in ACCOUNTS
    ]
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{namespace}-bench-admin"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": n, "namespace": namespace} for n in ACCOUNTS
        ],
    }
    return [*accounts, binding]


def measure_real_node(
    interval_ms: int, missed: int, runs: int, rows: Rows | None = None
) -> tuple[list[Result], dict[str, int]]:
    """Failover as callers see it on the real control plane: real agents and voicemail
    processes on the local node, fault -> selector -> EndpointSlice -> kube-proxy stand-in ->
    first call answered."""
    import tempfile

    from pairwarden_testbed import controlplane
    from pairwarden_testbed.localnode.realnode import LOCAL_NODE

    with tempfile.TemporaryDirectory(prefix="pairwarden-failover-node-") as tmp:
        # as the repository's real_cluster fixture starts it: an identity for the local node,
        # and a service range the local kube-proxy stand-in can serve on loopback
        plane = controlplane.ControlPlane(
            Path(tmp) / "control-plane", nodes=(LOCAL_NODE,), service_cidr=SERVICE_CIDR
        )
        began = time.monotonic()
        plane.up()
        print(f"  control plane up in {time.monotonic() - began:.0f} s")
        try:
            results, counts, _ = measure_cluster(interval_ms, missed, runs, None, 0, plane, rows)
        finally:
            plane.down()
    return results, counts


def node_unavailable() -> str | None:
    """Why the node backend cannot run here (None when it can)."""
    from e2e.sippcall import SIPP

    from pairwarden_testbed import node

    if SIPP is None:
        return "sipp is not installed (`make tools`: Debian's sip-tester)"
    return node.cannot_run()


def measure_node(
    runs: int,
    rows: Rows | None = None,
    only: list[str] | None = None,
    beside: Callable[[Any, Path], None] | None = None,
) -> list[Result] | None:
    """Every fault on a real node (see the module's docstring), `runs` times each; None, with
    a line saying why, where a node cannot run here or its images cannot be built.
    `beside(pair, workdir)`: more work on the same node and pair once the faults of `only`
    are measured, before the node stops (bench/peers.py's arms)."""
    import tempfile

    from tests.realnode.measure import FAULTS, Watches, measure
    from tests.realnode.pairs import HEARTBEAT, install
    from tests.realnode.timeline import Stage, stage_rows

    from conftest import namespaces
    from pairwarden_testbed import controlplane, node

    reason = node_unavailable()
    if reason is None:
        try:
            took = node.prepare_images()
            print(f"  the project's images built for this tree in {took:.0f} s")
        except controlplane.ControlPlaneError as error:
            reason = f"the project's images cannot be built: {error}"
    if reason is not None:
        print(f"backend node: skipped ({reason})")
        return None
    window = HEARTBEAT["intervalMs"] * HEARTBEAT["missedBeforeFailover"] / 1000
    # The node's "crash" kills both containers of the active pod: the kubelet sees it, as
    # the sandbox's "container crash" (its "crash" is the node's loss, timed by W).
    bounds = {f.name: f.bound for f in faults(window)} | {"crash": NODE_CRASH_BOUND}
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="pairwarden-failover-node-") as tmp:
        began = time.monotonic()
        try:
            started = node.start(Path(tmp))
        except controlplane.ControlPlaneError as error:
            print(f"backend node: skipped (the node did not start: {error})")
            return None
        watches = None
        try:
            admin = config.new_client_from_config(config_file=str(started.cp.kubeconfig))
            (Path(tmp) / "pair").mkdir()
            pair = install(started, admin, next(namespaces(admin)), Path(tmp) / "pair")
            print(
                f"  node Ready, images loaded, pair whole {time.monotonic() - began:.0f} s; "
                f"heartbeat {HEARTBEAT['intervalMs']} ms x {HEARTBEAT['missedBeforeFailover']}"
                f" = {window:.1f} s window (tests/realnode/pairs.py)"
            )
            watches = Watches(pair)
            for fault in FAULTS.values():
                if only is not None and fault.name not in only:
                    continue
                result = Result(fault.name, window, bounds[fault.name])
                if fault.name == "crash":  # issue 26: to the first call the other one answers
                    result.judged = "fresh"
                results.append(result)
                began = time.monotonic()
                for i in range(runs):
                    stages: list[Stage] | None = [] if fault.name == "crash" else None
                    try:
                        figures = measure(pair, watches, fault, stages=stages)
                    except Exception as error:  # the table shows what was measured
                        result.errors.append(f"run {i + 1}: {error!r}")
                        break
                    if stages:  # where the time went, a row per stage (issue 26)
                        print(f"  crash run {i + 1}, load {load()}:")
                        print("\n".join(stage_rows(stages[0].at, stages[1:])))
                        result.stages.append({s.name: s.at - stages[0].at for s in stages[1:]})
                    result.flips.append(figures["flip"])
                    result.endpoints.append(figures["endpoints"])
                    result.answers.append(figures["new port"])
                    result.fixed_port.append(figures["fixed port"])
                    result.fresh.append(figures["fresh call"])
                took = time.monotonic() - began
                print(f"  {fault.name}: {len(result.flips)} runs in {took:.0f} s")
                if rows is not None:
                    rows.done(result, runs, "node")
            if beside is not None:
                beside(pair, Path(tmp))
        finally:
            if watches is not None:
                watches.stop()
            node.stop(started)
    return results


def print_ratios(
    results: list[Result], by_backend: dict[str, float], backend: str, why: str
) -> None:
    """`backend`'s flip p99 over the sandbox's, fault by fault where both have one."""
    print(f"ratio {backend} / sandbox of the flip p99 ({why}):")
    for r in results:
        sandbox_p99 = summary(r.flips)[1]
        if r.fault in by_backend and sandbox_p99 > 0:
            print(f"  {r.fault:<14} {by_backend[r.fault] / sandbox_p99:.2f}")
    print(
        "  crash          not compared: the sandbox's runs time it from the kill (W - the time"
        " since the last renewal, plus the reaction), with a window of its own"
    )


def print_writes(writes: dict[str, int], duration: float, renew_period: float) -> None:
    renewals = duration / renew_period
    total = sum(writes.values())
    print(
        f"\nsteady state, one pair with real agents, {duration:.0f} s = {renewals:.1f} renewal "
        f"periods (R = {renew_period:.3f} s); every client is the sandbox's admin user here, "
        "so writes are split by resource:"
    )
    for key, n in writes.items():
        print(f"  {key:<32} {n:>5}  {n / renewals:6.2f} per renewal period")
    per_period = total / renewals
    at_default = per_period / 10.0  # the same writes per period at the default R = 10 s
    print(
        f"  total {total} writes = {per_period:.2f} per renewal period -> "
        f"{at_default:.3f} writes/s per pair at the default sizing (30 s window, R = 10 s); "
        f"target <= 0.2: {verdict(at_default <= 0.2)}"
    )


def measure_kubernetes(
    interval_ms: int, missed: int, runs: int, log: RunLog | None = None
) -> dict[str, float]:
    """The real control plane, simulated members (see the module's docstring)."""
    import asyncio
    import tempfile

    from scale import Simulation

    print(f"\nbackend kubernetes: {4 * runs} simulated pairs at {interval_ms} ms x {missed}")
    with tempfile.TemporaryDirectory(prefix="pairwarden-failover-k8s-") as tmp:
        sim = Simulation(4 * runs, interval_ms, missed, Path(tmp), "kubernetes")
        sim.manual = True
        sim.reactions_only = True
        row = asyncio.run(sim.run(0.0, True))
    print(
        "\nfault            backend     n  target |  flip p50   p99     max | verdict"
        "   (crash: from the last renewal + W; others: from the fault)"
    )
    p99s: dict[str, float] = {}
    for name, values, bound in (
        ("crash", row.crash_reactions, 1.0),
        ("clean stop", row.stop_reactions, 1.0),
        ("manual", row.manual_reactions, 0.5),
    ):
        p50, p99, top = summary(values)
        p99s[name] = p99
        ok = bool(values) and p99 <= bound and row.missed_flips == 0
        if log is not None:
            log.add("kubernetes", {"fault": name, "bound": bound, "flips": values, "ok": ok})
        print(
            f"{name:<16} kubernetes {len(values):>3} {bound:6.2f}s |"
            f"{seconds(p50)} {seconds(p99)} {seconds(top)} | {verdict(ok)}"
        )
    print(
        f"(load average {row.load}; faults that never flipped {row.missed_flips}; "
        f"notes: {'; '.join(row.notes) or '-'})\n"
        "not measured on kubernetes: answered through the Service, EndpointSlice and "
        "kube-proxy, voicemail exit and the fixed-port caller (--real-node measures them)"
    )
    return p99s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="5 runs per fault (make bench)")
    parser.add_argument("--runs", type=int, default=None, help="runs per fault (default 30)")
    parser.add_argument("--interval-ms", type=int, default=200)
    parser.add_argument("--missed", type=int, default=10)
    parser.add_argument(
        "--backend",
        default="sandbox",
        help="sandbox, kubernetes, node, a comma list, or all (each where it can run here)",
    )
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="with kubernetes: real members on the local node, fault to first call answered",
    )
    parser.add_argument(
        "--json", default=None, help="the run's JSON (default bench/results/failover-<time>.json)"
    )
    parser.add_argument(
        "--faults", default="", help="with --backend node: only these (comma list, e.g. crash)"
    )
    args = parser.parse_args(argv)
    # SIGTERM unwinds as Ctrl-C does: every `with` and `finally` stops what it started (the
    # clusters, control planes, the node, operators, agents and voicemail processes).
    with sigterm_unwinds():
        return run(args)


def run(args: argparse.Namespace) -> int:
    wanted = args.backend.split(",")
    with_node = args.backend == "all" or "node" in wanted
    others = args.backend if args.backend == "all" else ",".join(b for b in wanted if b != "node")
    backends = resolve(others) if others else []
    runs = args.runs or (5 if args.short else 30)
    large_runs = 1 if args.short else 3
    window = args.interval_ms * args.missed / 1000
    print(f"pairwarden failover benchmark{' (--short: 5 runs per fault)' if args.short else ''}")
    print(f"machine: {machine()}")
    print(f"{runs} runs per fault at {args.interval_ms} ms x {args.missed} = {window:.1f} s")
    log = RunLog("failover", args.json)
    rows = Rows(log)
    started = time.monotonic()
    if args.real_node and "kubernetes" in backends:
        print(f"\nbackend kubernetes, real members on the local node, load {load()}")
        node, node_counts = measure_real_node(args.interval_ms, args.missed, runs, rows)
        print_results(node, node_counts, "kubernetes")
        print(f"(load average {load()} after)")
    node: list[Result] | None = None
    if with_node:
        print(f"\nbackend node: the chart's operator and the example's pair, load {load()}")
        node = measure_node(runs, rows, args.faults.split(",") if args.faults else None)
        if node is not None:
            print_results(node, dict.fromkeys((r.fault for r in node), runs), "node")
            print(f"(load average {load()} after)")
    if "sandbox" not in backends:
        if "kubernetes" in backends:
            measure_kubernetes(args.interval_ms, args.missed, runs, log)
        print(f"\ntotal {time.monotonic() - started:.0f} s")
        log.finish()
        return 0
    steady = 10.0 if args.short else 30.0
    results, counts, writes = measure_cluster(
        args.interval_ms, args.missed, runs, None, steady, rows=rows
    )
    print(f"\nlarger window: crash only, {large_runs} run(s) at 1000 ms x 10 = 10 s")
    large, large_counts, _ = measure_cluster(1000, 10, large_runs, ["crash"], 0, rows=rows)
    for r in large:
        r.fault = "crash (10 s)"
        counts[r.fault] = large_counts["crash"]
    print("\nevery row:")
    print_results(results + large, counts, "sandbox")
    print_writes(writes, steady, window / 3)
    log.add("sandbox steady writes", writes, seconds=steady)
    if "kubernetes" in backends:
        real = measure_kubernetes(args.interval_ms, args.missed, runs, log)
        real.pop("crash", None)
        print_ratios(results, real, "kubernetes", "same cause, simulated vs real members")
    if node is not None:
        print_results(node, dict.fromkeys((r.fault for r in node), runs), "node")
        p99s = {r.fault: summary(r.flips)[1] for r in node if r.fault != "crash"}
        print_ratios(results, p99s, "node", "the stand-ins vs containerd, kubelet and kube-proxy")
        answered = {r.fault: summary(r.answers)[1] for r in results}
        print("ratio node / sandbox of the first call answered from a new port, p99:")
        for r in node:
            if r.fault != "crash" and answered.get(r.fault, 0) > 0:
                print(f"  {r.fault:<14} {summary(r.answers)[1] / answered[r.fault]:.2f}")
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    log.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
