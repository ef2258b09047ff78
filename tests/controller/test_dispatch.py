"""The order of the writes a decision makes: the controller and the simulator both follow it."""

from __future__ import annotations

from datetime import UTC, datetime

from pairwarden.api.models import FailoverPairStatus, Transition
from pairwarden.controller.dispatch import (
    LabelPods,
    RecordEvent,
    RoleMoved,
    RouteService,
    WriteActiveLease,
    writes,
)
from pairwarden.engine.types import (
    AckRequest,
    Activate,
    Cause,
    Deactivate,
    Decision,
    RecordMove,
    Warn,
)


def decision(*actions: object) -> Decision:
    return Decision(tuple(actions), FailoverPairStatus())  # type: ignore[arg-type]


def test_a_role_move_writes_the_lease_first_then_the_service_then_labels() -> None:
    moved = writes(decision(Activate("secondary", 4, Cause.HEARTBEAT_LOST, "primary")), 3)
    assert moved == (
        WriteActiveLease("secondary", 4, expected_epoch=3),
        RouteService("secondary"),
        RoleMoved(Cause.HEARTBEAT_LOST, "primary", "secondary", 4, "Warning"),
        LabelPods("secondary"),
    )
    assert moved[2].message == "primary -> secondary (epoch 4)"  # type: ignore[union-attr]


def test_each_further_move_starts_from_the_epoch_the_one_before_wrote() -> None:
    moved = writes(
        decision(
            Deactivate(5, Cause.LICENSING_EXPIRED, "secondary"),
            Activate("primary", 6, Cause.FIRST_TO_START, None),
        ),
        4,
    )
    leases = [w for w in moved if isinstance(w, WriteActiveLease)]
    assert leases == [WriteActiveLease(None, 5, 4), WriteActiveLease("primary", 6, 5)]
    assert RouteService(None) in moved
    events = [w.event for w in moved if isinstance(w, RoleMoved)]
    assert events == ["Warning", "Normal"]  # a fault warns; the first to start is routine


def test_warnings_and_request_outcomes_are_events_only() -> None:
    moved = writes(
        decision(
            Warn("InactiveCall", "a call reached the standby"),
            AckRequest("r1", "failover", "Refused", "secondary is not serving"),
            AckRequest("r2", "failback", "Accepted", "primary made active"),
        ),
        7,
    )
    assert moved == (
        RecordEvent("Warning", "InactiveCall", "a call reached the standby"),
        RecordEvent("Warning", "RequestRefused", "failover r1: secondary is not serving"),
        RecordEvent("Normal", "RequestAccepted", "failback r2: primary made active"),
    )


def moved_to_secondary(epoch: int) -> Transition:
    return Transition.model_validate(
        {"time": datetime(2026, 1, 5, tzinfo=UTC), "from": "primary", "to": "secondary",
         "cause": "HeartbeatLost", "epoch": epoch}
    )  # fmt: skip


def test_the_lease_write_carries_the_move_it_makes_and_a_revoke_carries_none() -> None:
    """The transition rides in the active Lease's own request: an operator stopped before
    its status write leaves it there for the next one (engine.missed_move)."""
    move = moved_to_secondary(4)
    status = FailoverPairStatus(last_transition=move)
    grant = writes(
        Decision((Activate("secondary", 4, Cause.HEARTBEAT_LOST, "primary"),), status), 3
    )
    assert grant[0] == WriteActiveLease("secondary", 4, 3, move)
    revoke = writes(Decision((Deactivate(5, Cause.EXCESSIVE_CPU, "secondary"),), status), 4)
    assert revoke[0] == WriteActiveLease(None, 5, 4, None)  # the record is cleared


def test_a_move_recorded_late_is_announced_like_the_move() -> None:
    (event,) = writes(decision(RecordMove(moved_to_secondary(4))), 4)
    assert isinstance(event, RecordEvent)
    assert (event.type, event.reason) == ("Warning", "HeartbeatLost")
    assert event.message.startswith("primary -> secondary (epoch 4)")
