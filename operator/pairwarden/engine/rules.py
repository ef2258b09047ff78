"""Why the role should move: the reference's causes, tried in its order (a manual request,
an automatic failover, a scheduled failback, a new pair's first holder), and flap damping
(docs/behaviour.md). Each returns the wanted holder and its cause, or None. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pairwarden.api.models import (
    FailbackType,
    FailoverPairSpec,
    FailoverPairStatus,
    Handoff,
    RequestStatus,
    Transition,
    member_from_wire,
)
from pairwarden.engine.handoff import continue_handoff, pending_handoff
from pairwarden.engine.health import MemberHealth
from pairwarden.engine.truth import Truth
from pairwarden.engine.types import (
    AckRequest,
    Action,
    Cause,
    ManualRequest,
    Now,
    Observed,
    Warn,
)
from pairwarden.protocol import (
    MEMBERS,
    Member,
    other,
)


def is_held(spec: FailoverPairSpec, status: FailoverPairStatus, now: Now) -> bool:
    """Flap damping: maxTransitions role changes within periodSeconds hold discretionary ones."""
    since = now.wall - timedelta(seconds=spec.flap_damping.period_seconds)
    recent = sum(1 for t in status.transitions if t.time > since)
    return recent >= spec.flap_damping.max_transitions


def manual_change(
    request: ManualRequest,
    holder: Member | None,
    health: dict[Member, MemberHealth],
    handoff: Handoff | None,
) -> tuple[tuple[Member | None, Cause] | None, AckRequest]:
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


def new_inactive_calls(
    status: FailoverPairStatus,
    health: dict[Member, MemberHealth],
    holder: Member | None,
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


def settled(spec: FailoverPairSpec, status: FailoverPairStatus, now: Now) -> bool:
    """A new pair has waited one renewal period since the operator first looked at it."""
    since = status.no_active_since
    elapsed = (now.wall - since).total_seconds() if since is not None else 0.0
    return elapsed >= spec.heartbeat.renew_period_seconds


def silence_counts_from(
    status: FailoverPairStatus, holder: Member | None, window: float
) -> datetime | None:
    """When a holder's silence starts to count towards a NotAnswering failover. A holder
    granted the role is silent until its agent has heard the grant, ordered its voicemail
    process and reported back: it gets one window for that (as long as a member is given to
    show a heartbeat), so a slow node is not failed over the instant it is granted."""
    since = status.holder_silent_since
    last = status.last_transition
    if since is None or last is None or member_from_wire(last.to) != holder:
        return since
    return max(since, last.time + timedelta(seconds=window))


def first_holder(health: dict[Member, MemberHealth]) -> tuple[Member | None, Cause] | None:
    """A new pair's pods start together, so "first to start" would be a coin toss. The primary
    is active under normal circumstances: it wins if it can serve, and the secondary waits one
    renewal period for it to show up before taking the role itself."""
    if health["primary"].eligible:
        return "primary", Cause.FIRST_TO_START
    return None


def split_brain_since(
    status: FailoverPairStatus, health: dict[Member, MemberHealth], now: Now
) -> datetime | None:
    """When both members have been reporting that they answer, or None if not both now."""
    if not all(health[m].answering for m in MEMBERS):
        return None
    for condition in status.conditions:
        if condition.type == "SplitBrainSuspected" and condition.status == "True":
            return condition.last_transition_time
    return now.wall


def automatic_change(
    spec: FailoverPairSpec,
    status: FailoverPairStatus,
    health: dict[Member, MemberHealth],
    holder: Member | None,
    held: bool,
    new_calls: list[Member],
    split_since: datetime | None,
    now: Now,
) -> tuple[Member | None, Cause] | None:
    """The automatic rules, most urgent first. None means: keep the holder."""
    if holder is None:
        candidates = [health[m] for m in MEMBERS if health[m].eligible]
        if not candidates:
            return None
        first = min(candidates, key=_start_order)
        return first.name, Cause.FIRST_TO_START

    active, standby = health[holder], health[other(holder)]
    fallback = standby.name if standby.eligible else None

    if kept_in_silence(active, standby):
        return None
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


def kept_in_silence(active: MemberHealth, standby: MemberHealth) -> bool:
    """A holder unheard for a window, its pod running, and nobody who could take the role:
    the role stays where it is.

    A revoke then gains no caller anything, and the usual cause is not two deaths but the API
    server: down for everyone, or too busy to store renewals (1,000 pairs on a 2-core control
    plane left most Leases older than W), while the holder keeps answering on its peer's word
    (the failsafe) or fences itself as ever. Revoking moved every pair at once when the
    server recovered (`none`, then `FirstToStart` to whichever renewed first). Kept, the
    holder renewing again simply goes on; the standby once eligible (heard twice, serving)
    takes the role as from any lost holder (HeartbeatLost): the reference's "the first server
    started becomes active", in either order. A pod not running, crashed or deleted is no
    silence (PodGone, PodCrashed), nor is a holder reporting its own failure, and a secondary's
    licence that ran out demotes it whatever else: those revoke.

    Kept too, whoever else is eligible: a holder heard again after its silence (`returning`).
    The second renewal a member needs after a loss guards the grant of the role to one that
    may still be cut off (one late renewal); a holder keeps it. When the server came back,
    the standby's renewal and the relay of its hello in the holder's made it heard twice
    before the holder's second renewal, and the role moved away from a holder answering all
    along (the sandbox, 3 of 5 runs). A late renewal from a holder still cut off costs at
    most a window more: silent for W again, it is failed over as ever."""
    if active.failure != Cause.HEARTBEAT_LOST or not active.licensed:
        return False
    return active.returning or not standby.eligible


def _start_order(member: MemberHealth) -> tuple[bool, float, int]:
    """First started first; unknown start times last; the primary wins a tie."""
    started = member.observation.report.started
    return (started is None, started.timestamp() if started else 0.0, MEMBERS.index(member.name))


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


@dataclass(frozen=True)
class Choice:
    """What the rules want at this call: the holder and its cause (None: no change), the
    handoff still under way, the request answered, and what they announce on the way."""

    change: tuple[Member | None, Cause] | None
    handoff: Handoff | None
    last_request: RequestStatus | None
    split_since: datetime | None
    actions: tuple[Action, ...]
    why: tuple[str, ...]


def choose(
    spec: FailoverPairSpec,
    observed: Observed,
    truth: Truth,
    health: dict[Member, MemberHealth],
    now: Now,
) -> Choice:
    """The rules in the reference's order: a new manual request; a handoff under way goes on;
    else (unless paused) a new pair's first holder or an automatic cause; last, a Lease that
    must be rewritten keeps its holder if it may serve."""
    status = observed.status
    holder = truth.holder
    handoff = pending_handoff(status.handoff, truth)
    change: tuple[Member | None, Cause] | None = None
    last_request = status.last_request
    actions: list[Action] = []
    why: list[str] = []
    request = observed.request
    if request is not None and (last_request is None or last_request.id != request.id):
        change, ack = manual_change(request, holder, health, handoff)
        actions.append(ack)
        why.append(f"request {ack.id}: {ack.outcome}")
        last_request = RequestStatus(
            id=ack.id, action=ack.action, outcome=ack.outcome, message=ack.message, time=now.wall
        )
    revoked = handoff or status.handoff
    new_calls = new_inactive_calls(status, health, holder, revoked.from_ if revoked else None)
    actions.extend(_inactive_call_warning(spec, member) for member in new_calls)
    split_since = split_brain_since(status, health, now)
    if change is None and handoff is not None:
        change, handoff = continue_handoff(spec, handoff, health, now)
        if handoff is not None:
            why.append(
                f"waiting for {handoff.from_} to stop answering before granting {handoff.to}"
            )
    elif change is None and not spec.paused:
        if truth.epoch == 0 and not settled(spec, status, now):
            change = first_holder(health)
        else:
            held = is_held(spec, status, now)
            change = automatic_change(
                spec, status, health, holder, held, new_calls, split_since, now
            )
    if change is None and truth.rewrite is not None:
        keep = holder if holder is None or health[holder].eligible else None
        change = (keep, Cause.LEASE_REPAIRED)
    return Choice(change, handoff, last_request, split_since, tuple(actions), tuple(why))


def _inactive_call_warning(spec: FailoverPairSpec, member: Member) -> Warn:
    outcome = (
        "failing over to it"
        if spec.force_failover_on_inactive_call
        else "forceFailoverOnInactiveCall is off, so no failover"
    )
    return Warn(Cause.INACTIVE_CALL.value, f"a call arrived on the inactive {member}; {outcome}")
