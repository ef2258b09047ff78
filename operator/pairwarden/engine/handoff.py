"""Carrying out a move: revoke first while the old holder may still answer, grant once it
has stopped (or its grant has run out), at one epoch more each time. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from pairwarden.api.models import (
    FailoverPairSpec,
    FailoverPairStatus,
    Handoff,
    Transition,
    wire_member,
)
from pairwarden.engine.health import MemberHealth, may_answer
from pairwarden.engine.truth import HISTORY_LIMIT, Truth
from pairwarden.engine.types import (
    Action,
    Activate,
    Cause,
    Deactivate,
    Now,
)
from pairwarden.protocol import (
    MEMBERS,
    Member,
    other,
)


def pending_handoff(handoff: Handoff | None, truth: Truth) -> Handoff | None:
    """A handoff still stands while the Lease is where the revoke left it: nobody named at
    the revoke's epoch. Any other Lease (a foreign write, a newer operator) ends it."""
    if handoff is None or truth.holder is not None or truth.epoch != handoff.epoch:
        return None
    return handoff


def continue_handoff(
    spec: FailoverPairSpec, handoff: Handoff, health: dict[Member, MemberHealth], now: Now
) -> tuple[tuple[Member | None, Cause] | None, Handoff | None]:
    """Grant the new holder once the old one stopped answering (its report says so) or its
    grant expired (W after the revoke: the agent fences itself within W - R/2 of its last
    confirmation of the Lease). Meanwhile, if the target can no longer serve, the old holder
    may have the role back at once: it is the only one that might be answering."""
    cause = Cause(handoff.cause)
    old, target = health[handoff.from_], health[handoff.to]
    released = not old.answering or handoff_expired(spec, handoff, now)
    if released and target.eligible:
        return (handoff.to, cause), handoff
    if not target.eligible and old.eligible:
        return (handoff.from_, cause), handoff
    if released:
        return None, None  # neither can take it now: the automatic rules decide next look
    return None, handoff


def handoff_expired(spec: FailoverPairSpec, handoff: Handoff, now: Now) -> bool:
    """The revoked holder's grant has run out: W after the revoke (its agent stops answering
    within W - R/2 of its last confirmation of the Lease, which came before the revoke)."""
    return (now.wall - handoff.since).total_seconds() >= spec.heartbeat.window_seconds


def outage_seconds(
    holder: Member | None,
    cause: Cause,
    health: dict[Member, MemberHealth],
    no_active_since: datetime | None,
    now: Now,
) -> float:
    """How long the pair was without a serving holder, as far as the operator can tell."""
    if holder is None:
        if no_active_since is None:
            return 0.0
        return max(0.0, (now.wall - no_active_since).total_seconds())
    if cause in (Cause.HEARTBEAT_LOST, Cause.SERVICE_STOPPED, Cause.AGENT_STOPPED):
        last_seen = health[holder].observation.last_seen
        if last_seen is not None and cause == Cause.HEARTBEAT_LOST:
            return round(now.monotonic - last_seen, 3)
    return 0.0


@dataclass(frozen=True)
class Move:
    """Where this call leaves the role: the holder the Lease will name (None while a revoke
    waits), its epoch, the handoff under way, the history, and the writes that get there."""

    holder: Member | None
    epoch: int
    handoff: Handoff | None
    transitions: list[Transition]
    last_transition: Transition | None
    no_active_since: datetime | None
    actions: tuple[Action, ...] = ()
    why: tuple[str, ...] = ()


def carry_out(
    spec: FailoverPairSpec,
    status: FailoverPairStatus,
    truth: Truth,
    health: dict[Member, MemberHealth],
    change: tuple[Member | None, Cause] | None,
    handoff: Handoff | None,
    now: Now,
) -> Move:
    """The chosen change as writes. While another member may still answer, revoke first
    (nobody named, one epoch more) and hand off; else grant the target (or nobody) at one
    epoch more and record the transition. No change: the role stays where the truth has it."""
    holder = truth.holder
    stay = Move(
        holder,
        truth.epoch,
        handoff,
        list(status.transitions),
        status.last_transition,
        status.no_active_since or (now.wall if holder is None else None),
    )
    if change is None or (change[0] == holder and truth.rewrite is None):
        return stay
    target, cause = change
    # A member whose grant expired during a handoff answers no more, whatever its last
    # (stale) report says.
    waived = handoff.from_ if handoff is not None and handoff_expired(spec, handoff, now) else None
    others = [m for m in MEMBERS if m not in (target, waived) and health[m].answering]
    revoke = target is not None and (
        bool(others)
        or (holder is not None and holder != target and may_answer(health[holder], cause))
    )
    epoch = truth.floor + 1
    if revoke and target is not None:
        old: Member = other(target)
        actions: list[Action] = []
        if holder is not None or truth.rewrite is not None:
            actions.append(Deactivate(epoch, cause, previous=holder, expected_epoch=truth.epoch))
        else:
            epoch = truth.epoch  # nobody is named: nothing to revoke, only to wait for
        return replace(
            stay,
            holder=None,
            epoch=epoch,
            handoff=Handoff(from_=old, to=target, cause=cause.value, epoch=epoch, since=now.wall),
            no_active_since=status.no_active_since or now.wall,
            actions=tuple(actions),
            why=(f"{cause.value}: revoked {old} at epoch {epoch}; {target} waits for it",),
        )
    previous = handoff.from_ if handoff is not None else holder
    write: Action = (
        Deactivate(epoch, cause, previous=previous, expected_epoch=truth.epoch)
        if target is None
        else Activate(target, epoch, cause, previous=previous, expected_epoch=truth.epoch)
    )
    since = (status.no_active_since or now.wall) if target is None else status.no_active_since
    no_active_since = since if target is None else None
    transitions, last = stay.transitions, stay.last_transition
    if target != holder or previous != target:
        last = Transition(
            time=now.wall,
            from_=wire_member(previous),
            to=wire_member(target),
            cause=cause.value,
            epoch=epoch,
            duration_seconds=outage_seconds(holder, cause, health, since, now),
        )
        transitions = [*transitions, last][-HISTORY_LIMIT:]
    return Move(
        holder=target,
        epoch=epoch,
        handoff=None,
        transitions=transitions,
        last_transition=last,
        no_active_since=no_active_since,
        actions=(write,),
        why=(f"{cause.value}: {previous} -> {target} at epoch {epoch}",),
    )
