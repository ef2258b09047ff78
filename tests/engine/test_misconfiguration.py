"""Misconfiguration speaks: a member whose pod does not exist or a selector that matches
nothing (MembersResolved=False naming it, one Warning), a missing Service (never Healthy while
Ready is False), a Scheduled pair held on the secondary (when it fails back, and why not yet).
Tables of pure decisions; the world's states come from tests/engine/test_truth.py's helpers."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from tests.engine.test_truth import MONO, NOW, T0, look, make_spec, routed, seen, status

from pairwarden.api.models import FailoverPairStatus, Transition
from pairwarden.engine import LeaseView, MemberObservation, Now, RoutingView, Warn
from pairwarden.engine.schedule import failback_outlook


def _condition(decision: object, kind: str) -> tuple[str, str, str]:
    found = {c.type: c for c in decision.status.conditions}[kind]  # type: ignore[attr-defined]
    return found.status, found.reason, found.message


GONE = replace(seen("secondary"), pod_running=False, pod_exists=False, last_seen=None)
STOPPED = replace(seen("secondary"), pod_running=False)
NO_MATCH = replace(seen("secondary"), pod_name=None, pod_running=False, last_seen=None)


@pytest.mark.parametrize(
    ("secondary", "reason", "named"),
    [
        pytest.param(GONE, "PodMissing", "pod vm-1 does not exist", id="absent"),
        pytest.param(STOPPED, "PodMissing", "pod vm-1 is not running", id="not-running"),
        pytest.param(
            NO_MATCH, "PodMissing", "secondary.selector matches no running pod", id="no-match"
        ),
        pytest.param(seen("secondary"), "OnePodEach", "each member names one running", id="ok"),
    ],
)
def test_members_resolved_names_a_missing_pod(
    secondary: MemberObservation, reason: str, named: str
) -> None:
    decision = look(
        LeaseView("vm-0", 1), status("primary", 1), seen("primary"), secondary, routed("primary")
    )
    state, got, message = _condition(decision, "MembersResolved")
    assert (state, got) == ("True" if reason == "OnePodEach" else "False", reason)
    assert named in message
    warned = [a for a in decision.actions if isinstance(a, Warn)]
    if reason == "OnePodEach":
        assert warned == []
    else:  # one Warning naming the pod, not one per look
        assert [(w.reason, named in w.message) for w in warned] == [(reason, True)]
        again = look(
            LeaseView("vm-0", 1), decision.status, seen("primary"), secondary, routed("primary")
        )
        assert not any(isinstance(a, Warn) for a in again.actions)


def test_a_pair_whose_pods_do_not_exist_says_so_for_both() -> None:
    primary = replace(GONE, pod_name="vm-0")
    decision = look(LeaseView("", 0), status("none", 0), primary, GONE, RoutingView(exists=False))
    state, reason, message = _condition(decision, "MembersResolved")
    assert (state, reason) == ("False", "PodMissing")
    assert "pod vm-0 does not exist" in message and "pod vm-1 does not exist" in message


@pytest.mark.parametrize(
    ("routing", "phase"),
    [
        pytest.param(RoutingView(exists=False), "Degraded", id="no-service"),
        pytest.param(routed("primary", ("vm-0", "vm-1")), "Degraded", id="several-pods"),
        pytest.param(routed("primary"), "Healthy", id="serving"),
    ],
)
def test_phase_is_never_healthy_while_ready_is_false(routing: RoutingView, phase: str) -> None:
    members = (seen("primary"), seen("secondary"))
    decision = look(LeaseView("vm-0", 1), status("primary", 1), *members, routing)
    assert decision.status.phase == phase
    if phase == "Healthy":
        assert _condition(decision, "Ready")[0] == "True"


# ------------------------------------------------------------- scheduled failback

WINDOW = {"type": "Scheduled", "window": {"start": "02:00", "end": "04:00", "timeZone": "UTC"}}


def _held_on_secondary(cause: str, at_hours: float) -> FailoverPairStatus:
    at = T0 + timedelta(hours=at_hours)
    move = Transition.model_validate(
        {"time": at, "from": "primary", "to": "secondary", "cause": cause, "epoch": 2}
    )
    return status("secondary", 2).model_copy(update={"last_transition": move})


@pytest.mark.parametrize(
    ("failback", "holder_status", "at_hours", "due", "reason", "says"),
    [
        pytest.param({}, status("secondary", 2), 0, False, "Manual", "on request", id="manual"),
        pytest.param(WINDOW, status("primary", 1), 0, False, "NotOnSecondary", "", id="primary"),
        # 12:00 UTC, window 02:00-04:00: closed; fails back at tomorrow's opening
        pytest.param(
            WINDOW, _held_on_secondary("HeartbeatLost", -1), 0, False, "WaitingForWindow",
            "opens, at 2026-01-06T02:00:00+00:00", id="closed",
        ),
        # 02:30, a manual failover at 02:10 inside the open window: kept to the next opening
        pytest.param(
            WINDOW, _held_on_secondary("ManualFailover", -9.83), -9.5, False,
            "ManualFailoverKept", "kept until the next opening, 2026-01-06T02:00:00+00:00",
            id="manual-inside-window",
        ),
        pytest.param(
            WINDOW, _held_on_secondary("HeartbeatLost", -11), -9.5, True, "WindowOpen",
            "is open", id="open",
        ),
    ],
)  # fmt: skip
def test_a_scheduled_pair_on_the_secondary_says_when_it_fails_back(
    failback: dict[str, object],
    holder_status: FailoverPairStatus,
    at_hours: float,
    due: bool,
    reason: str,
    says: str,
) -> None:
    spec = make_spec(failback=failback) if failback else make_spec()
    now = Now(MONO, T0 + timedelta(hours=at_hours))
    check = failback_outlook(spec, holder_status, now, due)
    assert check.reason == reason and says in check.message
    assert check.status == (reason not in ("Manual", "NotOnSecondary"))


def test_the_engine_carries_the_failback_outlook_and_it_is_stable_between_looks() -> None:
    spec = make_spec(failback=WINDOW)
    held = _held_on_secondary("ManualFailover", -1)
    args = (LeaseView("vm-1", 2), held, seen("primary", "secondary", 2))
    first = look(*args, seen("secondary", "secondary", 2), routed("secondary"), spec=spec)
    assert _condition(first, "FailbackScheduled")[1] == "WaitingForWindow"
    later = Now(MONO + 60, NOW.wall + timedelta(seconds=60))
    second = look(
        LeaseView("vm-1", 2), first.status, seen("primary", "secondary", 2, age=-59),
        seen("secondary", "secondary", 2, age=-59), routed("secondary"), spec=spec, now=later,
    )  # fmt: skip
    assert _condition(second, "FailbackScheduled") == _condition(first, "FailbackScheduled")


# ------------------------------------------------------------- a manual move's own calls


def test_a_call_refused_by_the_member_a_handoff_revoked_is_not_an_inactive_call() -> None:
    """During a manual move the Service still routes callers to the revoked primary until the
    grant: a call it refuses then is the move's gap (once a Warning InactiveCall on every
    manual move); the same call on a standby outside a move is still reported."""
    from tests.engine.test_truth import revoked

    from pairwarden.engine import ManualRequest

    first = revoked(ManualRequest("m-1", "failover"))
    assert first.status.handoff is not None and first.status.handoff.from_ == "primary"
    refused = seen("primary", "none", 2, inactive_calls=1)
    during = look(LeaseView("", 2), first.status, refused, seen("secondary", "none", 2))
    assert not [a for a in during.actions if isinstance(a, Warn) and a.reason == "InactiveCall"]
    assert during.status.members.primary.inactive_calls_seen == 1, "remembered: not reported later"
    steady = look(
        LeaseView("vm-0", 1),
        status("primary", 1),
        seen("primary"),
        seen("secondary", inactive_calls=1),
        routed("primary"),
    )
    assert [a.reason for a in steady.actions if isinstance(a, Warn)] == ["InactiveCall"]
