"""When a pair's reconciler must look again: a pure function of the decision and the clock.

The reconciler sleeps until the next moment something could be due, never on a fixed tick: a
member's window running out, the licence deadline, a handoff's grant expiring, a replication
Job, a new pair's settle time, the failback window opening. Reports that matter wake it early
(controller.observations).
`RESYNC_SECONDS` bounds every sleep: a drift nobody announces (a foreign write to the Service,
a pod's labels) is repaired within one resync period.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pairwarden.api.models import FailbackType, FailoverPairSpec, FailoverPairStatus
from pairwarden.engine.conditions import Check, find
from pairwarden.engine.types import Now

RESYNC_SECONDS = 30.0  # the longest a pair's reconciler sleeps with nothing due
REPLICATION_RETRY = 5.0  # the interval passed, but no Job started (no change, or no pod IP)
DEADLINE_MARGIN = 0.01  # look just after a deadline, so it has passed when judged
SHORTEST = 0.01


@dataclass(frozen=True)
class LookInputs:
    """What the next look depends on, besides members' heartbeats."""

    spec: FailoverPairSpec
    status: FailoverPairStatus  # as decided (and written) by this step
    now: Now
    replication_due_in: float | None  # None: no replication can start (running, paused, down)
    policy_due_in: float | None = None  # the NetworkPolicy's next try (controller/netpol.py)
    # The pair's own offset into the resync period (`resync_phase`); None: a full period.
    resync_phase: float | None = None


def resync_phase(namespace: str, pair: str) -> float:
    """The pair's own moment in every resync period, in [0, RESYNC_SECONDS): spread evenly
    over the period by its name, and the same in every process (a digest, not Python's
    salted hash, nor a CRC, which bunched the names p0000-p0999 within +-35 %). Pairs
    created or woken together (an operator start, a fault for everyone) otherwise resync
    together for good, every RESYNC_SECONDS in one burst of reads: at 1,000 pairs a few
    thousand requests within a second, every 30 s."""
    digest = hashlib.sha256(f"{namespace}/{pair}".encode()).digest()
    return RESYNC_SECONDS * int.from_bytes(digest[:8]) / 2**64


def resync_in(now: float, phase: float | None) -> float:
    """Seconds until the pair's next resync: its next moment `phase` (mod RESYNC_SECONDS) on
    the monotonic clock, in (0, RESYNC_SECONDS]; a full period when it has none. A step
    woken off its moment (a report, a deadline) resyncs at the next one, sooner than a full
    period from then: never later, so a drift is still repaired within one period."""
    if phase is None:
        return RESYNC_SECONDS
    return RESYNC_SECONDS - (now - phase) % RESYNC_SECONDS


def timers(inputs: LookInputs) -> float:
    """Seconds until the earliest due time that does not move with heartbeats."""
    spec, status, now = inputs.spec, inputs.status, inputs.now
    window = spec.heartbeat.window_seconds
    renew = spec.heartbeat.renew_period_seconds
    waits = [resync_in(now.monotonic, inputs.resync_phase)]
    deadline = status.licensing.secondary_deadline
    if deadline is not None and status.active_member == "secondary":
        waits.append(_seconds_until(deadline, now) + DEADLINE_MARGIN)
    split = find(status, "SplitBrainSuspected")
    if status.epoch == 0 or (split is not None and split.status == "True"):
        waits.append(renew)
    if status.handoff is not None:
        expiry = _seconds_until(status.handoff.since, now) + window
        waits.append(min(renew, expiry + DEADLINE_MARGIN))
    if status.holder_silent_since is not None:
        waits.append(_seconds_until(status.holder_silent_since, now) + window + DEADLINE_MARGIN)
    if inputs.replication_due_in is not None:
        due_in = inputs.replication_due_in
        # Due with unchanged data, or due yet not started: look again later, not in a loop.
        waits.append(due_in if due_in > 0 else REPLICATION_RETRY)
    if inputs.policy_due_in is not None:
        waits.append(inputs.policy_due_in)
    opens_in = failback_window_opens_in(spec, status, now)
    if opens_in is not None:
        waits.append(opens_in + DEADLINE_MARGIN)
    return max(SHORTEST, min(waits))


def failback_window_opens_in(
    spec: FailoverPairSpec, status: FailoverPairStatus, now: Now
) -> float | None:
    """Seconds until the failback window next opens, while the secondary holds a Scheduled
    pair: failback is due "when the time scheduled arrives", so the opening is a timer, not
    something a quiet pair notices at its next resync (up to RESYNC_SECONDS late)."""
    window = spec.failback.window
    if spec.failback.type != FailbackType.SCHEDULED or window is None:
        return None
    if status.active_member != "secondary":
        return None
    return _seconds_until(window.next_opening(now.wall), now)


def failback_outlook(
    spec: FailoverPairSpec, status: FailoverPairStatus, now: Now, due: bool
) -> Check:
    """The FailbackScheduled condition: while the secondary holds a Scheduled pair, when it
    will fail back and why not yet (True); False otherwise. `due`: the engine's rule
    (core.scheduled_failback_due) says now. Times are absolute, so the message stays the same
    from one step to the next (no status write per step)."""
    window = spec.failback.window
    if spec.failback.type != FailbackType.SCHEDULED or window is None:
        return Check("FailbackScheduled", False, "Manual", "failback only on request")
    if status.active_member != "secondary":
        return Check("FailbackScheduled", False, "NotOnSecondary", "the secondary is not active")
    span = f"{window.start}-{window.end} {window.time_zone}"
    if due:
        return Check(
            "FailbackScheduled",
            True,
            "WindowOpen",
            f"window {span} is open: fails back once the primary can serve (eligible, calm,"
            " role changes not held)",
        )
    opening = window.next_opening(now.wall).isoformat()
    last = status.last_transition
    if window.contains(now.wall) and last is not None:
        return Check(
            "FailbackScheduled",
            True,
            "ManualFailoverKept",
            f"the manual failover at {last.time.isoformat()} was made inside the window {span}"
            f" opened at {window.opened_at(now.wall).isoformat()}: it is kept until the next"
            f" opening, {opening} (`kubectl pairwarden failback` moves the role back now)",
        )
    return Check(
        "FailbackScheduled",
        True,
        "WaitingForWindow",
        f"fails back to the primary when the window {span} opens, at {opening}",
    )


def unjudged(last_seen: Iterable[float], window: float, checked_at: float) -> list[float]:
    """Members' loss deadlines that fall after the last step: those already past were judged
    then (a dead member must not keep its pair's reconciler spinning)."""
    deadlines = (seen + window + DEADLINE_MARGIN for seen in last_seen)
    return [d for d in deadlines if d > checked_at]


def next_look(inputs: LookInputs, last_seen: Iterable[float]) -> float:
    """Seconds to sleep after a step: the earliest timer or member loss deadline."""
    window = inputs.spec.heartbeat.window_seconds
    mono = inputs.now.monotonic
    pending = unjudged(last_seen, window, mono)
    return max(SHORTEST, min([timers(inputs), *(d - mono for d in pending)]))


def still_quiet(
    timers_at: float | None,
    window: float | None,
    last_seen: Iterable[float],
    checked_at: float,
    now: float,
) -> float | None:
    """After a timed wake-up with no report in between: seconds until the next thing could be
    due, or None when something is (then run the step). A member that renewed meanwhile has
    moved its own deadline, so most wake-ups cost a few comparisons, not a reconciliation."""
    if window is None or timers_at is None:
        return None
    soonest = min([timers_at, *unjudged(last_seen, window, checked_at)])
    return soonest - now if soonest > now else None


def _seconds_until(instant: datetime, now: Now) -> float:
    return (instant - now.wall).total_seconds()
