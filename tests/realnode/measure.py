"""Failover as callers see it on the real node (issue 19), shared by tests/realnode/
test_failover.py and bench/failover.py's `node` backend.

One fault of the active member of the pair of tests/realnode/pairs.py, timed from the fault to:
- flip: the Service's selector names the other member (what the operator wrote), as a watch
  on the API server delivers it;
- endpoints: the Service's EndpointSlice holds the new active pod's address alone (what the
  real EndpointSlice controller publishes and kube-proxy routes by);
- fixed port: a sipp caller that sends every INVITE from one UDP port (a PBX) is answered by
  the new active pod through the ClusterIP: kube-proxy must drop the stale conntrack flow;
- new port: a sipp caller on a new port each call is answered by it.

The faults are those of bench/failover.py's sandbox backend, as a real node has them."""

from __future__ import annotations

import math
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from e2e.sippcall import Pbx
from kubernetes import client, config, dynamic
from tests.realnode import timeline
from tests.realnode.pairs import HEARTBEAT, Pair, other
from tests.realnode.timeline import Stage

from pairwarden.protocol import LABEL_MEMBER, HeartbeatSizing, MemberReport, member_lease_name
from pairwarden_testbed.node import BRIDGE_IP
from pairwarden_testbed.sipcaller import call_through
from pairwarden_testbed.waiting import Arrivals, eventually

FIGURES = ("flip", "endpoints", "fixed port", "new port", "fresh call")
SERVICE = "vm-calls"
DIAL_EVERY = 0.1  # seconds between the fresh calls (FreshCalls)
FRESH_TIMEOUT = 1.0  # each fresh call's INVITE transaction


class FreshCalls:
    """New calls, one every DIAL_EVERY from a new port each, each on its own thread, from
    the fault on: when a new caller is first answered by `pod`. The sequential callers
    (`new port`, `fixed port`) wait, for a call dialled into the dead member, for SIP's
    INVITE retransmission (T1 = 0.5 s, doubling: sent again 0.5, 1.5, 3.5 s after the first)
    after the path is back; a fresh call shows when the path is back, to DIAL_EVERY."""

    def __init__(self, address: tuple[str, int], pod: str) -> None:
        self.address, self.pod = address, pod
        self.answered: Arrivals[str] = Arrivals()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fresh-calls", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(DIAL_EVERY):
            threading.Thread(target=self._call, daemon=True).start()

    def _call(self) -> None:
        began = time.monotonic()
        outcome = call_through(self.address, 0, local_host=BRIDGE_IP, timeout=FRESH_TIMEOUT)
        if outcome.code == 200 and outcome.pod:  # when the 200 came, not the BYE's answer
            self.answered.add(began + outcome.setup_ms / 1000, outcome.pod)
            if outcome.pod == self.pod:
                self.stopped.set()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    inject: Callable[[Pair, str], None]  # (pair, active member)
    # What brings the faulted member back before the next run (the kubelet restarts a killed
    # container by itself; a deleted pod is made again, as its owner would).
    recover: Callable[[Pair, str], None] | None = None


class Kill:
    """A signal to some containers of the member's pod (`inject`), and the wait for the
    kubelet to have restarted each of them (`recover`, their restartCount grown): the next
    run must not begin before. Since the standby's probe fails a crash over before the
    kubelet notices it, the pod's status still showed the killed containers running, long
    started, after the flip; the next run's kill then hit the new holder while the old one
    was still dead (a double fault: the restarted member waited out its restart hold, 9.9 s
    to the first call, 21:57 UTC)."""

    def __init__(self, containers: tuple[str, ...], sig: signal.Signals) -> None:
        self.containers, self.sig = containers, sig
        self.counts: dict[str, int] = {}

    def restarts(self, pair: Pair, member: str) -> dict[str, int]:
        statuses = pair.pod(member).status.container_statuses or []
        return {c.name: int(c.restart_count) for c in statuses if c.name in self.containers}

    def inject(self, pair: Pair, member: str) -> None:
        self.counts = self.restarts(pair, member)
        pids = [pair.container_pid(member, c) for c in self.containers]
        for pid in pids:
            os.kill(pid, self.sig)

    def recover(self, pair: Pair, member: str) -> None:
        def back() -> bool:
            now = self.restarts(pair, member)
            return all(now.get(c, 0) > n for c, n in self.counts.items())

        eventually(back, 180, f"the kubelet restarted vm-{member}'s killed containers", poll=0.5)


def recreate(pair: Pair, member: str) -> None:
    eventually(lambda: pair.pod_gone(member), 120, f"vm-{member} deleted", poll=0.5)
    pair.recreate(member)
    eventually(lambda: pair.standby(member), 180, f"recreated vm-{member} standby", poll=0.5)


def manual(pair: Pair, member: str) -> None:
    """What `kubectl pairwarden failover|failback` writes, away from the active member."""
    pair.request("failover" if member == "primary" else "failback")


CRASH = Kill(("agent", "voicemail"), signal.SIGKILL)
VOICEMAIL_EXIT = Kill(("voicemail",), signal.SIGKILL)
FAULTS = {
    f.name: f
    for f in (
        Fault(
            "crash",
            "kill -9 both containers of the active pod",
            CRASH.inject,
            CRASH.recover,
        ),
        Fault("clean stop", "kubectl delete pod of the active member", Pair.delete_pod, recreate),
        Fault(
            "voicemail exit",
            "kill -9 the active pod's voicemail container",
            VOICEMAIL_EXIT.inject,
            VOICEMAIL_EXIT.recover,
        ),
        Fault("manual", "failover/failback request annotation", manual),
    )
}


class Watched:
    """A watch, in a thread, of one kind of object in the pair's namespace: after each
    event, `read` of the objects seen so far (by name), with its arrival time."""

    def __init__(
        self,
        pair: Pair,
        kind: tuple[str, str],  # (apiVersion, kind)
        read: Callable[[list[Any]], str],
        **selectors: str,
    ) -> None:
        # A client of its own: a watch shares no connection pool with the test's requests.
        self.api = config.new_client_from_config(config_file=str(pair.node.cp.kubeconfig))
        self.resource = dynamic.DynamicClient(self.api).resources.get(
            api_version=kind[0], kind=kind[1]
        )
        self.namespace, self.read, self.selectors = pair.namespace, read, selectors
        self.values: Arrivals[str] = Arrivals()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"watch-{kind[1]}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            objects: dict[str, Any] = {}  # a new watch lists them all again (ADDED)
            try:
                for event in self.resource.watch(
                    namespace=self.namespace, timeout=30, **self.selectors
                ):
                    name = event["object"].metadata.name
                    if event["type"] == "DELETED":
                        objects.pop(name, None)
                    else:
                        objects[name] = event["object"]
                    self.values.add(time.monotonic(), self.read(list(objects.values())))
                    if self.stopped.is_set():
                        return
            except Exception:  # a reconnect, or the API server went away: again unless stopping
                self.stopped.wait(0.1)

    def stop(self) -> None:
        self.stopped.set()
        self.api.close()


def selector_member(services: list[Any]) -> str:
    selector = (services[0].spec.selector if services else None) or {}
    return str(selector.get(LABEL_MEMBER) or "none")


def ready_addresses(slices: list[Any]) -> str:
    """The ready endpoints' addresses of the Service's EndpointSlices, sorted, comma-joined
    (discovery.k8s.io/v1beta1 on 1.20: a missing `ready` means ready)."""
    found = {
        address
        for s in slices
        for endpoint in s.endpoints or []
        if (endpoint.conditions or {}).get("ready") is not False
        for address in endpoint.addresses or []
    }
    return ",".join(sorted(found))


def lease_holder(leases: list[Any]) -> str:
    return str((leases[0].spec.holderIdentity if leases else None) or "none")


def container_states(pods: list[Any]) -> str:
    """Each member pod's containers as `pod/container=restarts:state`, sorted, comma-joined
    (state T terminated, R running, W waiting): what timeline.died reads back."""
    found = []
    for pod in pods:
        for c in (pod.status.containerStatuses if pod.status else None) or []:
            state = c.state or {}
            mark = "T" if state.get("terminated") else "R" if state.get("running") else "W"
            found.append(f"{pod.metadata.name}/{c.name}={int(c.restartCount or 0)}:{mark}")
    return ",".join(sorted(found))


class Watches:
    """The Service's selector, its EndpointSlices' addresses, the active Lease's holder and
    the member pods' containers, watched for a session."""

    def __init__(self, pair: Pair) -> None:
        self.selector = Watched(
            pair, ("v1", "Service"), selector_member, field_selector=f"metadata.name={SERVICE}"
        )
        self.slices = Watched(
            pair,
            ("discovery.k8s.io/v1beta1", "EndpointSlice"),
            ready_addresses,
            label_selector=f"kubernetes.io/service-name={SERVICE}",
        )
        self.holder = Watched(
            pair,
            ("coordination.k8s.io/v1", "Lease"),
            lease_holder,
            field_selector="metadata.name=vm-active",
        )
        self.pods = Watched(pair, ("v1", "Pod"), container_states, label_selector=LABEL_MEMBER)

    def stop(self) -> None:
        for watched in (self.selector, self.slices, self.holder, self.pods):
            watched.stop()


SETTLED_SECONDS = 5.0


def past_restart_hold(pair: Pair, member: str, now: datetime) -> bool:
    """The member's agent started more than its restart hold ago (W - R/2, plus a second):
    a restarted agent does not answer for that long after its process starts
    (agent.core.restart_hold: its predecessor may have promised the peer), and its process
    starts seconds after its container (8.6 s after it at load 17). A pair is at rest only
    past it: with the containers' 5 s alone, 4 of 8 back-to-back crash runs (load 17-18)
    killed the holder while the standby, the last run's victim, was still in that hold, and
    the new holder answered 0.5-1.4 s after its grant: a double fault timed as a single one.
    The agent's start is its report's `started` (its member Lease)."""
    lease = client.CoordinationV1Api(pair.admin).read_namespaced_lease(
        member_lease_name("vm", member), pair.namespace
    )
    started = MemberReport.from_annotations(dict(lease.metadata.annotations or {})).started
    sizing = HeartbeatSizing.from_spec(
        HEARTBEAT["intervalMs"], HEARTBEAT["missedBeforeFailover"], HEARTBEAT["renewalsPerWindow"]
    )
    return started is not None and (now - started).total_seconds() > sizing.fence_after + 1.0


def settled(pair: Pair, active: str) -> bool:
    """`active` serves, the other is its standby, and every container of both pods has run
    for SETTLED_SECONDS: a fault is measured from a pair at rest, not from one whose member
    the last run's kill left restarting (the kubelet's restart back-off, and the agent's
    report of it, were still moving 3 s after 'both up' in a CI run at load 15, and the
    manual move of that run was abandoned for the old holder: reported as a finding)."""
    if not (pair.serving(active) and pair.standby(other(active))):
        return False
    now = datetime.now(UTC)
    for member in (active, other(active)):
        for container in pair.pod(member).status.container_statuses or []:
            running = container.state.running if container.state else None
            if running is None or running.started_at is None:
                return False
            if (now - running.started_at).total_seconds() < SETTLED_SECONDS:
                return False
        if not past_restart_hold(pair, member, now):
            return False
    return True


def measure(
    pair: Pair,
    watches: Watches,
    fault: Fault,
    deadline: float = 90,
    stages: list[Stage] | None = None,
) -> dict[str, float]:
    """One fault of the active member; seconds from it to each of FIGURES (NaN for one not
    seen within `deadline`). The faulted member is back as the standby at the end. Given
    `stages`, the run's timeline is appended to it (tests/realnode/timeline.py), the kill
    first."""
    active = eventually(pair.routed, 30, "a routed member", poll=0.2)
    standby = other(active)
    eventually(lambda: settled(pair, active), 180, "a settled pair before the fault", poll=0.5)
    new_ip = str(pair.pod(standby).status.pod_ip)
    fixed, fresh = pair.caller(fixed_port=True), pair.caller(fixed_port=False)
    fixed.until(f"vm-{active}", 60)  # the PBX's flow is pinned to the active member
    answered: dict[str, float] = {}
    errors: list[BaseException] = []

    def dial(name: str, caller: Pbx) -> None:
        try:
            answered[name] = caller.until(f"vm-{standby}", deadline)[0]
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [
        threading.Thread(target=dial, args=("fixed port", fixed)),
        threading.Thread(target=dial, args=("new port", fresh)),
    ]
    address = pair.sip_address()
    t_fault, wall = time.monotonic(), time.time()
    fault.inject(pair, active)
    fresh_calls = FreshCalls(address, f"vm-{standby}")
    for t in threads:
        t.start()
    flipped = watches.selector.values.wait_for(standby, t_fault, deadline)
    published = watches.slices.values.wait_for(new_ip, t_fault, deadline)
    for t in threads:
        t.join()
    answered["fresh call"] = fresh_calls.answered.wait_for(f"vm-{standby}", t_fault, deadline)
    fresh_calls.stop()
    if stages is not None:
        synced = timeline.proxy_synced(timeline.metrics_url(pair.node))
        run = timeline.Run(pair, active, t_fault, wall, synced)
        stages += timeline.crash_stages(
            run, watches, {"selector": flipped, "endpoints": published, **answered}
        )
        print("\n".join(run.notes))
    if fault.recover is not None:
        fault.recover(pair, active)
    if errors:
        raise errors[0]
    return {
        "flip": flipped - t_fault,
        "endpoints": published - t_fault,
        **{name: when - t_fault for name, when in answered.items()},
    }


def report(kind: str, runs: list[dict[str, float]]) -> str:
    lines = [f"real node, {kind} ({len(runs)} runs): p50 / max seconds after the fault"]
    for figure in FIGURES:
        values = [r[figure] for r in runs if not math.isnan(r[figure])]
        if not values:
            lines.append(f"  {figure:11}    n/a")
            continue
        lines.append(
            f"  {figure:11} {statistics.median(values):6.2f} / {max(values):6.2f}"
            f"   ({', '.join(f'{v:.2f}' for v in values)})"
        )
    return "\n".join(lines)
