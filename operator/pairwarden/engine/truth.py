"""Who holds the role, read from the world: the active Lease is the truth, the pod it names
its holder; a move the status missed is recovered from the Lease's own record. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pairwarden.api.models import (
    FailoverPairStatus,
    Transition,
    member_from_wire,
)
from pairwarden.engine.types import (
    Cause,
    LeaseView,
    Observed,
    RecordMove,
)
from pairwarden.protocol import (
    MEMBERS,
    Member,
)

KNOWN_CAUSES = frozenset(c.value for c in Cause)
HISTORY_LIMIT = 32  # transitions kept in status; flap damping needs only those in the period


@dataclass(frozen=True)
class Truth:
    """Who is active and at which epoch, from the active Lease (or the status when no Lease
    was read). `floor` is the highest epoch anyone holds: the next write goes above it, since
    agents ignore an epoch lower than their own. `rewrite` says why the Lease itself must be
    written again even if its holder stays (it names a stranger, or an epoch agents ignore)."""

    holder: Member | None
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
        return Truth(
            member_from_wire(status.active_member), status.epoch, max(status.epoch, reported)
        )
    floor = max(lease.epoch, reported)
    if not lease.holder:
        holder: Member | None = None
    else:
        named = [m for m in MEMBERS if observed.member(m).pod_name == lease.holder]
        if not named and (gone := gone_holder(observed, lease)) is not None:
            named = [gone]
        if len(named) != 1:
            return Truth(None, lease.epoch, floor, f"it names {lease.holder}, no member's pod")
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
    if (move.epoch, member_from_wire(move.to)) != (truth.epoch, truth.holder):
        return None
    last = status.last_transition
    if last is not None and last.epoch >= move.epoch:
        return None
    return move


def record_missed(observed: Observed, truth: Truth) -> tuple[Observed, RecordMove | None]:
    """The observation with the move the status missed (`missed_move`) recorded in its
    status, and the action that announces it; unchanged, with None, when nothing was missed."""
    stored = observed.status
    missed = missed_move(stored, truth, observed.lease)
    if missed is None:
        return observed, None
    transitions = [*stored.transitions, missed][-HISTORY_LIMIT:]
    recorded = stored.model_copy(update={"last_transition": missed, "transitions": transitions})
    return replace(observed, status=recorded), RecordMove(missed)
