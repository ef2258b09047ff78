"""The pure failover engine: `decide(spec, observed, now) -> Decision`.

No I/O, no clock of its own, no kubernetes. Everything it must remember between calls lives
in the FailoverPair status it is handed and returns, so an operator restart rebuilds it.
The rules, in the order they are tried, are documented in docs/behaviour.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pairwarden.api.models import (
    ActiveMember,
    Condition,
    DriftStatus,
    FailbackType,
    FailoverPairSpec,
    FailoverPairStatus,
    LicensingStatus,
    MemberStatus,
    MemberStatuses,
    Phase,
    RequestStatus,
    Transition,
)
from pairwarden.engine.types import (
    AckRequest,
    Action,
    Activate,
    Cause,
    Deactivate,
    Decision,
    ManualRequest,
    MemberObservation,
    Now,
    Observed,
    UpdateStatus,
    Warn,
)
from pairwarden.protocol import MEMBERS, Member, MemberReport, other

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


def window_seconds(spec: FailoverPairSpec) -> float:
    return spec.heartbeat.window_seconds


def judge(
    spec: FailoverPairSpec,
    status: FailoverPairStatus,
    name: Member,
    seen: MemberObservation,
    now: Now,
) -> MemberHealth:
    """Whether a member can serve, and if not, the cause to name."""
    report = seen.report
    failure: Cause | None = None
    if not seen.pod_running:
        failure = Cause.POD_GONE
    elif not report.agent_running:
        failure = Cause.AGENT_STOPPED
    elif seen.last_seen is None or now.monotonic - seen.last_seen > window_seconds(spec):
        failure = Cause.HEARTBEAT_LOST
    elif not report.service_up:
        failure = Cause.SERVICE_STOPPED
    licensed, reason = True, ""
    if name == "secondary":
        deadline, reason = licence_deadline(spec, status, seen)
        licensed = deadline is None or now.wall < deadline
    return MemberHealth(name, failure, licensed, reason, seen)


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


def decide(spec: FailoverPairSpec, observed: Observed, now: Now) -> Decision:
    """One reconciliation: who should hold the active role now, and what to record."""
    status = observed.status
    health = {m: judge(spec, status, m, observed.member(m), now) for m in MEMBERS}
    holder = status.active_member
    held = is_held(spec, status, now)
    actions: list[Action] = []
    change: tuple[ActiveMember, Cause] | None = None
    last_request = status.last_request

    request = observed.request
    if request is not None and (last_request is None or last_request.id != request.id):
        change, ack = _manual(request, holder, health)
        actions.append(ack)
        last_request = RequestStatus(
            id=ack.id, action=ack.action, outcome=ack.outcome, message=ack.message, time=now.wall
        )

    new_calls = _new_inactive_calls(status, health, holder)
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
    if change is None and not spec.paused:
        if status.epoch == 0 and not _settled(spec, status, now):
            change = _new_pair(health)
        else:
            change = _automatic(
                spec, health, holder, held, new_calls, split_since, status.last_transition, now
            )

    epoch = status.epoch
    transitions = list(status.transitions)
    last_transition = status.last_transition
    no_active_since = status.no_active_since
    if change is not None and change[0] != holder:
        target, cause = change
        epoch += 1
        if target == "none":
            actions.append(Deactivate(epoch=epoch, cause=cause, previous=holder))
            no_active_since = now.wall
        else:
            actions.append(Activate(member=target, epoch=epoch, cause=cause, previous=holder))
        last_transition = Transition(
            time=now.wall,
            from_=holder,
            to=target,
            cause=cause.value,
            epoch=epoch,
            duration_seconds=_outage_seconds(holder, cause, health, no_active_since, now),
        )
        if target != "none":
            no_active_since = None
        transitions = [*transitions, last_transition][-HISTORY_LIMIT:]
        holder = target
    elif holder == "none" and no_active_since is None:
        no_active_since = now.wall

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
    )
    held_after = is_held(spec, new_status, now)
    new_status = new_status.model_copy(
        update={
            "phase": _phase(spec, holder, health, held_after),
            "conditions": _conditions(
                spec,
                status.conditions,
                new_status,
                health,
                held_after,
                split_since,
                now,
                observed.generation,
            ),
        }
    )
    drift = _drift_warning(status, new_status)
    if drift is not None:
        actions.append(drift)
    if _material(new_status) != _material(status):
        actions.append(UpdateStatus(new_status))
    return Decision(actions=tuple(actions), status=new_status)


# --------------------------------------------------------------------------------- rules


def _manual(
    request: ManualRequest, holder: ActiveMember, health: dict[Member, MemberHealth]
) -> tuple[tuple[ActiveMember, Cause] | None, AckRequest]:
    """Manual failover/failback: immediate, honoured even when paused or held."""
    targets: dict[str, tuple[Member, Cause]] = {
        "failover": ("secondary", Cause.MANUAL_FAILOVER),
        "failback": ("primary", Cause.MANUAL_FAILBACK),
    }
    if request.action not in targets:
        return None, AckRequest(
            request.id, request.action, "Refused", "unknown action: use failover or failback"
        )
    target, cause = targets[request.action]
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
        request.id, request.action, "Accepted", f"{target} made active"
    )


def _new_inactive_calls(
    status: FailoverPairStatus, health: dict[Member, MemberHealth], holder: ActiveMember
) -> list[Member]:
    """Members that are not the holder and whose inactive-call counter grew since last seen."""
    grew: list[Member] = []
    for name in MEMBERS:
        member = health[name]
        seen = getattr(status.members, name).inactive_calls_seen
        if (
            name != holder
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
    health: dict[Member, MemberHealth],
    holder: ActiveMember,
    held: bool,
    new_calls: list[Member],
    split_since: datetime | None,
    last_transition: Transition | None,
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

    # Both answer for longer than the fencing bound: the reference keeps the primary.
    if (
        split_since is not None
        and holder == "secondary"
        and standby.eligible
        and (now.wall - split_since).total_seconds() > window_seconds(spec)
    ):
        return "primary", Cause.PARTITION_HEALED

    # Discretionary changes: only to a healthy, calm standby, and not while held.
    if held or not standby.eligible or standby.cpu_excessive:
        return None
    if spec.excessive_cpu.enabled and active.cpu_excessive:
        return standby.name, Cause.EXCESSIVE_CPU
    if spec.force_failover_on_inactive_call and standby.name in new_calls:
        return standby.name, Cause.INACTIVE_CALL
    if holder == "secondary" and scheduled_failback_due(spec, last_transition, now):
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
    spec: FailoverPairSpec, holder: ActiveMember, health: dict[Member, MemberHealth], held: bool
) -> Phase:
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
    return Phase.FAILED_OVER if holder == "secondary" else Phase.HEALTHY


def _conditions(
    spec: FailoverPairSpec,
    previous: list[Condition],
    status: FailoverPairStatus,
    health: dict[Member, MemberHealth],
    held: bool,
    split_since: datetime | None,
    now: Now,
    generation: int | None,
) -> list[Condition]:
    holder = status.active_member
    serving = holder != "none" and health[holder].eligible
    licensed = health["secondary"].licensed
    wanted = [
        (
            "Ready",
            serving,
            "Serving" if serving else "NotServing",
            f"{holder} is active and serving" if serving else "no member is serving calls",
        ),
        (
            "Active",
            holder != "none",
            "Holder" if holder != "none" else "NoHolder",
            f"active member: {holder}",
        ),
        (
            "SplitBrainSuspected",
            split_since is not None,
            "BothAnswering" if split_since is not None else "OneAnswering",
            "both members report answering calls"
            if split_since is not None
            else "at most one member answers",
        ),
        (
            "FlappingHeld",
            held,
            "TooManyTransitions" if held else "WithinBudget",
            f"{spec.flap_damping.max_transitions} role changes within "
            f"{spec.flap_damping.period_seconds}s: discretionary changes held"
            if held
            else "role changes within budget",
        ),
        (
            "LicensingOK",
            licensed,
            "Licensed" if licensed else "LicensingExpired",
            status.licensing.reason or "",
        ),
        (
            "InSync",
            status.drift.in_sync,
            "Same" if status.drift.in_sync else "Drift",
            "per-member settings match"
            if status.drift.in_sync
            else "per-member settings differ: " + ", ".join(status.drift.differing_settings),
        ),
    ]
    result = {c.type: c for c in previous}
    for kind, truth, reason, message in wanted:
        text = "True" if truth else "False"
        before = result.get(kind)
        since = before.last_transition_time if before and before.status == text else now.wall
        if kind == "SplitBrainSuspected" and split_since is not None:
            since = split_since
        result[kind] = Condition(
            type=kind,
            status=text,
            reason=reason,
            message=message,
            last_transition_time=since,
            observed_generation=generation,
        )
    return list(result.values())


def _material(status: FailoverPairStatus) -> object:
    """What is worth a status write: heartbeat times and CPU samples alone are not."""
    dumped = status.model_dump(
        exclude={
            "members": {
                "primary": {"last_heartbeat_seen", "cpu_percent"},
                "secondary": {"last_heartbeat_seen", "cpu_percent"},
            }
        }
    )
    return dumped
