"""A deterministic world on virtual time: members (node + agent + voicemail), the API, and
the operator driving the real engine, with faults injected by tests.

Time moves only through an event queue on a ManualClock; nothing sleeps. The members follow
docs/protocol.md: renewal every R (retry after a failure), urgent writes on a change of the
starred report fields, and the agent's fencing rule. The operator observes a renewal when it
reaches the API (one `latency` after it was sent), reconciles on every observation and on a
timer every `tick`, and counts every member as observed when it (re)starts.
"""

from __future__ import annotations

import functools
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pairwarden.api.models import ActiveMember, FailoverPairSpec, FailoverPairStatus
from pairwarden.clock import ManualClock
from pairwarden.engine import (
    Activate,
    Cause,
    Deactivate,
    ManualRequest,
    MemberObservation,
    Now,
    Observed,
    decide,
)
from pairwarden.engine.types import AckRequest, Warn
from pairwarden.protocol import MEMBERS, HeartbeatSizing, Member, MemberReport

NEVER = float("-inf")


@dataclass(frozen=True)
class RoleChange:
    at: float  # monotonic seconds
    wall: datetime
    previous: ActiveMember
    to: ActiveMember
    cause: Cause
    epoch: int


@dataclass(frozen=True)
class Sample:
    """From `at` until the next sample, exactly these members answer calls."""

    at: float
    answering: frozenset[Member]


@dataclass(frozen=True)
class Call:
    at: float
    answered_by: Member | None


@dataclass
class SimMember:
    """One member pod: its node, agent and voicemail process."""

    name: Member
    node_up: bool = True
    agent_running: bool = True
    service_up: bool = True
    partitioned: bool = False  # cannot reach the API server
    cpu_excessive: bool = False
    calls: int = 0
    inactive_calls: int = 0
    started: datetime | None = None
    primary_contact: datetime | None = None
    last_ok_sent: float = NEVER
    view_holder: ActiveMember = "none"  # the active Lease as this agent last saw it
    view_epoch: int = 0
    granted_until: float = NEVER  # the voicemail process answers only before this instant
    published: MemberReport | None = None
    generation: int = 0  # bumps on restart, so stale timers of an old life do nothing


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class World:
    """The pair, the API server and the operator, on one virtual clock."""

    def __init__(
        self,
        spec: FailoverPairSpec,
        *,
        clock: ManualClock | None = None,
        tick: float = 1.0,
        latency: float = 0.05,
        loss: float = 0.0,
        retry: float = 1.0,
        seed: int = 0,
        started: dict[Member, bool] | None = None,
        primary_contact: bool = True,
    ) -> None:
        self.spec = spec
        self.clock = clock or ManualClock()
        self.tick = tick
        self.latency = latency
        self.loss = loss
        self.retry = retry
        self.random = random.Random(seed)
        self.sizing = HeartbeatSizing.from_spec(
            spec.heartbeat.interval_ms,
            spec.heartbeat.missed_before_failover,
            spec.heartbeat.renewals_per_window,
        )
        self._queue: list[_Event] = []
        self._seq = 0
        # The API server's state.
        self.holder: ActiveMember = "none"
        self.epoch = 0
        self.status = FailoverPairStatus()
        self.request: ManualRequest | None = None
        self.last_primary_receipt: float = NEVER
        # The operator's memory (lost on restart except what is in the API).
        self.operator_up = True
        self.observations: dict[Member, MemberObservation] = {}
        self.operator_started_at = self.clock.monotonic()
        # Records.
        self.changes: list[RoleChange] = []
        self.samples: list[Sample] = [Sample(self.clock.monotonic(), frozenset())]
        self.warnings: list[Warn] = []
        self.acks: list[AckRequest] = []
        self.calls: list[Call] = []
        self.members = {m: SimMember(m) for m in MEMBERS}
        for member in self.members.values():
            member.node_up = member.agent_running = member.service_up = False
        self.members["secondary"].primary_contact = self.clock.wall() if primary_contact else None
        for name, up in (started if started is not None else dict.fromkeys(MEMBERS, True)).items():
            if up:
                self.start(name)
        self._schedule(self.tick, self._operator_timer)

    # ------------------------------------------------------------------------ running

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(self, until: float) -> None:
        while self._queue and self._queue[0].at <= until:
            event = heapq.heappop(self._queue)
            self.clock.advance(max(0.0, event.at - self.now))
            event.run()
            self._sample()
        self.clock.advance(max(0.0, until - self.now))

    def run_until_answering(self, member: Member | None, limit: float) -> float | None:
        """Run until `member` answers (or nobody, for None); the time waited, or None."""
        start, deadline = self.now, self.now + limit
        while self.answering() != ({member} if member else set()):
            if not self._queue or self._queue[0].at > deadline:
                self.run_until(deadline)
                return None
            self.run_until(self._queue[0].at)
        return self.now - start

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` at monotonic time `when` (a fault of a schedule)."""
        self._schedule(max(0.0, when - self.now), action)

    def _schedule(self, delay: float, run: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Event(self.now + delay, self._seq, run))

    def _later(self, member: SimMember, delay: float, run: Callable[[], None]) -> None:
        """Schedule work of one life of a member: a restart cancels it."""
        life = member.generation

        def guarded() -> None:
            if member.generation == life:
                run()

        self._schedule(delay, guarded)

    # ---------------------------------------------------------------------- observing

    def answering(self, at: float | None = None) -> set[Member]:
        if at is None:
            return {m for m in MEMBERS if self._answers(self.members[m])}
        current: frozenset[Member] = frozenset()
        for sample in self.samples:
            if sample.at > at:
                break
            current = sample.answering
        return set(current)

    def _answers(self, member: SimMember) -> bool:
        return (
            member.node_up
            and member.service_up
            and member.view_holder == member.name
            and self.now < member.granted_until
            and self._licensed_locally(member)
        )

    def _licensed_locally(self, member: SimMember) -> bool:
        if member.name == "primary":
            return True
        wall, lic = self.clock.wall(), self.spec.licensing
        if member.primary_contact is not None:
            return wall < member.primary_contact + timedelta(seconds=lic.max_seconds_since_contact)
        if member.started is None:
            return False
        return wall < member.started + timedelta(seconds=lic.never_contacted_grace_seconds)

    def _sample(self) -> None:
        answering = frozenset(self.answering())
        if answering != self.samples[-1].answering:
            self.samples.append(Sample(self.now, answering))

    # ------------------------------------------------------------------------- faults

    def start(self, name: Member) -> None:
        """Power on (or restart) a member: node, agent and voicemail start; renew at once."""
        member = self.members[name]
        member.generation += 1
        member.node_up = member.agent_running = member.service_up = True
        member.started = self.clock.wall()
        member.inactive_calls = 0
        member.granted_until = NEVER
        member.published = None
        member.view_holder, member.view_epoch = "none", 0
        self._see_active_lease(member)
        self._renew(member)

    def crash(self, name: Member) -> None:
        """OS failure or power loss: everything on the member stops, nothing is published."""
        member = self.members[name]
        member.generation += 1
        member.node_up = member.agent_running = member.service_up = False
        member.granted_until = NEVER
        self._sample()

    def stop_service(self, name: Member) -> None:
        """The voicemail process stops or crashes; the agent publishes it at once."""
        member = self.members[name]
        member.service_up = False
        self._publish(member)

    def start_service(self, name: Member) -> None:
        member = self.members[name]
        if member.node_up:
            member.service_up = True
            self._regrant(member)
            self._publish(member)

    def stop_agent(self, name: Member) -> None:
        """SIGTERM to the agent: it stops the voicemail answering, says `stopping`, exits."""
        member = self.members[name]
        member.granted_until = NEVER
        member.agent_running = False
        self._write(member, self._report(member))
        member.generation += 1  # no more renewals from this life

    def kill_agent(self, name: Member) -> None:
        """SIGKILL to the agent alone: nothing is published; the voicemail process keeps its
        last grant and stops answering by itself when the grant runs out (the reference's
        "Node Manager stopped" split brain, bounded here)."""
        member = self.members[name]
        member.agent_running = False
        member.generation += 1
        self._sample()

    def partition(self, name: Member) -> None:
        self.members[name].partitioned = True

    def heal(self, name: Member) -> None:
        member = self.members[name]
        member.partitioned = False
        if member.agent_running and member.node_up:
            self._see_active_lease(member)

    def set_cpu(self, name: Member, excessive: bool) -> None:
        member = self.members[name]
        member.cpu_excessive = excessive
        self._publish(member)

    def call_service(self) -> Call:
        """A caller dials the Service: it routes to the member the API names as active."""
        answered: Member | None = None
        if self.holder != "none" and self._answers(self.members[self.holder]):
            answered = self.holder
        call = Call(self.now, answered)
        self.calls.append(call)
        return call

    def call_member(self, name: Member) -> Call:
        """A call presented to a member directly (the reference's call on the inactive)."""
        member = self.members[name]
        if self._answers(member):
            call = Call(self.now, member.name)
        else:
            if member.node_up and member.agent_running and member.service_up:
                member.inactive_calls += 1
                self._publish(member)
            call = Call(self.now, None)
        self.calls.append(call)
        return call

    def request_manual(self, request_id: str, action: str) -> None:
        """`kubectl pairwarden failover|failback`: annotate the pair; the operator reacts."""
        self.request = ManualRequest(request_id, action)
        self._schedule(self.latency, self._reconcile)

    def restart_operator(self) -> None:
        """The operator restarts: it forgets its sightings and re-observes every Lease now."""
        self.observations = {}
        self.operator_started_at = self.now
        for name in MEMBERS:
            member = self.members[name]
            if member.published is not None:
                self.observations[name] = MemberObservation(
                    pod_name=f"vm-{name}",
                    pod_running=True,
                    last_seen=self.now,
                    report=member.published,
                )
        self._reconcile()

    def jump_wall(self, seconds: float) -> None:
        """The calendar jumps (NTP step, DST misconfiguration); monotonic time does not."""
        self.clock.jump_wall(seconds)

    # -------------------------------------------------------------------------- agent

    def _report(self, member: SimMember) -> MemberReport:
        return MemberReport(
            agent_running=member.agent_running,
            service_up=member.service_up,
            answering=self._answers(member),
            cpu_percent=99 if member.cpu_excessive else 20,
            cpu_excessive=member.cpu_excessive,
            calls_in_progress=member.calls,
            inactive_calls=member.inactive_calls,
            started=member.started,
            primary_contact=member.primary_contact,
            epoch=member.view_epoch,
        )

    def _renew(self, member: SimMember) -> None:
        if not (member.node_up and member.agent_running):
            return
        ok = self._write(member, self._report(member))
        delay = self.sizing.renew_period if ok else min(self.retry, self.sizing.renew_period)
        self._later(member, delay, lambda: self._renew(member))

    def _publish(self, member: SimMember) -> None:
        """An urgent extra write when a starred field changed (docs/protocol.md)."""
        if not (member.node_up and member.agent_running):
            return
        report = self._report(member)
        if member.published is None or report.urgent_change(member.published):
            self._write(member, report)
        self._sample()

    def _write(self, member: SimMember, report: MemberReport) -> bool:
        """Send a member Lease write; True when it reached the API server."""
        if member.partitioned or (self.loss and self.random.random() < self.loss):
            return False
        member.last_ok_sent = self.now
        member.published = report
        if member.name == "secondary" and self.now - self.last_primary_receipt <= (
            self.sizing.window
        ):
            member.primary_contact = self.clock.wall()
        self._regrant(member)
        # Once sent, the write is in flight whatever becomes of the member.
        self._schedule(self.latency, lambda: self._receive(member.name, report))
        return True

    def _regrant(self, member: SimMember) -> None:
        """The fencing rule: answer only while the last renewal is fresh and we hold the Lease."""
        if member.view_holder == member.name and member.agent_running and member.service_up:
            member.granted_until = member.last_ok_sent + self.sizing.fence_after
            # Not tied to the agent's life: the voicemail process keeps its own deadline.
            self._schedule(self.sizing.fence_after + 1e-6, lambda: self._fence_check(member))
        else:
            member.granted_until = NEVER

    def _fence_check(self, member: SimMember) -> None:
        if self.now >= member.granted_until:
            self._publish(member)

    def _see_active_lease(self, member: SimMember) -> None:
        """The agent's watch delivers the active Lease as the API holds it now."""
        member.view_holder, member.view_epoch = self.holder, self.epoch
        self._regrant(member)
        self._publish(member)

    # ----------------------------------------------------------------------- operator

    def _receive(self, name: Member, report: MemberReport) -> None:
        if name == "primary":
            self.last_primary_receipt = self.now
        self.observations[name] = MemberObservation(
            pod_name=f"vm-{name}", pod_running=True, last_seen=self.now, report=report
        )
        self._reconcile()

    def _operator_timer(self) -> None:
        self._reconcile()
        self._schedule(self.tick, self._operator_timer)

    def _reconcile(self) -> None:
        if not self.operator_up:
            return
        observed = Observed(
            status=self.status,
            primary=self.observations.get("primary", MemberObservation(pod_name="vm-primary")),
            secondary=self.observations.get(
                "secondary", MemberObservation(pod_name="vm-secondary")
            ),
            request=self.request,
            generation=1,
        )
        decision = decide(self.spec, observed, Now(self.now, self.clock.wall()))
        self.status = decision.status
        for action in decision.actions:
            if isinstance(action, Activate | Deactivate):
                self._set_holder(action)
            elif isinstance(action, Warn):
                self.warnings.append(action)
            elif isinstance(action, AckRequest):
                self.acks.append(action)
                self.request = None

    def _set_holder(self, action: Activate | Deactivate) -> None:
        target: ActiveMember = action.member if isinstance(action, Activate) else "none"
        self.changes.append(
            RoleChange(self.now, self.clock.wall(), self.holder, target, action.cause, action.epoch)
        )
        self.holder, self.epoch = target, action.epoch
        for member in self.members.values():
            if member.node_up and member.agent_running:
                self._later(member, self.latency, functools.partial(self._watch, member))

    def _watch(self, member: SimMember) -> None:
        if not member.partitioned:
            self._see_active_lease(member)
