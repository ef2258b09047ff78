"""The pure failover engine: `decide(spec, observed, now) -> Decision`.

No I/O, no clock of its own, no kubernetes. Everything it must remember between calls lives
in the FailoverPair status it is handed and returns, so an operator restart rebuilds it.
The rules, in the order they are tried, are documented in docs/behaviour.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pairwarden.api.models import (
    ActiveMember,
    DriftStatus,
    FailbackType,
    FailoverPairSpec,
    FailoverPairStatus,
    Handoff,
    LicensingStatus,
    MemberStatus,
    MemberStatuses,
    Phase,
    RequestStatus,
    Transition,
)
from pairwarden.engine.conditions import (
    READY_PROBLEMS,
    Check,
    ReadyInputs,
    failsafe,
    failsafe_event,
    find,
    members_resolved,
    ready,
    stamp,
)
from pairwarden.engine.schedule import failback_outlook
from pairwarden.engine.types import (
    REVOKE_FIRST,
    AckRequest,
    Action,
    Activate,
    Cause,
    Deactivate,
    Decision,
    LeaseView,
    ManualRequest,
    MemberObservation,
    Now,
    Observed,
    RecordMove,
    Route,
    UpdateStatus,
    Warn,
)
from pairwarden.protocol import (
    LABEL_MEMBER,
    LABEL_PAIR,
    MEMBERS,
    PREFIX,
    Member,
    MemberReport,
    member_labels,
    other,
)

# Failures after which a member cannot be answering: its grant ran out (it fences itself
# within W - R/2 of its last renewal; the operator waits W) or its pod is not running. A move
# away from it needs no revoke first.
CANNOT_ANSWER = frozenset({Cause.HEARTBEAT_LOST, Cause.POD_GONE, Cause.POD_CRASHED})
KNOWN_CAUSES = frozenset(c.value for c in Cause)
HISTORY_LIMIT = 32  # transitions kept in status; flap damping needs only those in the period


@dataclass(frozen=True)
class MemberHealth:
    """The engine's judgement of one member at `now`."""

    name: Member
    failure: Cause | None  # why it cannot serve, or None when it can
    licensed: bool
    licence_reason: str
    observation: MemberObservation

    @property
    def eligible(self) -> bool:
        """May be made active: alive, service up, licensed."""
        return self.failure is None and self.licensed

    @property
    def cpu_excessive(self) -> bool:
        return self.observation.report.cpu_excessive

    @property
    def answering(self) -> bool:
        return self.failure is None and self.observation.report.answering


def silent(spec: FailoverPairSpec, seen: MemberObservation, now: Now) -> bool:
    """HeartbeatLost: no renewal observed for longer than W (of the operator's hearing time,
    controller/observations.Hearing), or back after such a silence and heard only once
    since. A member whose heartbeat was lost is eligible again only once it has been heard
    twice: a single renewal after a loss may be one that was late (held in a cut network, a
    lagging watch) from a member still cut off. On a real node a member cut from the API
    server was judged HeartbeatLost, one late renewal of its was seen two seconds later, and
    when the new holder's voicemail went down a second after that, the role went back to the
    cut member (none -> primary, FirstToStart), which then fenced itself: nobody answered."""
    if seen.last_seen is None or now.monotonic - seen.last_seen > spec.heartbeat.window_seconds:
        return True
    return seen.rejoining


def judge(
    spec: FailoverPairSpec,
    status: FailoverPairStatus,
    name: Member,
    seen: MemberObservation,
    now: Now,
    problem: str | None = None,
) -> MemberHealth:
    """Whether a member can serve, and if not, the cause to name."""
    report = seen.report
    failure: Cause | None = None
    if problem is not None or seen.pod_problem is not None:
        failure = Cause.POD_UNRESOLVED
    elif not seen.pod_running:
        failure = Cause.POD_GONE
    elif crashed(seen):
        failure = Cause.POD_CRASHED
    elif not report.agent_running:
        failure = Cause.AGENT_STOPPED
    elif silent(spec, seen, now):
        failure = Cause.HEARTBEAT_LOST
    elif not report.service_up:
        failure = Cause.SERVICE_STOPPED
    licensed, reason = True, ""
    if name == "secondary":
        deadline, reason = licence_deadline(spec, status, seen)
        licensed = deadline is None or now.wall < deadline
    return MemberHealth(name, failure, licensed, reason, seen)


def crashed(seen: MemberObservation) -> bool:
    """Whether the member's pod crashed and has not shown life since: the kubelet reported
    every one of its containers terminated (or restarted) after the member's last renewal the
    operator observed. The node knows within about a second; the window W would wait for
    silence, while the kubelet restarts the containers and callers are lost meanwhile.

    Every container, not any: the voicemail process alone dying is the agent's to report
    (ServiceStopped, at once), and the agent alone dying leaves the voicemail process
    answering until its last order runs out, so moving then would make two answer. With both
    dead nobody answers and nobody reports. A container merely not Ready is no death.

    A renewal observed after the deaths ends it: the restarted agent is back, and is judged by
    its report again (it hears the active Lease moved and rejoins as standby)."""
    deaths = seen.container_deaths
    if not deaths:
        return False
    last = seen.last_seen
    return all(died is not None and (last is None or died > last) for died in deaths)


def remembered_contact(status: FailoverPairStatus, seen: MemberObservation) -> datetime | None:
    """The later of the reported and the remembered primary contact: an agent restart
    must not make the secondary forget that it once reached the primary."""
    reported, remembered = seen.report.primary_contact, status.members.secondary.primary_contact
    if reported is None or remembered is None:
        return reported or remembered
    return max(reported, remembered)


def licence_deadline(
    spec: FailoverPairSpec, status: FailoverPairStatus, seen: MemberObservation
) -> tuple[datetime | None, str]:
    """When the secondary's licensing clock runs out (reference "Licensing Restrictions")."""
    contact = remembered_contact(status, seen)
    if contact is not None:
        limit = spec.licensing.max_seconds_since_contact
        return _later(contact, limit), f"{limit}s after last contact with the primary"
    started = seen.report.started or status.members.secondary.started
    if started is not None:
        grace = spec.licensing.never_contacted_grace_seconds
        return _later(started, grace), f"{grace}s after start, primary never contacted"
    return None, "start time not reported yet"


def _later(instant: datetime, seconds: float) -> datetime:
    """`instant` plus `seconds`, saturating at the end of the calendar: a time read from a
    report or a status (anyone may write one) must not overflow the engine's arithmetic."""
    try:
        return instant + timedelta(seconds=seconds)
    except OverflowError:
        return datetime.max.replace(tzinfo=instant.tzinfo)


def is_held(spec: FailoverPairSpec, status: FailoverPairStatus, now: Now) -> bool:
    """Flap damping: maxTransitions role changes within periodSeconds hold discretionary ones."""
    since = now.wall - timedelta(seconds=spec.flap_damping.period_seconds)
    recent = sum(1 for t in status.transitions if t.time > since)
    return recent >= spec.flap_damping.max_transitions


@dataclass(frozen=True)
class Truth:
    """Who is active and at which epoch, from the active Lease (or the status when no Lease
    was read). `floor` is the highest epoch anyone holds: the next write goes above it, since
    agents ignore an epoch lower than their own. `rewrite` says why the Lease itself must be
    written again even if its holder stays (it names a stranger, or an epoch agents ignore)."""

    holder: ActiveMember
    epoch: int
    floor: int
    rewrite: str | None = None


def read_truth(observed: Observed) -> Truth:
    """The active Lease is the one record of who is active; a status written by anyone (a
    restored backup, a person's patch) never overrides it. Its holder is the member whose
    pod it names, or else the member whose pod is gone (`gone_holder`)."""
    reported = max(observed.primary.report.epoch, observed.secondary.report.epoch)
    lease = observed.lease
    if lease is None:
        status = observed.status
        return Truth(status.active_member, status.epoch, max(status.epoch, reported))
    floor = max(lease.epoch, reported)
    if not lease.holder:
        holder: ActiveMember = "none"
    else:
        named = [m for m in MEMBERS if observed.member(m).pod_name == lease.holder]
        if not named and (gone := gone_holder(observed, lease)) is not None:
            named = [gone]
        if len(named) != 1:
            return Truth("none", lease.epoch, floor, f"it names {lease.holder}, no member's pod")
        holder = named[0]
    if floor > lease.epoch:
        return Truth(holder, lease.epoch, floor, f"agents hold epoch {floor} > {lease.epoch}")
    return Truth(holder, lease.epoch, floor)


def gone_holder(observed: Observed, lease: LeaseView) -> Member | None:
    """The member the Lease names whose pod is gone: a member found by selector resolves to
    no pod once its pod is deleted or stops running (a member named by podName keeps its
    name and is judged PodGone as it is), so the Lease names a pod that is no member's.
    It is still that member's Lease, and the engine fails over from it (PodGone), rather
    than rewriting it as a stranger's (none -> FirstToStart, the move away unrecorded).

    Who held it comes from the Lease alone: `pairwarden.io/member`, written with the holder
    in one request (leases.write_active), never from a status anyone may write. It counts
    only while that member names no pod at all (no running pod matches it, and its spec has
    no problem); a member that resolves to another pod, or to several, leaves the Lease a
    stranger's, rewritten as before."""
    member = next((m for m in MEMBERS if m == lease.member), None)
    if member is None:
        return None
    seen = observed.member(member)
    if seen.pod_name is not None or seen.pod_problem is not None:
        return None
    return member


def member_problems(observed: Observed) -> dict[Member, str]:
    """Why a member names no single running pod of its own: the controller says when its
    podName/selector matches none or several; two members naming one pod is caught here."""
    problems: dict[Member, str] = {
        m: p for m in MEMBERS if (p := observed.member(m).pod_problem) is not None
    }
    first, second = observed.primary.pod_name, observed.secondary.pod_name
    if first is not None and first == second:
        problems["secondary"] = (
            f"spec.members.secondary resolves to {second}, the pod of spec.members.primary"
        )
    return problems


def missing_pods(observed: Observed, problems: Mapping[Member, str]) -> dict[Member, str]:
    """Members whose spec is sound but whose pod is absent or not running, named for the
    MembersResolved condition: a pod being replaced for a moment, or a podName or selector
    that matches nothing (a typo, the pods not created yet, another namespace)."""
    missing: dict[Member, str] = {}
    for member in MEMBERS:
        seen = observed.member(member)
        if member in problems or seen.pod_problem is not None:
            continue
        if seen.pod_name is None:
            missing[member] = f"spec.members.{member}.selector matches no running pod"
        elif not seen.pod_exists:
            missing[member] = f"spec.members.{member}: pod {seen.pod_name} does not exist"
        elif not seen.pod_running:
            missing[member] = f"spec.members.{member}: pod {seen.pod_name} is not running"
    return missing


def missed_move(
    status: FailoverPairStatus, truth: Truth, lease: LeaseView | None
) -> Transition | None:
    """The move the active Lease carries and the status lacks: written in the Lease's own
    request, it survives an operator stopped before its status write. It counts only while
    the Lease still names its holder at its epoch (a foreign write leaves it stale) and the
    status has no transition of that epoch or a later one."""
    move = lease.move if lease is not None else None
    if move is None or truth.rewrite is not None or move.cause not in KNOWN_CAUSES:
        return None
    if (move.epoch, move.to) != (truth.epoch, truth.holder):
        return None
    last = status.last_transition
    if last is not None and last.epoch >= move.epoch:
        return None
    return move


def decide(spec: FailoverPairSpec, observed: Observed, now: Now) -> Decision:
    """One reconciliation: who should hold the active role now, and what to record."""
    stored = observed.status
    truth = read_truth(observed)
    actions: list[Action] = []
    missed = missed_move(stored, truth, observed.lease)
    if missed is not None:
        transitions = [*stored.transitions, missed][-HISTORY_LIMIT:]
        recorded = stored.model_copy(update={"last_transition": missed, "transitions": transitions})
        observed = replace(observed, status=recorded)
        actions.append(RecordMove(missed))
    status = observed.status
    problems = member_problems(observed)
    health = {m: judge(spec, status, m, observed.member(m), now, problems.get(m)) for m in MEMBERS}
    holder = truth.holder
    handoff = _pending_handoff(status.handoff, truth)
    held = is_held(spec, status, now)
    change: tuple[ActiveMember, Cause] | None = None
    last_request = status.last_request
    why: list[str] = []

    request = observed.request
    if request is not None and (last_request is None or last_request.id != request.id):
        change, ack = _manual(request, holder, health, handoff)
        actions.append(ack)
        why.append(f"request {ack.id}: {ack.outcome}")
        last_request = RequestStatus(
            id=ack.id, action=ack.action, outcome=ack.outcome, message=ack.message, time=now.wall
        )

    revoked = handoff or status.handoff
    new_calls = _new_inactive_calls(status, health, holder, revoked.from_ if revoked else None)
    for member in new_calls:
        actions.append(
            Warn(
                Cause.INACTIVE_CALL.value,
                f"a call arrived on the inactive {member}; "
                + (
                    "failing over to it"
                    if spec.force_failover_on_inactive_call
                    else "forceFailoverOnInactiveCall is off, so no failover"
                ),
            )
        )

    split_since = _split_brain_since(status, health, now)
    if change is None and handoff is not None:
        change, handoff = _continue_handoff(spec, handoff, health, now)
        if handoff is not None:
            why.append(
                f"waiting for {handoff.from_} to stop answering before granting {handoff.to}"
            )
    elif change is None and not spec.paused:
        if truth.epoch == 0 and not _settled(spec, status, now):
            change = _new_pair(health)
        else:
            change = _automatic(spec, status, health, holder, held, new_calls, split_since, now)
    if change is None and truth.rewrite is not None:
        change = (
            (holder if holder == "none" or health[holder].eligible else "none"),
            (Cause.LEASE_REPAIRED),
        )

    epoch = truth.epoch
    transitions = list(status.transitions)
    last_transition = status.last_transition
    no_active_since = status.no_active_since
    if change is not None and (change[0] != holder or truth.rewrite is not None):
        target, cause = change
        # A member whose grant expired during a handoff answers no more, whatever its last
        # (stale) report says.
        waived = handoff.from_ if handoff is not None and _expired(spec, handoff, now) else None
        others = [m for m in MEMBERS if m not in (target, waived) and health[m].answering]
        revoke = target != "none" and (
            bool(others)
            or (holder != "none" and holder != target and _may_answer(health[holder], cause))
        )
        epoch = truth.floor + 1
        if revoke and target != "none":
            old: Member = other(target)
            if holder != "none" or truth.rewrite is not None:
                actions.append(
                    Deactivate(epoch, cause, previous=holder, expected_epoch=truth.epoch)
                )
            else:
                epoch = truth.epoch  # nobody is named: nothing to revoke, only to wait for
            handoff = Handoff(from_=old, to=target, cause=cause.value, epoch=epoch, since=now.wall)
            why.append(f"{cause.value}: revoked {old} at epoch {epoch}; {target} waits for it")
            no_active_since = no_active_since or now.wall
            holder = "none"
        else:
            previous = handoff.from_ if handoff is not None else holder
            if target == "none":
                actions.append(
                    Deactivate(epoch, cause, previous=previous, expected_epoch=truth.epoch)
                )
                no_active_since = no_active_since or now.wall
            else:
                actions.append(
                    Activate(target, epoch, cause, previous=previous, expected_epoch=truth.epoch)
                )
            if target != holder or previous != target:
                last_transition = Transition(
                    time=now.wall,
                    from_=previous,
                    to=target,
                    cause=cause.value,
                    epoch=epoch,
                    duration_seconds=_outage_seconds(holder, cause, health, no_active_since, now),
                )
                transitions = [*transitions, last_transition][-HISTORY_LIMIT:]
            why.append(f"{cause.value}: {previous} -> {target} at epoch {epoch}")
            if target != "none":
                no_active_since = None
            holder = target
            handoff = None
    elif holder == "none" and no_active_since is None:
        no_active_since = now.wall

    routing = _routing_repair(observed, holder, actions)
    if routing is not None:
        why.append(routing.reason)
    new_status = _status(
        spec,
        observed,
        now,
        health,
        holder=holder,
        epoch=epoch,
        transitions=transitions,
        last_transition=last_transition,
        last_request=last_request,
        no_active_since=no_active_since,
        split_brain=split_since is not None,
    ).model_copy(update={"handoff": handoff})
    held_after = is_held(spec, new_status, now)
    checks = _checks(spec, observed, new_status, health, held_after, split_since, problems, now)
    conditions = stamp(
        status.conditions,
        checks,
        now.wall,
        observed.generation,
        since={"SplitBrainSuspected": split_since} if split_since is not None else None,
    )
    ready_check = next(c for c in checks if c.type == "Ready")
    silent = ready_check.reason == "HolderNotAnswering"
    new_status = new_status.model_copy(
        update={
            "phase": _phase(
                spec, holder, health, held_after, handoff is not None, ready_check.status
            ),
            "conditions": conditions,
            "holder_silent_since": (status.holder_silent_since or now.wall) if silent else None,
        }
    )
    drift = _drift_warning(status, new_status)
    if drift is not None:
        actions.append(drift)
    actions.extend(_problem_events(status, checks))
    reports = {m: observed.member(m).report for m in MEMBERS}
    event = failsafe_event(find(status, "Failsafe"), reports)
    if event is not None:
        actions.append(event)
    if worth_writing(stored, new_status, spec):
        actions.append(UpdateStatus(new_status))
    if not why:
        why.append(f"no change: {ready_check.message}")
    return Decision(
        actions=tuple(actions),
        status=new_status,
        reason="; ".join(why),
        replicate=all(health[m].failure is None for m in MEMBERS),
    )


def _may_answer(old: MemberHealth, cause: Cause) -> bool:
    """Whether a move away from `old` must revoke it first: a discretionary or requested move
    from a holder that may still be answering."""
    return cause in REVOKE_FIRST and (old.failure is None or old.failure not in CANNOT_ANSWER)


def _pending_handoff(handoff: Handoff | None, truth: Truth) -> Handoff | None:
    """A handoff still stands while the Lease is where the revoke left it: nobody named at
    the revoke's epoch. Any other Lease (a foreign write, a newer operator) ends it."""
    if handoff is None or truth.holder != "none" or truth.epoch != handoff.epoch:
        return None
    return handoff


def _continue_handoff(
    spec: FailoverPairSpec, handoff: Handoff, health: dict[Member, MemberHealth], now: Now
) -> tuple[tuple[ActiveMember, Cause] | None, Handoff | None]:
    """Grant the new holder once the old one stopped answering (its report says so) or its
    grant expired (W after the revoke: the agent fences itself within W - R/2 of its last
    confirmation of the Lease). Meanwhile, if the target can no longer serve, the old holder
    may have the role back at once: it is the only one that might be answering."""
    cause = Cause(handoff.cause)
    old, target = health[handoff.from_], health[handoff.to]
    released = not old.answering or _expired(spec, handoff, now)
    if released and target.eligible:
        return (handoff.to, cause), handoff
    if not target.eligible and old.eligible:
        return (handoff.from_, cause), handoff
    if released:
        return None, None  # neither can take it now: the automatic rules decide next look
    return None, handoff


def _expired(spec: FailoverPairSpec, handoff: Handoff, now: Now) -> bool:
    """The revoked holder's grant has run out: W after the revoke (its agent stops answering
    within W - R/2 of its last confirmation of the Lease, which came before the revoke)."""
    return (now.wall - handoff.since).total_seconds() >= spec.heartbeat.window_seconds


def _routing_repair(
    observed: Observed, holder: ActiveMember, actions: list[Action]
) -> Route | None:
    """Service selector and pod labels follow the Lease; repair them when they differ (a flip
    cut short, a foreign write). A role change this step routes anyway. A new pair (nobody
    ever held the role: epoch 0) has unlabelled pods and the user's selector: routing it to
    nobody is its first routing, not a repair, and no Warning for a healthy start."""
    routing = observed.routing
    if routing is None or any(isinstance(a, Activate | Deactivate) for a in actions):
        return None
    wrong: list[str] = []
    if routing.exists:
        routed = routing.selector.get(LABEL_MEMBER)
        if routed != holder or routing.selector.get(LABEL_PAIR) != observed.pair:
            wrong.append(f"Service {observed.service} selects {routed or 'no member'}")
    for name in MEMBERS:
        seen = observed.member(name)
        if seen.labels is None or seen.pod_name is None:
            continue
        wanted = member_labels(observed.pair, name, active=name == holder)
        if any(seen.labels.get(k) != v for k, v in wanted.items()):
            wrong.append(f"pod {seen.pod_name} is labelled {_shown(seen.labels, wanted)}")
    if not wrong:
        return None
    first = observed.lease is not None and observed.lease.epoch == 0
    route = Route(
        holder, f"{'routed' if first else 'repaired routing'} to {holder}: " + ", ".join(wrong)
    )
    actions.append(route)
    if not first:
        actions.append(Warn("RoutingRepaired", route.reason))
    return route


def _shown(labels: Mapping[str, str], wanted: Mapping[str, str]) -> str:
    return ",".join(f"{k.removeprefix(PREFIX)}={labels.get(k, '')}" for k in wanted)


def _problem_events(status: FailoverPairStatus, checks: list[Check]) -> list[Warn]:
    """One Warning Event when a condition takes a reason a person must act on."""
    return [
        Warn(check.reason, check.message)
        for check in checks
        if _needs_person(check)
        and getattr(find(status, check.type), "reason", None) != check.reason
    ]


def _reason(status: FailoverPairStatus, kind: str) -> str | None:
    condition = find(status, kind)
    return condition.reason if condition is not None else None


def _needs_person(check: Check) -> bool:
    if check.type == "Ready":
        return check.reason in READY_PROBLEMS
    return check.type == "MembersResolved" and not check.status


def worth_writing(
    before: FailoverPairStatus, after: FailoverPairStatus, spec: FailoverPairSpec
) -> bool:
    """The one status-write filter. Not worth a write: what moves with every renewal
    (heartbeat times, CPU, calls in progress), nor the secondary's last contact with the
    primary (with its licensing deadline) moving forward by less than a hundredth of the
    contact limit (14.4 h of the default 60 days). Writing those would add one status write
    per renewal to the heartbeat budget; the engine reads the live values from the member
    Leases and the secondary's agent keeps its contact on disk. Stale by up to the tolerance,
    the stored contact errs early: the deadline derived from it comes sooner, never later."""
    if before == after:
        return False
    tolerance = spec.licensing.max_seconds_since_contact / 100

    def moved(old: datetime | None, new: datetime | None) -> bool:
        if old is None or new is None:
            return old is not new
        return not 0 <= (new - old).total_seconds() < tolerance

    if moved(before.members.secondary.primary_contact, after.members.secondary.primary_contact):
        return True
    if moved(before.licensing.secondary_deadline, after.licensing.secondary_deadline):
        return True
    return _material(before) != _material(after)


# --------------------------------------------------------------------------------- rules


def _manual(
    request: ManualRequest,
    holder: ActiveMember,
    health: dict[Member, MemberHealth],
    handoff: Handoff | None,
) -> tuple[tuple[ActiveMember, Cause] | None, AckRequest]:
    """Manual failover/failback: honoured even when paused or held; like every move away
    from a holder that can serve, it revokes first and grants once the old one stopped."""
    targets: dict[str, tuple[Member, Cause]] = {
        "failover": ("secondary", Cause.MANUAL_FAILOVER),
        "failback": ("primary", Cause.MANUAL_FAILBACK),
    }
    if request.action not in targets:
        return None, AckRequest(
            request.id, request.action, "Refused", "unknown action: use failover or failback"
        )
    target, cause = targets[request.action]
    if handoff is not None and handoff.to == target:
        return None, AckRequest(
            request.id, request.action, "Accepted", f"{target} is being made active"
        )
    if holder == target:
        return None, AckRequest(
            request.id, request.action, "AlreadyActive", f"{target} is already active"
        )
    member = health[target]
    if member.failure is not None:
        return None, AckRequest(
            request.id, request.action, "Refused", f"{target} cannot serve: {member.failure}"
        )
    if not member.licensed:
        return None, AckRequest(
            request.id,
            request.action,
            "Refused",
            f"{target} licensing ran out ({member.licence_reason})",
        )
    return (target, cause), AckRequest(
        request.id, request.action, "Accepted", f"{target} is being made active"
    )


def _new_inactive_calls(
    status: FailoverPairStatus,
    health: dict[Member, MemberHealth],
    holder: ActiveMember,
    revoked: Member | None = None,
) -> list[Member]:
    """Members that are not the holder and whose inactive-call counter grew since last seen.
    Not the member a handoff revoked (pending, or ended by this step's grant): the Service
    still routed callers to it until the grant moved the selector, so a call it refused then
    is the move's own gap, not a call on the standby (it was a Warning `InactiveCall` on
    every manual move). Its counter is still remembered, so it is not reported later."""
    grew: list[Member] = []
    for name in MEMBERS:
        member = health[name]
        seen = getattr(status.members, name).inactive_calls_seen
        if (
            name != holder
            and name != revoked
            and member.failure is None
            and member.observation.report.inactive_calls > seen
        ):
            grew.append(name)
    return grew


def _settled(spec: FailoverPairSpec, status: FailoverPairStatus, now: Now) -> bool:
    """A new pair has waited one renewal period since the operator first looked at it."""
    since = status.no_active_since
    elapsed = (now.wall - since).total_seconds() if since is not None else 0.0
    return elapsed >= spec.heartbeat.renew_period_seconds


def silence_counts_from(
    status: FailoverPairStatus, holder: ActiveMember, window: float
) -> datetime | None:
    """When a holder's silence starts to count towards a NotAnswering failover. A holder
    granted the role is silent until its agent has heard the grant, ordered its voicemail
    process and reported back: it gets one window for that (as long as a member is given to
    show a heartbeat), so a slow node is not failed over the instant it is granted."""
    since = status.holder_silent_since
    last = status.last_transition
    if since is None or last is None or last.to != holder:
        return since
    return max(since, last.time + timedelta(seconds=window))


def _new_pair(health: dict[Member, MemberHealth]) -> tuple[ActiveMember, Cause] | None:
    """A new pair's pods start together, so "first to start" would be a coin toss. The primary
    is active under normal circumstances: it wins if it can serve, and the secondary waits one
    renewal period for it to show up before taking the role itself."""
    if health["primary"].eligible:
        return "primary", Cause.FIRST_TO_START
    return None


def _split_brain_since(
    status: FailoverPairStatus, health: dict[Member, MemberHealth], now: Now
) -> datetime | None:
    """When both members have been reporting that they answer, or None if not both now."""
    if not all(health[m].answering for m in MEMBERS):
        return None
    for condition in status.conditions:
        if condition.type == "SplitBrainSuspected" and condition.status == "True":
            return condition.last_transition_time
    return now.wall


def _automatic(
    spec: FailoverPairSpec,
    status: FailoverPairStatus,
    health: dict[Member, MemberHealth],
    holder: ActiveMember,
    held: bool,
    new_calls: list[Member],
    split_since: datetime | None,
    now: Now,
) -> tuple[ActiveMember, Cause] | None:
    """The automatic rules, most urgent first. None means: keep the holder."""
    if holder == "none":
        candidates = [health[m] for m in MEMBERS if health[m].eligible]
        if not candidates:
            return None
        first = min(candidates, key=_start_order)
        return first.name, Cause.FIRST_TO_START

    active, standby = health[holder], health[other(holder)]
    fallback: ActiveMember = standby.name if standby.eligible else "none"

    # The holder cannot serve: never held back by flap damping.
    if active.failure is not None:
        return fallback, active.failure
    if not active.licensed:
        return fallback, Cause.LICENSING_EXPIRED
    # Healthy by its heartbeat, yet not answering at its epoch for longer than a window (it
    # cannot read the Lease, its voicemail refuses the order): it is not serving anyone. Its
    # report now must say so too: the silence remembered in the status may be older than a
    # restart (an operator killed before it wrote the answer that cleared it), and a holder
    # that answers now is serving, whatever was remembered.
    silent = silence_counts_from(status, holder, spec.heartbeat.window_seconds)
    if (
        silent is not None
        and not active.answering
        and standby.eligible
        and (now.wall - silent).total_seconds() > spec.heartbeat.window_seconds
    ):
        return standby.name, Cause.NOT_ANSWERING

    # Both answer for longer than the fencing bound: the reference keeps the primary.
    if (
        split_since is not None
        and holder == "secondary"
        and standby.eligible
        and (now.wall - split_since).total_seconds() > spec.heartbeat.window_seconds
    ):
        return "primary", Cause.PARTITION_HEALED

    # Discretionary changes: only to a healthy, calm standby, and not while held.
    if held or not standby.eligible or standby.cpu_excessive:
        return None
    if spec.excessive_cpu.enabled and active.cpu_excessive:
        return standby.name, Cause.EXCESSIVE_CPU
    if spec.force_failover_on_inactive_call and standby.name in new_calls:
        return standby.name, Cause.INACTIVE_CALL
    if holder == "secondary" and scheduled_failback_due(spec, status.last_transition, now):
        return "primary", Cause.SCHEDULED_FAILBACK
    return None


def scheduled_failback_due(
    spec: FailoverPairSpec, last_transition: Transition | None, now: Now
) -> bool:
    """Scheduled failback: due while the window is open ("when the time scheduled arrives"),
    whether the secondary took over before it opened or automatically while it is open; but a
    manual failover made inside the open window is the administrator's, kept until the next
    opening (or a manual failback), not undone a moment later."""
    window = spec.failback.window
    if spec.failback.type != FailbackType.SCHEDULED or window is None:
        return False
    if not window.contains(now.wall):
        return False
    if last_transition is None or last_transition.cause != Cause.MANUAL_FAILOVER.value:
        return True
    return last_transition.time < window.opened_at(now.wall)


def settings_drift(primary: MemberReport, secondary: MemberReport) -> list[str]:
    """The never-replicated settings that differ between the members (reference: "Data That
    Is Not Replicated"); [] while they match or either member has not reported them yet."""
    return primary.settings_differing_from(secondary) or []


def _drift_warning(before: FailoverPairStatus, after: FailoverPairStatus) -> Warn | None:
    """One Warning when drift appears or the differing settings change, naming them."""
    names = after.drift.differing_settings
    if not names or names == before.drift.differing_settings:
        return None
    return Warn("SettingsDrift", "per-member settings differ between members: " + ", ".join(names))


def _start_order(member: MemberHealth) -> tuple[bool, float, int]:
    """First started first; unknown start times last; the primary wins a tie."""
    started = member.observation.report.started
    return (started is None, started.timestamp() if started else 0.0, MEMBERS.index(member.name))


def _outage_seconds(
    holder: ActiveMember,
    cause: Cause,
    health: dict[Member, MemberHealth],
    no_active_since: datetime | None,
    now: Now,
) -> float:
    """How long the pair was without a serving holder, as far as the operator can tell."""
    if holder == "none":
        if no_active_since is None:
            return 0.0
        return max(0.0, (now.wall - no_active_since).total_seconds())
    if cause in (Cause.HEARTBEAT_LOST, Cause.SERVICE_STOPPED, Cause.AGENT_STOPPED):
        last_seen = health[holder].observation.last_seen
        if last_seen is not None and cause == Cause.HEARTBEAT_LOST:
            return round(now.monotonic - last_seen, 3)
    return 0.0


# -------------------------------------------------------------------------------- status


def _status(
    spec: FailoverPairSpec,
    observed: Observed,
    now: Now,
    health: dict[Member, MemberHealth],
    *,
    holder: ActiveMember,
    epoch: int,
    transitions: list[Transition],
    last_transition: Transition | None,
    last_request: RequestStatus | None,
    no_active_since: datetime | None,
    split_brain: bool,
) -> FailoverPairStatus:
    status = observed.status
    members = MemberStatuses(
        primary=_member_status(status.members.primary, health["primary"], status, now),
        secondary=_member_status(status.members.secondary, health["secondary"], status, now),
    )
    deadline, reason = licence_deadline(spec, status, observed.secondary)
    differing = settings_drift(observed.primary.report, observed.secondary.report)
    return status.model_copy(
        update={
            "active_member": holder,
            "epoch": epoch,
            "members": members,
            "transitions": transitions,
            "last_transition": last_transition,
            "last_request": last_request,
            "no_active_since": no_active_since,
            "licensing": LicensingStatus(secondary_deadline=deadline, reason=reason or None),
            "drift": DriftStatus(in_sync=not differing, differing_settings=differing),
            "observed_generation": observed.generation,
        }
    )


def _member_status(
    before: MemberStatus, member: MemberHealth, status: FailoverPairStatus, now: Now
) -> MemberStatus:
    seen = member.observation
    report = seen.report
    if seen.last_seen is None:
        return before.model_copy(update={"pod_name": seen.pod_name or before.pod_name})
    last_seen_wall = now.wall - timedelta(seconds=max(0.0, now.monotonic - seen.last_seen))
    inactive_seen = report.inactive_calls if member.failure is None else before.inactive_calls_seen
    return MemberStatus(
        pod_name=seen.pod_name or before.pod_name,
        last_heartbeat_seen=last_seen_wall.replace(microsecond=0),
        service_up=report.service_up and member.failure is None,
        cpu_percent=report.cpu_percent,
        cpu_excessive=report.cpu_excessive,
        calls_in_progress=report.calls_in_progress,
        answering=member.answering,
        started=report.started or before.started,
        primary_contact=(remembered_contact(status, seen) if member.name == "secondary" else None),
        inactive_calls_seen=inactive_seen,
        epoch=report.epoch,
    )


def _phase(
    spec: FailoverPairSpec,
    holder: ActiveMember,
    health: dict[Member, MemberHealth],
    held: bool,
    handing_over: bool,
    ready: bool = True,
) -> Phase:
    """The one-word summary. Healthy and FailedOver promise a pair that serves: never shown
    while Ready is False (a missing Service, a holder not yet answering): Degraded then, and
    the Ready condition says why."""
    if handing_over:
        return Phase.HANDING_OVER
    if spec.paused:
        return Phase.PAUSED
    if holder == "none":
        if all(h.observation.last_seen is None for h in health.values()):
            return Phase.PENDING
        return Phase.NO_ACTIVE
    if held:
        return Phase.HELD
    if not health[other(holder)].eligible or not health[holder].eligible:
        return Phase.DEGRADED
    if not ready:
        return Phase.DEGRADED
    return Phase.FAILED_OVER if holder == "secondary" else Phase.HEALTHY


def _checks(
    spec: FailoverPairSpec,
    observed: Observed,
    status: FailoverPairStatus,
    health: dict[Member, MemberHealth],
    held: bool,
    split_since: datetime | None,
    problems: dict[Member, str],
    now: Now,
) -> list[Check]:
    holder = status.active_member
    member = health[holder] if holder != "none" else None
    failure: str | None = None
    if member is not None and not member.eligible:
        failure = member.failure.value if member.failure else member.licence_reason
    readiness = ready(
        ReadyInputs(
            holder=holder,
            epoch=status.epoch,
            holder_failure=failure,
            holder_seen=member.observation if member else None,
            routing=observed.routing,
            service=observed.service,
            handoff_to=status.handoff.to if status.handoff else None,
        )
    )
    licensed = health["secondary"].licensed
    return [
        readiness,
        Check(
            "Active",
            holder != "none",
            "Holder" if holder != "none" else "NoHolder",
            f"active member: {holder}",
        ),
        Check(
            "SplitBrainSuspected",
            split_since is not None,
            "BothAnswering" if split_since is not None else "OneAnswering",
            "both members report answering calls"
            if split_since is not None
            else "at most one member answers",
        ),
        Check(
            "FlappingHeld",
            held,
            "TooManyTransitions" if held else "WithinBudget",
            f"{spec.flap_damping.max_transitions} role changes within "
            f"{spec.flap_damping.period_seconds}s: discretionary changes held"
            if held
            else "role changes within budget",
        ),
        Check(
            "LicensingOK",
            licensed,
            "Licensed" if licensed else "LicensingExpired",
            status.licensing.reason or "",
        ),
        Check(
            "InSync",
            status.drift.in_sync,
            "Same" if status.drift.in_sync else "Drift",
            "per-member settings match"
            if status.drift.in_sync
            else "per-member settings differ: " + ", ".join(status.drift.differing_settings),
        ),
        members_resolved(problems, missing_pods(observed, problems)),
        failsafe({m: observed.member(m).report for m in MEMBERS}),
        failback_outlook(
            spec, status, now, scheduled_failback_due(spec, status.last_transition, now)
        ),
    ]


VOLATILE_MEMBER_FIELDS = {"last_heartbeat_seen", "cpu_percent", "calls_in_progress"}


def _material(status: FailoverPairStatus) -> object:
    """The status less what moves with every renewal (compared with a tolerance apart)."""
    volatile = {
        "primary": VOLATILE_MEMBER_FIELDS,
        "secondary": {*VOLATILE_MEMBER_FIELDS, "primary_contact"},
    }
    return status.model_dump(exclude={"members": volatile, "licensing": {"secondary_deadline"}})
