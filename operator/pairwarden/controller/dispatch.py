"""The writes one engine decision turns into, in the order they must reach the API.

Pure, so the controller and the simulator apply the same sequence: the active Lease (the
fencing token) first, so no agent is routed calls before it is told it may answer; then the
Service selector (one atomic flip, the write a caller waits for, so the reaction is measured
right after it); then pod labels (for people). A write
that fails stops the sequence where it is, which is the half-done state a crash leaves too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pairwarden.api.models import Transition, member_from_wire, wire_member
from pairwarden.engine.types import (
    AckRequest,
    Activate,
    Cause,
    Deactivate,
    Decision,
    RecordMove,
    Route,
    Warn,
    is_routine,
)
from pairwarden.protocol import Member

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class WriteActiveLease:
    """Name `member` (None: nobody) holder of the active Lease at `epoch`, only from
    `expected_epoch` (leases.write_active)."""

    member: Member | None
    epoch: int
    expected_epoch: int
    # The transition this write makes, carried by the Lease itself (leases.write_active): the
    # status write comes later, and an operator stopped in between must not lose it.
    move: Transition | None = None


@dataclass(frozen=True)
class RouteService:
    """Point the callers' Service selector at `member` (None: at nobody)."""

    member: Member | None


@dataclass(frozen=True)
class LabelPods:
    """Label `active` the active role and the other member standby."""

    active: Member | None


@dataclass(frozen=True)
class RoleMoved:
    """The holder changed: count it and say so in an Event."""

    cause: Cause
    previous: Member | None
    to: Member | None
    epoch: int
    event: EventType

    @property
    def message(self) -> str:
        return f"{wire_member(self.previous)} -> {wire_member(self.to)} (epoch {self.epoch})"


@dataclass(frozen=True)
class RecordEvent:
    type: EventType
    reason: str
    message: str


Write = WriteActiveLease | RouteService | LabelPods | RoleMoved | RecordEvent


def writes(decision: Decision, expected_epoch: int) -> tuple[Write, ...]:
    """The decision's actions as ordered writes; `expected_epoch` is the active Lease's epoch
    the first role move starts from (the action's own, when the engine read the Lease; each
    further move starts from the one before). A Route repairs the Service and the labels
    without touching the Lease."""
    out: list[Write] = []
    for action in decision.actions:
        if isinstance(action, Activate | Deactivate):
            member = action.member if isinstance(action, Activate) else None
            event: EventType = "Normal" if is_routine(action.cause) else "Warning"
            if action.expected_epoch is not None:
                expected_epoch = action.expected_epoch
            out += [
                WriteActiveLease(member, action.epoch, expected_epoch, _move(decision, action)),
                RouteService(member),
                RoleMoved(action.cause, action.previous, member, action.epoch, event),
                LabelPods(member),
            ]
            expected_epoch = action.epoch
        elif isinstance(action, Route):
            out += [RouteService(action.member), LabelPods(action.member)]
        elif isinstance(action, Warn):
            out.append(RecordEvent("Warning", action.reason, action.message))
        elif isinstance(action, RecordMove):
            move = action.transition
            out.append(
                RecordEvent(
                    "Normal" if is_routine(Cause(move.cause)) else "Warning",
                    move.cause,
                    f"{move.from_} -> {move.to} (epoch {move.epoch}), recorded from the "
                    "active Lease after the operator stopped before its status write",
                )
            )
        elif isinstance(action, AckRequest):
            out.append(
                RecordEvent(
                    "Normal" if action.outcome != "Refused" else "Warning",
                    f"Request{action.outcome}",
                    f"{action.action} {action.id}: {action.message}",
                )
            )
    return tuple(out)


def _move(decision: Decision, action: Activate | Deactivate) -> Transition | None:
    """The transition `action` makes, if it makes one (a revoke or a Lease repair that keeps
    its holder records none)."""
    last = decision.status.last_transition
    to = action.member if isinstance(action, Activate) else None
    if last is None or (last.epoch, member_from_wire(last.to)) != (action.epoch, to):
        return None
    return last
