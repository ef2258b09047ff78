"""The order of the writes a decision makes: the controller and the simulator both follow it."""

from __future__ import annotations

from pairwarden.api.models import FailoverPairStatus
from pairwarden.controller.dispatch import (
    LabelPods,
    RecordEvent,
    RoleMoved,
    RouteService,
    WriteActiveLease,
    writes,
)
from pairwarden.engine.types import AckRequest, Activate, Cause, Deactivate, Decision, Warn


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
            Activate("primary", 6, Cause.FIRST_TO_START, "none"),
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
