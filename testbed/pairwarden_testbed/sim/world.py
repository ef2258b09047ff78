"""A deterministic world on virtual time: members (node + agent + voicemail), the API, and
the operator driving the real engine, with faults injected by tests.

Time moves only through an event queue on a ManualClock; nothing sleeps. What runs here is
what ships: each agent judges with `agent.core` (`decide_answer`, `licensing_expired`,
`build_report`, the CPU judge and the inactive-call counter) in the order of its runner's
steps (poll, renew then confirm the active Lease, watch events), and orders the rig's own
voicemail rules (`voicemail.core.VoicemailCore`, with the validity the agent hands it). The
operator asks `engine.decide` and applies the answer through `controller.dispatch.writes`,
the controller's own sequence, against an API that holds the active Lease, the Service
selector and the status apart, so a write that fails halfway leaves them disagreeing, as
it would in a cluster. A renewal reaches the API one `latency` after it was sent; the
operator reconciles on every observation and on a timer every `tick`.
"""

from __future__ import annotations

import contextlib
import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from pairwarden.agent.core import (
    CpuJudge,
    FenceInputs,
    InactiveCallCounter,
    LicensingClocks,
    PairSettings,
    RelayInputs,
    VoicemailView,
    build_report,
    decide_answer,
    hello_period,
    licensing_expired,
    must_renew_own_lease,
    next_renew_delay,
    own_renewal_due,
    relayed_since,
    report_news,
    settings_from_spec,
)
from pairwarden.api.models import (
    ActiveMember,
    FailoverPairSpec,
    FailoverPairStatus,
    Transition,
    parse_status,
    wire_member,
)
from pairwarden.clock import ManualClock
from pairwarden.controller import dispatch
from pairwarden.controller.observations import relayed_sighting, relays_standby
from pairwarden.engine import (
    Cause,
    ManualRequest,
    MemberObservation,
    Now,
    Observed,
    decide,
    status_patch,
)
from pairwarden.engine.types import AckRequest, LeaseView, RoutingView
from pairwarden.protocol import (
    LABEL_MEMBER,
    LABEL_PAIR,
    MEMBERS,
    HeartbeatSizing,
    Member,
    MemberReport,
    member_labels,
    other,
)
from pairwarden_testbed.voicemail.core import StaleEpoch, VoicemailCore

NEVER = float("-inf")
PAIR = "vm"  # the pair's name, its Service's name, and its pods' prefix
CPU_HIGH, CPU_LOW = 99.0, 20.0
API_VERBS = ("lease", "service", "labels", "status")  # the operator's writes a fault can fail


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


@dataclass(frozen=True)
class Event:
    """An Event the operator recorded on the pair."""

    at: float
    type: str
    reason: str
    message: str


class ApiFailure(Exception):
    """An operator write the API refused (an injected 500, or a 409/422 conflict)."""


@dataclass
class SimMember:
    """One member pod: its node, its agent (state of one life) and its voicemail process."""

    name: Member
    node_up: bool = False
    agent_running: bool = False
    partitioned: bool = False  # cannot reach the API server
    cpu_high: bool = False
    cpu_high_since: float = NEVER
    vm: VoicemailCore | None = None  # None: the voicemail process is down
    saved_contact: datetime | None = None  # the agent's state file: survives restarts
    generation: int = 0  # bumps with each life of the agent, so its stale timers do nothing
    # The agent's memory, as in agent.runner.Agent.
    holder: str | None = None
    epoch: int = 0
    holder_checked: float | None = None
    last_renewal_sent: float | None = None
    clocks: LicensingClocks | None = None
    licensing: str | None = None
    cpu_excessive: bool = False
    cpu_judge: CpuJudge = field(default_factory=CpuJudge)
    inactive: InactiveCallCounter = field(default_factory=InactiveCallCounter)
    written: MemberReport | None = None
    renew_ok: bool = False
    stopping: bool = False
    primary_seen: bool = False
    renewals: int = 0  # bumps when a renewal is (re)scheduled: an urgent write moves the next
    failures: int = 0  # consecutive failed renewals: the retry pause grows with them
    # The relay (agent.runner.Relay and Failsafe.hello_heard): the standby's heartbeat rides
    # the holder's renewal over the peer link, which works between two live agents.
    api_heard: float | None = None
    relayed_at: float | None = None
    hello_failed_since: float | None = None
    hello_heard: float | None = None
    own_writes: int = 0  # member Lease writes that reached the API server

    @property
    def pod(self) -> str:
        return pod_of(self.name)

    @property
    def alive(self) -> bool:
        return self.node_up and self.agent_running

    @property
    def service_up(self) -> bool:
        return self.node_up and self.vm is not None

    @property
    def last_ok_sent(self) -> float:
        return NEVER if self.last_renewal_sent is None else self.last_renewal_sent

    @property
    def view_epoch(self) -> int:
        return self.epoch


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
        poll: float | None = None,
        seed: int = 0,
        started: dict[Member, bool] | None = None,
        primary_contact: bool = True,
    ) -> None:
        self.spec = spec
        self.clock = clock or ManualClock()
        self.tick = tick
        self.latency = latency
        self.loss = loss
        self.random = random.Random(seed)
        self.settings: PairSettings = settings_from_spec(spec.model_dump(by_alias=True))
        self.sizing: HeartbeatSizing = self.settings.sizing
        # The agent polls every 0.2 s; here it polls at once on every change the world makes
        # to a member, at the instants a clock rule can flip (licensing, CPU duration), and
        # every `poll` seconds besides.
        self.poll = poll if poll is not None else self.sizing.renew_period
        self._queue: list[_Event] = []
        self._seq = 0
        # The API server's state: the active Lease, the Service selector, the pair's status
        # and annotations, the member Leases' reports; and the faults it will answer with.
        self.lease: tuple[ActiveMember, int] = ("none", 0)
        self.lease_move: Transition | None = None  # the move the Lease records (its annotation)
        self.selector: ActiveMember = "none"
        self.labels: ActiveMember = "none"
        self.stored_status: dict[str, object] = {}
        self.request: ManualRequest | None = None
        self.member_leases: dict[Member, MemberReport] = {}
        self.broken: dict[str, float] = {}  # verb -> monotonic time until which it fails
        self.failures: Counter[str] = Counter()  # verb -> how many of the next writes fail
        # The operator's memory (lost on restart except what is in the API).
        self.operator_up = True
        self.memory: FailoverPairStatus | None = None
        self.observations: dict[Member, MemberObservation] = {}
        self.operator_started_at = self.clock.monotonic()
        # Records.
        self.changes: list[RoleChange] = []
        self.foreign: list[tuple[float, str]] = []
        self.samples: list[Sample] = [Sample(self.clock.monotonic(), frozenset())]
        self.events: list[Event] = []
        self.acks: list[AckRequest] = []
        self.calls: list[Call] = []
        self.members = {m: SimMember(m) for m in MEMBERS}
        if primary_contact:
            self.members["secondary"].saved_contact = self.clock.wall()
        for name, up in (started if started is not None else dict.fromkeys(MEMBERS, True)).items():
            if up:
                self.start(name)
        self._schedule(self.tick, self._operator_timer)

    # ------------------------------------------------------------------------ running

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    @property
    def holder(self) -> ActiveMember:
        """The active Lease's holder: the one record of who is active."""
        return self.lease[0]

    @property
    def epoch(self) -> int:
        return self.lease[1]

    @property
    def status(self) -> FailoverPairStatus:
        """The status as the API stores it."""
        return parse_status(self.stored_status)

    @property
    def warnings(self) -> list[Event]:
        return [e for e in self.events if e.type == "Warning"]

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(self, until: float) -> None:
        self._sample()  # what a fault called between runs changed
        while self._queue and self._queue[0].at <= until:
            event = heapq.heappop(self._queue)
            self.clock.advance(max(0.0, event.at - self.now))
            event.run()
            if not self._queue or self._queue[0].at > self.now:
                self._sample()  # once every event of this instant ran: no zero-length samples
        self.clock.advance(max(0.0, until - self.now))
        self._sample()

    def run_until_answering(self, member: Member | None, limit: float) -> float | None:
        """Run until `member` answers (or nobody, for None); the time waited, or None."""
        start, deadline = self.now, self.now + limit
        while self.answering() != ({member} if member else set()):
            if not self._queue or self._queue[0].at > deadline:
                self.run_until(deadline)
                return None
            self.run_until(self._queue[0].at)
        return self.now - start

    def run_until_converged(self, limit: float) -> float | None:
        """Run until the pair is whole (`converged`); the time waited, or None."""
        start, deadline = self.now, self.now + limit
        while self.converged() is not None:
            if not self._queue or self._queue[0].at > deadline:
                self.run_until(deadline)
                return None if self.converged() is not None else self.now - start
            self.run_until(self._queue[0].at)
        return self.now - start

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` at monotonic time `when` (a fault of a schedule)."""
        self._schedule(max(0.0, when - self.now), action)

    def _schedule(self, delay: float, run: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Event(self.now + delay, self._seq, run))

    def _later(self, member: SimMember, delay: float, run: Callable[[], None]) -> None:
        """Schedule work of one life of an agent: a restart or a kill cancels it."""
        life = member.generation

        def guarded() -> None:
            if member.generation == life and member.alive:
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
        return member.service_up and member.vm is not None and member.vm.answering()

    def _sample(self) -> None:
        answering = frozenset(self.answering())
        if answering != self.samples[-1].answering:
            self.samples.append(Sample(self.now, answering))

    def converged(self) -> str | None:
        """None when the pair is whole: exactly one member answers, it holds the active Lease,
        the Service routes to it and the status names it; else what is wrong."""
        answering, holder = self.answering(), self.holder
        if answering != ({holder} if holder != "none" else set()) or len(answering) != 1:
            return f"answering {sorted(answering)}, Lease holder {holder}"
        if self.selector != holder:
            return f"Service routes to {self.selector}, Lease holder {holder}"
        if self.status.active_member != holder:
            return f"status names {self.status.active_member}, Lease holder {holder}"
        return None

    # ------------------------------------------------------------------------- faults

    def start(self, name: Member) -> None:
        """Power on (or restart) a member: node, agent and voicemail start."""
        member = self.members[name]
        member.node_up = True
        member.vm = VoicemailCore(member.pod, self.clock)
        self._start_agent(member)

    def crash(self, name: Member) -> None:
        """OS failure or power loss: everything on the member stops, nothing is published."""
        member = self.members[name]
        member.generation += 1
        member.node_up = member.agent_running = False
        member.vm = None

    def stop_service(self, name: Member) -> None:
        """The voicemail process stops or crashes; the agent sees it at its next poll."""
        member = self.members[name]
        member.vm = None
        self._poll_now(member)

    def start_service(self, name: Member) -> None:
        member = self.members[name]
        if member.node_up:
            member.vm = VoicemailCore(member.pod, self.clock)
            self._poll_now(member)

    def stop_agent(self, name: Member) -> None:
        """SIGTERM to the agent: it orders the voicemail to stop answering, releases its
        member Lease with agent=stopping, exits (agent.runner.Agent.shutdown)."""
        member = self.members[name]
        if not member.alive:
            return
        member.stopping = True
        if member.vm is not None:
            with contextlib.suppress(StaleEpoch):
                member.vm.set_role(False, member.epoch)
        self._send(member, self._report(member))
        member.agent_running = False
        member.generation += 1

    def kill_agent(self, name: Member) -> None:
        """SIGKILL to the agent alone: nothing is published; the voicemail process keeps its
        last order and stops answering by itself when the order's validity runs out."""
        member = self.members[name]
        member.agent_running = False
        member.generation += 1

    def start_agent(self, name: Member) -> None:
        """The kubelet restarts the agent container (the voicemail process kept running)."""
        member = self.members[name]
        if member.node_up and not member.agent_running:
            self._start_agent(member)

    def partition(self, name: Member) -> None:
        self.members[name].partitioned = True

    def heal(self, name: Member) -> None:
        member = self.members[name]
        member.partitioned = False
        if member.alive:
            self._deliver_active(member)  # the watch resumes with the Lease as it is now

    def set_cpu(self, name: Member, excessive: bool) -> None:
        member = self.members[name]
        if excessive and not member.cpu_high:
            member.cpu_high_since = self.now
        member.cpu_high = excessive
        self._poll_now(member)

    def call_service(self) -> Call:
        """A caller dials the Service: it reaches the member its selector names."""
        target = self.selector
        return self._offer(target if target != "none" else None)

    def call_member(self, name: Member) -> Call:
        """A call presented to a member directly (the reference's call on the inactive)."""
        return self._offer(name)

    def _offer(self, name: Member | None) -> Call:
        answered: Member | None = None
        member = self.members[name] if name else None
        if member is not None and member.service_up and member.vm is not None:
            answer = member.vm.offer("caller")
            if answer.call is not None:
                member.vm.hang_up(answer.call)
                answered = member.name
            else:
                self._poll_now(member)
        call = Call(self.now, answered)
        self.calls.append(call)
        return call

    def request_manual(self, request_id: str, action: str) -> None:
        """`kubectl pairwarden failover|failback`: annotate the pair; the operator reacts."""
        self.request = ManualRequest(request_id, action)
        self._schedule(self.latency, self._reconcile)

    def stop_operator(self) -> None:
        """kill -9 of the operator: whatever it was doing stops where it was."""
        self.operator_up = False

    def restart_operator(self) -> None:
        """The operator (re)starts: it forgets its memory and re-observes every Lease now."""
        self.operator_up = True
        self.memory = None
        self.observations = {}
        self.operator_started_at = self.now
        for name, report in self.member_leases.items():
            self.observations[name] = MemberObservation(
                pod_name=pod_of(name), pod_running=True, last_seen=self.now, report=report
            )
        self._reconcile()

    def break_api(self, verb: str, seconds: float) -> None:
        """The API answers the operator's `verb` writes with 500 for `seconds`."""
        self.broken[verb] = max(self.broken.get(verb, NEVER), self.now + seconds)

    def fail_next(self, verb: str, count: int = 1) -> None:
        """The next `count` operator writes of `verb` fail."""
        self.failures[verb] += count

    def foreign_lease_write(self, member: ActiveMember, bump: bool = True) -> None:
        """Someone else writes the active Lease naming `member` (kubectl, a restored backup)."""
        self.foreign.append((self.now, f"lease {member}"))
        self.lease = (member, self.epoch + (1 if bump else 0))
        self._announce_lease()

    def foreign_status_write(self, member: ActiveMember, epoch: int) -> None:
        """Someone else patches the status (`kubectl patch --subresource=status`)."""
        self.foreign.append((self.now, f"status {member} {epoch}"))
        self.stored_status = {**self.stored_status, "activeMember": member, "epoch": epoch}

    def foreign_selector_write(self, member: ActiveMember) -> None:
        self.foreign.append((self.now, f"selector {member}"))
        self.selector = member

    def jump_wall(self, seconds: float) -> None:
        """The calendar jumps (NTP step, DST misconfiguration); monotonic time does not."""
        self.clock.jump_wall(seconds)
        for member in self.members.values():
            self._poll_now(member)

    # -------------------------------------------------------------------------- agent

    def _start_agent(self, member: SimMember) -> None:
        """A new life of the agent (agent.runner.Agent.__init__ and run)."""
        member.generation += 1
        member.agent_running = True
        member.holder, member.epoch, member.holder_checked = None, 0, None
        member.last_renewal_sent, member.written, member.renew_ok = None, None, False
        member.stopping, member.licensing, member.cpu_excessive = False, None, False
        member.clocks = LicensingClocks(self.clock.wall(), member.saved_contact)
        member.cpu_judge, member.inactive = CpuJudge(), InactiveCallCounter()
        previous = self.member_leases.get(member.name)
        member.inactive.floor(previous.inactive_calls if previous else 0)
        member.primary_seen = "primary" in self.member_leases  # the watch's first sight
        member.failures = 0
        member.api_heard = member.relayed_at = member.hello_failed_since = None
        member.hello_heard = None
        self._poll(member)
        if not member.partitioned:
            self._deliver_active(member)
        self._renew(member)
        self._later(member, self._next_poll(member), lambda: self._poll_loop(member))

    def _report(self, member: SimMember) -> MemberReport:
        vm = member.vm if member.service_up else None
        assert member.clocks is not None
        view = (
            VoicemailView(
                up=True,
                answering=vm.answering(),
                calls=vm.calls_in_progress,
                inactive_calls=vm.inactive_calls,
                epoch=vm.epoch,
            )
            if vm is not None
            else VoicemailView()
        )
        report = build_report(
            stopping=member.stopping,
            vm=view,
            cpu_percent=CPU_HIGH if member.cpu_high else CPU_LOW,
            cpu_excessive=member.cpu_excessive,
            inactive_calls=member.inactive.total,
            clocks=member.clocks,
            member=member.name,
            epoch=member.epoch,
            digest="",
        )
        heard = member.hello_heard
        age = None if heard is None else max(0, round((self.now - heard) * 1000))
        return replace(report, peer_heard_ms=age)

    def _poll_loop(self, member: SimMember) -> None:
        self._poll(member)
        self._later(member, self._next_poll(member), lambda: self._poll_loop(member))

    def _next_poll(self, member: SimMember) -> float:
        """Seconds until the next poll: the period, or sooner when a clock rule may flip."""
        waits = [self.poll]
        if member.cpu_high and not member.cpu_excessive:
            waits.append(member.cpu_high_since + self.settings.cpu_duration - self.now)
        clocks = member.clocks
        if member.name == "secondary" and clocks is not None and not member.licensing:
            since, limit = (
                (clocks.primary_contact, self.settings.max_since_contact)
                if clocks.primary_contact is not None
                else (clocks.started, self.settings.never_contacted_grace)
            )
            waits.append((since - self.clock.wall()).total_seconds() + limit)
        return max(1e-3, min(waits))

    def _poll_now(self, member: SimMember) -> None:
        if member.alive:
            self._poll(member)

    def _poll(self, member: SimMember) -> None:
        """agent.runner.Agent.poll_once: read the voicemail, judge CPU and licensing, fence,
        and write at once when a starred report field changed."""
        assert member.clocks is not None
        if member.vm is not None:
            member.inactive.update(member.vm.inactive_calls)
        s = self.settings
        member.cpu_excessive = s.cpu_enabled and member.cpu_judge.observe(
            CPU_HIGH if member.cpu_high else CPU_LOW, self.now, s.cpu_threshold, s.cpu_duration
        )
        member.licensing = licensing_expired(member.name, member.clocks, s, self.clock.wall())
        self._evaluate(member)
        if (
            member.renew_ok
            and member.written
            and report_news(self._report(member), member.written)[0]
        ):
            self._renew(member)

    def _evaluate(self, member: SimMember) -> None:
        """agent.runner.Agent.evaluate: the shipped fencing rule, then the role order."""
        verdict = decide_answer(
            FenceInputs(
                pod=member.pod,
                holder=None if member.stopping else member.holder,
                epoch=member.epoch,
                last_renewal_sent=member.last_renewal_sent,
                holder_checked=member.holder_checked,
                service_up=member.service_up,
                licensing=member.licensing,
            ),
            self.sizing,
            self.now,
        )
        if member.vm is None:
            return
        try:
            member.vm.set_role(
                verdict.answer, member.epoch, verdict.valid_for if verdict.answer else None
            )
        except StaleEpoch:
            return
        if verdict.answer:
            # The process demotes itself when the order runs out: sample that instant.
            self._schedule(verdict.valid_for, lambda: None)

    def _relay_inputs(self, member: SimMember) -> RelayInputs:
        """agent.runner.Agent.relay_inputs."""
        urgent, changed = report_news(self._report(member), member.written)
        return RelayInputs(
            pod=member.pod,
            holder=None if member.stopping else member.holder,
            linked=True,
            last_own_sent=member.last_renewal_sent if member.renew_ok else None,
            api_heard=member.api_heard,
            relayed_at=member.relayed_at,
            hello_failed_since=member.hello_failed_since,
            urgent=urgent,
            report_changed=changed,
        )

    def _relaying(self, member: SimMember) -> bool:
        return bool(member.holder) and member.holder != member.pod

    def _renew(self, member: SimMember) -> None:
        """agent.runner.Agent._renew_loop: the member's own renewal when the relay's rule
        (`must_renew_own_lease`) says so, then the agent's own `next_renew_delay` (a full
        period after a success, a growing jittered pause after failures); otherwise the
        standby's relay step (a read of the active Lease, a hello to the holder)."""
        member.renewals += 1
        if must_renew_own_lease(self._relay_inputs(member), self.sizing, self.now) is None:
            self._relay_once(member)
            due = own_renewal_due(self._relay_inputs(member), self.sizing, self.now)[0]
            delay = due - self.now
            if self._relaying(member):
                delay = min(delay, hello_period(self.sizing))
            self._renew_after(member, max(0.0, delay))
            return
        report, sent = self._report(member), self.now
        if self._send(member, report):
            member.last_renewal_sent, member.written, member.renew_ok = sent, report, True
            member.api_heard = sent
            member.own_writes += 1
            lease = self.lease
            self._on_active_lease(member, lease[0], lease[1], sent)  # confirm_active
            self._evaluate(member)
            member.failures = 0
        else:
            member.renew_ok = False
            self._evaluate(member)
            member.failures += 1
        delay = next_renew_delay(member.failures, self.sizing, self.random.random())
        if member.failures == 0 and self._relaying(member):
            delay = min(delay, hello_period(self.sizing))
        self._renew_after(member, delay)

    def _relay_once(self, member: SimMember) -> None:
        """agent.runner.Agent.relay_once: a read of the active Lease once per R while the
        API server answers it, then (while it does) a hello the holder acknowledges with
        what its last successful renewal relayed. The link works between two live agents."""
        if not self._relaying(member):
            return
        period = self.sizing.renew_period
        if not member.partitioned and (
            member.api_heard is None or self.now - member.api_heard >= period
        ):
            member.api_heard = self.now
            self._on_active_lease(member, self.lease[0], self.lease[1], self.now)
            self._evaluate(member)
        if member.api_heard is None or self.now - member.api_heard > 2 * period:
            return
        holder = self.members[other(member.name)]
        if not holder.alive:
            if member.hello_failed_since is None:
                member.hello_failed_since = self.now
            return
        member.hello_failed_since = None
        holder.hello_heard = self.now
        if holder.name == "secondary":
            self._contact(holder)
        relayed = holder.written.peer_heard_ms if holder.written is not None else None
        if holder.renew_ok and holder.last_renewal_sent is not None and relayed is not None:
            renewed = round((self.now - holder.last_renewal_sent) * 1000)
            at = relayed_since(self.now, renewed, relayed)
            if at is not None:
                member.relayed_at = max(member.relayed_at or at, at)

    def _renew_after(self, member: SimMember, delay: float) -> None:
        turn = member.renewals

        def again() -> None:
            if member.renewals == turn:
                self._renew(member)

        self._later(member, delay, again)

    def _send(self, member: SimMember, report: MemberReport) -> bool:
        """Send a member Lease write; True when it reached the API server."""
        if member.partitioned or (self.loss and self.random.random() < self.loss):
            return False
        # Once sent, the write is in flight whatever becomes of the member.
        self._schedule(self.latency, lambda: self._receive(member.name, report))
        return True

    def _on_active_lease(
        self, member: SimMember, holder: ActiveMember, epoch: int, seen_at: float
    ) -> None:
        """agent.runner.Agent.on_active_lease: an older epoch than the one held is stale."""
        if epoch < member.epoch:
            return
        member.holder = pod_of(holder)
        member.epoch = epoch
        member.holder_checked = seen_at

    def _deliver_active(self, member: SimMember) -> None:
        """The agent's watch delivers the active Lease as the API holds it now. The agent
        orders its voicemail process at once, and its next poll (0.2 s later, here at once)
        writes the changed answer as an urgent renewal: a revoke is acknowledged promptly."""
        holder, epoch = self.lease
        self._on_active_lease(member, holder, epoch, self.now)
        self._poll(member)

    def _on_primary_renewal(self, member: SimMember) -> None:
        """agent.runner.Agent.on_primary_lease: a change after the first sight is contact."""
        if not member.primary_seen:
            member.primary_seen = True
            return
        self._contact(member)

    def _contact(self, member: SimMember) -> None:
        """agent.runner.Agent.contact_with_primary: a renewal of the primary seen, or its
        hello heard."""
        assert member.clocks is not None
        member.saved_contact = self.clock.wall()
        member.clocks = LicensingClocks(member.clocks.started, member.saved_contact)

    # ----------------------------------------------------------------------- operator

    def _receive(self, name: Member, report: MemberReport) -> None:
        self.member_leases[name] = report
        if name == "primary":
            secondary = self.members["secondary"]
            if secondary.alive and not secondary.partitioned:
                self._later(secondary, self.latency, lambda: self._on_primary_renewal(secondary))
        if not self.operator_up:
            return
        self.observations[name] = MemberObservation(
            pod_name=pod_of(name), pod_running=True, last_seen=self.now, report=report
        )
        # controller.observations.PairBook.see_relay: the other member's relayed hello, carried
        # by the holder's renewal only (relays_standby)
        relayed = (
            relayed_sighting(self.now, report.peer_heard_ms)
            if relays_standby(name, None if self.holder == "none" else self.holder)
            else None
        )
        seen = self.observations.get(other(name))
        if relayed is not None and seen is not None and relayed > (seen.last_seen or NEVER):
            self.observations[other(name)] = replace(seen, last_seen=relayed)
        self._reconcile()

    def _operator_timer(self) -> None:
        self._reconcile()
        self._schedule(self.tick, self._operator_timer)

    def _reconcile(self) -> None:
        """controller.reconcile.step: observe, decide, apply the writes in the controller's
        order; a refused write ends the step there, and the next one starts over."""
        if not self.operator_up:
            return
        previous = self.memory or self.status
        observed = Observed(
            status=previous,
            primary=self._observed_member("primary"),
            secondary=self._observed_member("secondary"),
            request=self.request,
            generation=1,
            lease=LeaseView(pod_of(self.holder), self.epoch, self.lease_move, self.holder),
            routing=RoutingView(
                selector={LABEL_PAIR: PAIR, LABEL_MEMBER: self.selector},
                selected=(pod_of(self.selector),) if self.selector != "none" else (),
            ),
            service=PAIR,
            pair=PAIR,
        )
        decision = decide(self.spec, observed, Now(self.now, self.clock.wall()))
        self.acks += [a for a in decision.actions if isinstance(a, AckRequest)]
        final = decision.status
        try:
            for write in dispatch.writes(decision, expected_epoch=self.epoch):
                self._apply(write)
                if isinstance(write, dispatch.WriteActiveLease):
                    self.memory = decision.status  # controller.reconcile.step: the role moved
            # controller.reconcile._write_status: compared with what is stored, since the
            # memory may hold a move whose status write failed (or a foreign write replaced).
            delta = status_patch(self.status, final, self.spec)
            if delta is not None:
                self._api("status")
                merged = {**self.stored_status, **delta}  # a merge patch: null deletes
                self.stored_status = {k: v for k, v in merged.items() if v is not None}
            self.memory = final
        except ApiFailure:
            return
        acknowledged = final.last_request.id if final.last_request else None
        if self.request is not None and acknowledged == self.request.id:
            self.request = None  # controller.requests.consume: the annotation goes

    def _observed_member(self, name: Member) -> MemberObservation:
        """What the controller reads of a member: its Lease's last renewal and its pod's
        labels (the Service selects on them)."""
        seen = self.observations.get(name, MemberObservation(pod_name=pod_of(name)))
        return replace(seen, labels=member_labels(PAIR, name, active=self.labels == name))

    def _api(self, verb: str) -> None:
        """Raise ApiFailure when a fault answers this write."""
        if self.failures[verb] > 0:
            self.failures[verb] -= 1
            raise ApiFailure(f"{verb}: injected failure")
        if self.broken.get(verb, NEVER) > self.now:
            raise ApiFailure(f"{verb}: injected 500")

    def _apply(self, write: dispatch.Write) -> None:
        if isinstance(write, dispatch.WriteActiveLease):
            self._api("lease")
            if self.epoch not in (write.expected_epoch, write.epoch):
                raise ApiFailure(f"active Lease is at epoch {self.epoch}")  # EpochConflict
            to: ActiveMember = write.member or "none"
            self.lease_move = write.move  # in the same request (leases.write_active)
            if self.lease != (to, write.epoch):
                self.lease = (to, write.epoch)
                self._announce_lease()
        elif isinstance(write, dispatch.RouteService):
            self._api("service")
            self.selector = write.member or "none"
        elif isinstance(write, dispatch.LabelPods):
            self._api("labels")
            self.labels = write.active or "none"
        elif isinstance(write, dispatch.RoleMoved):
            wall = self.clock.wall()
            change = RoleChange(
                self.now,
                wall,
                wire_member(write.previous),
                wire_member(write.to),
                write.cause,
                write.epoch,
            )
            self.changes.append(change)
            self.events.append(Event(self.now, write.event, write.cause.value, write.message))
        else:
            self.events.append(Event(self.now, write.type, write.reason, write.message))

    def _announce_lease(self) -> None:
        """The active Lease changed: each agent's watch delivers it one latency later."""
        for member in self.members.values():
            if member.alive:

                def watch(member: SimMember = member) -> None:
                    if not member.partitioned:
                        self._deliver_active(member)

                self._later(member, self.latency, watch)


def pod_of(member: ActiveMember) -> str:
    """A member's pod name as the Lease names it ("" for nobody)."""
    return f"{PAIR}-{member}" if member != "none" else ""
