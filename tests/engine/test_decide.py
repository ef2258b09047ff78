"""The engine alone: one `decide` call per situation, no simulator, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pairwarden.api import FailoverPairStatus, parse_spec
from pairwarden.api.models import FailoverPairSpec, Transition
from pairwarden.engine import (
    AckRequest,
    Activate,
    Cause,
    Deactivate,
    Decision,
    ManualRequest,
    MemberObservation,
    Now,
    Observed,
    Warn,
    decide,
    status_patch,
)
from pairwarden.protocol import MemberReport

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MONO = 5000.0
NOW = Now(MONO, T0)


def make_spec(**extra: Any) -> FailoverPairSpec:
    return parse_spec(
        {
            "members": {"primary": {"podName": "vm-0"}, "secondary": {"podName": "vm-1"}},
            "service": "voicemail",
            **extra,
        }
    )


def member(age: float = 1.0, **report: Any) -> MemberObservation:
    """A member whose last renewal was observed `age` seconds ago."""
    fields: dict[str, Any] = {"service_up": True, "started": T0 - timedelta(hours=1)}
    fields.update(report)
    return MemberObservation(
        pod_name="vm-x", pod_running=True, last_seen=MONO - age, report=MemberReport(**fields)
    )


def contacted(**report: Any) -> MemberObservation:
    return member(primary_contact=T0 - timedelta(minutes=1), **report)


def holding(holder: str, epoch: int = 1, **update: Any) -> FailoverPairStatus:
    return FailoverPairStatus.model_validate({"activeMember": holder, "epoch": epoch, **update})


def run(
    spec: FailoverPairSpec,
    status: FailoverPairStatus,
    primary: MemberObservation,
    secondary: MemberObservation,
    request: ManualRequest | None = None,
    now: Now = NOW,
) -> Decision:
    primary, secondary = own_pod(primary, "vm-0"), own_pod(secondary, "vm-1")
    return decide(spec, Observed(status, primary, secondary, request, generation=1), now)


def own_pod(seen: MemberObservation, pod: str) -> MemberObservation:
    """Each member its own pod (two members naming one pod is an error the engine reports)."""
    return replace(seen, pod_name=pod) if seen.pod_name == "vm-x" else seen


def role(decision: Decision) -> Activate | Deactivate | None:
    return decision.role_change


def handed_over(
    spec: FailoverPairSpec,
    status: FailoverPairStatus,
    primary: MemberObservation,
    secondary: MemberObservation,
    request: ManualRequest | None = None,
    now: Now = NOW,
) -> tuple[Activate | Deactivate | None, Activate | Deactivate | None]:
    """A move away from a holder that can serve: the revoke, then (the old holder reporting
    it no longer answers, as these fixtures do) the grant on the next look."""
    first = run(spec, status, primary, secondary, request, now)
    second = run(spec, first.status, primary, secondary, request, now)
    return role(first), role(second)


def test_steady_state_changes_nothing() -> None:
    answering = member(answering=True, epoch=1)
    decision = run(make_spec(), holding("primary"), answering, contacted())
    assert role(decision) is None
    assert decision.status.phase == "Healthy"
    assert decision.status.epoch == 1


def test_first_to_start_becomes_active_when_neither_runs() -> None:
    early = member(started=T0 - timedelta(minutes=5))
    late = contacted(started=T0 - timedelta(minutes=1))
    both_down = holding("none", epoch=4)
    decision = run(make_spec(), both_down, late, early)
    assert role(decision) == Activate("secondary", 5, Cause.FIRST_TO_START, None)
    decision = run(make_spec(), both_down, early, late)
    assert role(decision) == Activate("primary", 5, Cause.FIRST_TO_START, None)


def test_a_new_pair_starts_on_the_primary_and_epoch_counts_from_one() -> None:
    early = member(started=T0 - timedelta(minutes=5))
    late = contacted(started=T0 - timedelta(minutes=1))
    decision = run(make_spec(), FailoverPairStatus(), late, early)
    assert role(decision) == Activate("primary", 1, Cause.FIRST_TO_START, None)


def test_a_new_pair_waits_one_renewal_period_for_its_primary() -> None:
    absent = MemberObservation(pod_name=None, pod_running=False)
    first = run(make_spec(), FailoverPairStatus(), absent, contacted())
    assert role(first) is None
    assert first.status.no_active_since == T0
    renew = make_spec().heartbeat.renew_period_seconds
    soon = Now(MONO + renew - 1, T0 + timedelta(seconds=renew - 1))
    assert role(run(make_spec(), first.status, absent, contacted(), now=soon)) is None
    later = Now(MONO + renew, T0 + timedelta(seconds=renew))
    decision = run(make_spec(), first.status, absent, contacted(), now=later)
    assert role(decision) == Activate("secondary", 1, Cause.FIRST_TO_START, None)


def test_first_to_start_tie_goes_to_the_primary() -> None:
    decision = run(make_spec(), FailoverPairStatus(), member(), contacted())
    assert role(decision) == Activate("primary", 1, Cause.FIRST_TO_START, None)


@pytest.mark.parametrize(
    ("primary", "cause"),
    [
        (member(age=30.01), Cause.HEARTBEAT_LOST),
        (member(service_up=False), Cause.SERVICE_STOPPED),
        (member(agent_running=False), Cause.AGENT_STOPPED),
        (replace(member(), pod_running=False), Cause.POD_GONE),
    ],
)
def test_active_primary_that_cannot_serve_fails_over(
    primary: MemberObservation, cause: Cause
) -> None:
    decision = run(make_spec(), holding("primary", 4), primary, contacted())
    assert role(decision) == Activate("secondary", 5, cause, "primary")
    assert decision.status.last_transition is not None
    assert decision.status.last_transition.cause == cause.value
    assert decision.status.phase == "Degraded"  # the secondary serves; the primary cannot


def test_heartbeat_window_is_exclusive_at_w() -> None:
    decision = run(make_spec(), holding("primary"), member(age=30.0), contacted())
    assert role(decision) is None


def test_active_secondary_that_fails_fails_back_at_once() -> None:
    decision = run(make_spec(), holding("secondary", 2), member(), contacted(service_up=False))
    assert role(decision) == Activate("primary", 3, Cause.SERVICE_STOPPED, "secondary")


def test_both_members_silent_with_their_pods_running_keeps_the_holder() -> None:
    """The API server down for everyone, or too busy to store renewals: nobody else could
    take the role, so it stays (engine.rules.both_silent); a revoke moved every pair at once
    when the server came back."""
    decision = run(make_spec(), holding("primary"), member(age=45), contacted(age=40))
    assert role(decision) is None
    assert decision.status.active_member == "primary"
    ready = {c.type: c for c in decision.status.conditions}["Ready"]
    assert (ready.status, ready.reason) == ("False", "HolderCannotServe")
    assert "cannot take the role" in ready.message


@pytest.mark.parametrize(
    ("holder_now", "standby_now", "wanted"),
    [
        # The holder renews again: it simply goes on.
        (member(age=1), contacted(age=40), None),
        # The standby is heard first (twice): it takes the role as from any lost holder.
        (
            member(age=45),
            contacted(age=1),
            Activate("secondary", 2, Cause.HEARTBEAT_LOST, "primary"),
        ),
        # The standby back once only (rejoining): not yet heard twice, still held.
        (member(age=45), replace(contacted(age=1), rejoining=True), None),
    ],
    ids=["holder-back", "standby-back", "standby-back-once"],
)
def test_after_both_silent_the_first_heard_takes_or_keeps_the_role(
    holder_now: MemberObservation, standby_now: MemberObservation, wanted: Activate | None
) -> None:
    decision = run(make_spec(), holding("primary"), holder_now, standby_now)
    assert role(decision) == wanted


@pytest.mark.parametrize(
    "dead",
    [
        {"pod_running": False},  # the pod gone or not running (PodGone)
        {
            "container_deaths": (MONO - 10,)
        },  # every container dead after its last renewal (PodCrashed)
    ],
    ids=["pod-gone", "pod-crashed"],
)
def test_a_silent_holder_whose_pod_died_is_revoked_even_with_the_standby_silent(
    dead: dict[str, Any],
) -> None:
    holder = replace(member(age=45), **dead)
    decision = run(make_spec(), holding("primary"), holder, contacted(age=40))
    assert role(decision) is not None and role(decision).epoch == 2  # type: ignore[union-attr]
    assert decision.status.active_member == "none"


def test_a_silent_holder_with_nobody_to_take_over_keeps_the_role() -> None:
    decision = run(make_spec(), holding("primary"), member(age=31), contacted(service_up=False))
    assert role(decision) is None
    assert decision.status.active_member == "primary"
    ready = {c.type: c for c in decision.status.conditions}["Ready"]
    assert ready.status == "False"
    assert "secondary cannot take the role (ServiceStopped)" in ready.message


def test_a_holder_that_reports_its_own_failure_with_nobody_to_take_over_is_revoked() -> None:
    decision = run(make_spec(), holding("primary"), member(service_up=False), contacted(age=31))
    assert role(decision) == Deactivate(2, Cause.SERVICE_STOPPED, "primary")
    assert decision.status.phase == "NoActive"


def test_a_silent_secondary_whose_licence_ran_out_is_revoked_with_the_primary_silent() -> None:
    expired = member(age=31, primary_contact=T0 - timedelta(days=60))
    decision = run(make_spec(), holding("secondary", 2), member(age=45), expired)
    assert isinstance(role(decision), Deactivate)
    assert decision.status.active_member == "none"


def test_never_activates_a_member_whose_service_is_down() -> None:
    both_down = holding("none", epoch=2)
    decision = run(make_spec(), both_down, member(service_up=False), contacted())
    assert role(decision) == Activate("secondary", 3, Cause.FIRST_TO_START, None)
    decision = run(make_spec(), both_down, member(service_up=False), member(service_up=False))
    assert role(decision) is None


# --------------------------------------------------------------------------- manual


def test_manual_failover_is_immediate_and_acknowledged_once() -> None:
    request = ManualRequest("r-1", "failover")
    decision = run(make_spec(), holding("primary"), member(), contacted(), request)
    assert role(decision) == Deactivate(2, Cause.MANUAL_FAILOVER, "primary")
    accepted = AckRequest("r-1", "failover", "Accepted", "secondary is being made active")
    assert accepted in decision.actions
    again = run(make_spec(), decision.status, member(), contacted(), request)
    assert role(again) == Activate("secondary", 3, Cause.MANUAL_FAILOVER, "primary")
    assert not any(isinstance(a, AckRequest) for a in again.actions)
    third = run(make_spec(), again.status, member(), contacted(), request)
    assert role(third) is None


def test_manual_failback_is_immediate() -> None:
    request = ManualRequest("r-2", "failback")
    moves = handed_over(make_spec(), holding("secondary"), member(), contacted(), request)
    assert moves == (
        Deactivate(2, Cause.MANUAL_FAILBACK, "secondary"),
        Activate("primary", 3, Cause.MANUAL_FAILBACK, "secondary"),
    )


@pytest.mark.parametrize(
    ("secondary", "why"),
    [
        (contacted(service_up=False), "ServiceStopped"),
        (contacted(age=40), "HeartbeatLost"),
        (member(primary_contact=T0 - timedelta(days=61)), "licensing ran out"),
    ],
)
def test_manual_request_to_an_unfit_target_is_refused_with_a_reason(
    secondary: MemberObservation, why: str
) -> None:
    request = ManualRequest("r-3", "failover")
    decision = run(make_spec(), holding("primary"), member(), secondary, request)
    assert role(decision) is None
    (ack,) = [a for a in decision.actions if isinstance(a, AckRequest)]
    assert ack.outcome == "Refused" and why in ack.message
    assert decision.status.last_request is not None
    assert decision.status.last_request.outcome == "Refused"


def test_manual_request_for_the_current_holder_is_already_active() -> None:
    request = ManualRequest("r-4", "failback")
    decision = run(make_spec(), holding("primary"), member(), contacted(), request)
    (ack,) = [a for a in decision.actions if isinstance(a, AckRequest)]
    assert ack.outcome == "AlreadyActive" and role(decision) is None


def test_unknown_manual_action_is_refused() -> None:
    request = ManualRequest("r-5", "explode")
    decision = run(make_spec(), holding("primary"), member(), contacted(), request)
    (ack,) = [a for a in decision.actions if isinstance(a, AckRequest)]
    assert ack.outcome == "Refused"


# --------------------------------------------------------------------------- paused


def test_paused_pair_takes_no_automatic_action_but_honours_requests() -> None:
    spec = make_spec(paused=True)
    decision = run(spec, holding("primary"), member(service_up=False), contacted())
    assert role(decision) is None and decision.status.phase == "Paused"
    request = ManualRequest("r-6", "failover")
    moves = handed_over(spec, holding("primary"), member(service_up=False), contacted(), request)
    assert moves == (
        Deactivate(2, Cause.MANUAL_FAILOVER, "primary"),
        Activate("secondary", 3, Cause.MANUAL_FAILOVER, "primary"),
    )


# --------------------------------------------------------------------- inactive calls


def test_inactive_call_without_force_only_warns_once() -> None:
    decision = run(make_spec(), holding("primary"), member(), contacted(inactive_calls=1))
    assert role(decision) is None
    assert [a.reason for a in decision.actions if isinstance(a, Warn)] == ["InactiveCall"]
    again = run(make_spec(), decision.status, member(), contacted(inactive_calls=1))
    assert not any(isinstance(a, Warn) for a in again.actions)


def test_inactive_call_with_force_fails_over_either_way() -> None:
    spec = make_spec(forceFailoverOnInactiveCall=True)
    moves = handed_over(spec, holding("primary"), member(), contacted(inactive_calls=1))
    assert moves == (
        Deactivate(2, Cause.INACTIVE_CALL, "primary"),
        Activate("secondary", 3, Cause.INACTIVE_CALL, "primary"),
    )
    moves = handed_over(spec, holding("secondary"), member(inactive_calls=3), contacted())
    assert moves == (
        Deactivate(2, Cause.INACTIVE_CALL, "secondary"),
        Activate("primary", 3, Cause.INACTIVE_CALL, "secondary"),
    )


# ----------------------------------------------------------------------- excessive cpu


def test_excessive_cpu_on_the_active_fails_over_to_a_calm_standby() -> None:
    moves = handed_over(make_spec(), holding("primary"), member(cpu_excessive=True), contacted())
    assert moves == (
        Deactivate(2, Cause.EXCESSIVE_CPU, "primary"),
        Activate("secondary", 3, Cause.EXCESSIVE_CPU, "primary"),
    )
    both = run(
        make_spec(), holding("primary"), member(cpu_excessive=True), contacted(cpu_excessive=True)
    )
    assert role(both) is None
    off = make_spec(excessiveCpu={"enabled": False})
    assert role(run(off, holding("primary"), member(cpu_excessive=True), contacted())) is None


def history(count: int, minutes_apart: float = 5) -> list[dict[str, Any]]:
    return [
        Transition(
            time=T0 - timedelta(minutes=minutes_apart * (i + 1)),
            from_="primary",
            to="secondary",
            cause="ExcessiveCpu",
        ).model_dump(mode="json", by_alias=True)
        for i in range(count)
    ]


def test_flapping_holds_discretionary_changes_and_raises_a_condition() -> None:
    status = holding("primary", transitions=history(4))
    decision = run(make_spec(), status, member(cpu_excessive=True), contacted())
    assert role(decision) is None
    assert decision.status.phase == "Held"
    held = {c.type: c for c in decision.status.conditions}["FlappingHeld"]
    assert held.status == "True"


def test_flapping_never_holds_failover_away_from_a_dead_member() -> None:
    status = holding("primary", transitions=history(4))
    decision = run(make_spec(), status, member(age=31), contacted())
    assert role(decision) == Activate("secondary", 2, Cause.HEARTBEAT_LOST, "primary")


def test_hold_lifts_when_transitions_leave_the_period() -> None:
    status = holding("primary", transitions=history(4, minutes_apart=20))  # 2 within the hour
    _, grant = handed_over(make_spec(), status, member(cpu_excessive=True), contacted())
    assert grant == Activate("secondary", 3, Cause.EXCESSIVE_CPU, "primary")


# ------------------------------------------------------------------- scheduled failback


def scheduled(start: str, end: str, zone: str = "UTC") -> FailoverPairSpec:
    return make_spec(
        failback={"type": "Scheduled", "window": {"start": start, "end": end, "timeZone": zone}}
    )


def test_scheduled_failback_only_inside_the_window_and_to_a_healthy_primary() -> None:
    spec = scheduled("12:00", "12:30")
    inside = handed_over(spec, holding("secondary"), member(), contacted())
    assert inside == (
        Deactivate(2, Cause.SCHEDULED_FAILBACK, "secondary"),
        Activate("primary", 3, Cause.SCHEDULED_FAILBACK, "secondary"),
    )
    outside = Now(MONO, T0 + timedelta(minutes=30))
    assert role(run(spec, holding("secondary"), member(), contacted(), now=outside)) is None
    sick = run(spec, holding("secondary"), member(service_up=False), contacted())
    assert role(sick) is None


def test_manual_failback_type_never_fails_back_by_itself() -> None:
    assert role(run(make_spec(), holding("secondary"), member(), contacted())) is None


def test_scheduled_failback_window_in_the_pairs_time_zone() -> None:
    spec = scheduled("07:00", "08:00", "Asia/Tokyo")  # 22:00-23:00 UTC
    at_noon_utc = run(spec, holding("secondary"), member(), contacted())
    assert role(at_noon_utc) is None
    tokyo_morning = Now(MONO, datetime(2026, 1, 5, 22, 30, tzinfo=UTC))
    _, grant = handed_over(spec, holding("secondary"), member(), contacted(), now=tokyo_morning)
    assert grant == Activate("primary", 3, Cause.SCHEDULED_FAILBACK, "secondary")


def manual_failover_at(when: datetime) -> FailoverPairStatus:
    last = Transition.model_validate(
        {"time": when, "from": "primary", "to": "secondary", "cause": "ManualFailover", "epoch": 1}
    )
    return holding("secondary", lastTransition=last.model_dump(by_alias=True))


@pytest.mark.parametrize(
    ("window", "failed_over", "now", "fails_back"),
    [
        # A manual failover inside the open window is kept for the rest of that window ...
        (
            ("12:00", "12:30"),
            T0 + timedelta(minutes=5),
            T0 + timedelta(minutes=5, seconds=1),
            False,
        ),
        (("12:00", "12:30"), T0 + timedelta(minutes=5), T0 + timedelta(minutes=29), False),
        (("12:00", "12:30"), T0, T0 + timedelta(minutes=1), False),  # at the opening instant
        # ... and failed back when the window next opens.
        (("12:00", "12:30"), T0 + timedelta(minutes=5), T0 + timedelta(days=1), True),
        # A manual failover before the window opened is failed back when it opens.
        (("12:00", "12:30"), T0 - timedelta(hours=3), T0, True),
        (("12:00", "12:30"), T0 - timedelta(seconds=1), T0 + timedelta(minutes=10), True),
        # A window across midnight: opened yesterday at 23:00 local.
        (("23:00", "13:00"), T0 - timedelta(hours=2), T0, False),
        (("23:00", "13:00"), T0 - timedelta(hours=14), T0, True),
    ],
)
def test_a_manual_failover_inside_the_window_is_kept_until_the_next_opening(
    window: tuple[str, str], failed_over: datetime, now: datetime, fails_back: bool
) -> None:
    spec = scheduled(*window)
    decision = run(spec, manual_failover_at(failed_over), member(), contacted(), now=Now(MONO, now))
    # A failback starts by revoking the secondary (the primary is granted once it stopped).
    expected = Deactivate(2, Cause.SCHEDULED_FAILBACK, "secondary") if fails_back else None
    assert role(decision) == expected


@pytest.mark.parametrize("cause", ["HeartbeatLost", "ServiceStopped", "ExcessiveCpu"])
def test_after_an_automatic_failover_inside_the_window_it_fails_back_at_once(cause: str) -> None:
    took_over = T0 + timedelta(minutes=1)
    last = {"time": took_over, "from": "primary", "to": "secondary", "cause": cause, "epoch": 1}
    status = holding("secondary", lastTransition=last)
    now = Now(MONO, T0 + timedelta(minutes=2))
    moves = handed_over(scheduled("12:00", "12:30"), status, member(), contacted(), now=now)
    assert moves == (
        Deactivate(2, Cause.SCHEDULED_FAILBACK, "secondary"),
        Activate("primary", 3, Cause.SCHEDULED_FAILBACK, "secondary"),
    )


def test_opened_at_is_the_latest_opening_in_the_pairs_zone() -> None:
    window = scheduled("07:00", "08:00", "Asia/Tokyo").failback.window
    assert window is not None
    at = datetime(2026, 1, 5, 22, 30, tzinfo=UTC)  # 07:30 on the 6th in Tokyo
    assert window.opened_at(at) == datetime(2026, 1, 5, 22, 0, tzinfo=UTC)
    assert window.opened_at(at - timedelta(hours=1)) == datetime(2026, 1, 4, 22, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------- licensing


def test_secondary_never_in_contact_expires_four_hours_after_start() -> None:
    young = member(started=T0 - timedelta(hours=3, minutes=59))
    old = member(started=T0 - timedelta(hours=4))
    assert role(run(make_spec(), holding("primary"), member(age=31), young)) == Activate(
        "secondary", 2, Cause.HEARTBEAT_LOST, "primary"
    )
    decision = run(make_spec(), holding("primary"), member(age=31), old)
    assert role(decision) is None  # the silent primary keeps it: nobody else may (kept_in_silence)
    licensing = {c.type: c for c in decision.status.conditions}["LicensingOK"]
    assert licensing.status == "False"


def test_secondary_sixty_days_after_last_contact_is_demoted() -> None:
    stale = member(primary_contact=T0 - timedelta(days=60))
    decision = run(make_spec(), holding("secondary"), member(), stale)
    assert role(decision) == Activate("primary", 2, Cause.LICENSING_EXPIRED, "secondary")
    nobody = run(make_spec(), holding("secondary"), member(age=99), stale)
    assert role(nobody) == Deactivate(2, Cause.LICENSING_EXPIRED, "secondary")
    assert nobody.status.licensing.secondary_deadline == T0


def test_remembered_contact_survives_an_agent_restart() -> None:
    first = run(make_spec(), holding("primary"), member(), contacted())
    assert first.status.members.secondary.primary_contact is not None
    # The agent restarted 5 h ago and reports no contact; status still remembers it.
    forgetful = member(started=T0 - timedelta(hours=5))
    decision = run(make_spec(), first.status, member(age=31), forgetful)
    assert role(decision) == Activate("secondary", 2, Cause.HEARTBEAT_LOST, "primary")


# ------------------------------------------------------------------------- split brain


def test_both_answering_beyond_the_fencing_bound_keeps_the_primary() -> None:
    spec = make_spec()
    both = (member(answering=True), contacted(answering=True))
    first = run(spec, holding("secondary"), *both)
    assert role(first) is None
    suspected = {c.type: c for c in first.status.conditions}["SplitBrainSuspected"]
    assert suspected.status == "True"
    later = Now(MONO + 31, T0 + timedelta(seconds=31))
    fresh = (
        replace(both[0], last_seen=MONO + 30),
        replace(both[1], last_seen=MONO + 30),
    )
    decision = run(spec, first.status, *fresh, now=later)
    # The secondary still answers: it is revoked first, and the primary keeps the role once
    # the secondary reports it stopped.
    assert role(decision) == Deactivate(2, Cause.PARTITION_HEALED, "secondary")
    stopped = (fresh[0], replace(fresh[1], report=replace(fresh[1].report, answering=False)))
    grant = run(spec, decision.status, *stopped, now=later)
    assert role(grant) == Activate("primary", 3, Cause.PARTITION_HEALED, "secondary")


def test_a_brief_overlap_during_handoff_is_not_acted_on() -> None:
    spec = make_spec()
    decision = run(spec, holding("secondary"), member(answering=True), contacted(answering=True))
    assert role(decision) is None


# ------------------------------------------------------------------------------ status


def test_status_writes_only_on_material_change() -> None:
    first = run(make_spec(), holding("primary"), member(), contacted())
    assert status_patch(holding("primary"), first.status, make_spec()) is not None
    later = Now(MONO + 5, T0 + timedelta(seconds=5))
    second = run(
        make_spec(),
        first.status,
        replace(member(), last_seen=MONO + 4),
        replace(contacted(), last_seen=MONO + 4),
        now=later,
    )
    assert status_patch(first.status, second.status, make_spec()) is None


def test_status_is_the_only_memory_it_round_trips_through_the_wire() -> None:
    request = ManualRequest("r-7", "failover")
    decision = run(make_spec(), holding("primary"), member(), contacted(), request)
    rebuilt = FailoverPairStatus.model_validate(decision.status.to_wire())
    assert rebuilt.handoff is not None and rebuilt.handoff.to == "secondary"
    again = run(make_spec(), rebuilt, member(), contacted(), request)
    assert role(again) == Activate("secondary", 3, Cause.MANUAL_FAILOVER, "primary")
    rebuilt = FailoverPairStatus.model_validate(again.status.to_wire())
    assert rebuilt.transitions[-1].cause == "ManualFailover" and rebuilt.epoch == 3


def test_drift_between_members_is_reported() -> None:
    decision = run(
        make_spec(), holding("primary"), member(settings_digest="a"), contacted(settings_digest="b")
    )
    assert decision.status.drift.in_sync is False
    in_sync = {c.type: c for c in decision.status.conditions}["InSync"]
    assert in_sync.status == "False"


def test_the_primary_has_no_licensing_clock() -> None:
    ancient = member(started=T0 - timedelta(days=400))
    decision = run(make_spec(), holding("secondary"), ancient, contacted(service_up=False))
    assert role(decision) == Activate("primary", 2, Cause.SERVICE_STOPPED, "secondary")


def test_a_member_back_from_a_lost_heartbeat_is_not_granted_the_role_until_heard_twice() -> None:
    """The real node's partition: the cut primary was judged HeartbeatLost, one late renewal
    of its was seen, and when the new holder's voicemail went down the role went back to the
    cut member as FirstToStart. Heard once after a loss, a member is still lost."""
    back_once = replace(member(age=2.0), rejoining=True)
    decision = run(make_spec(), holding("secondary", 2), back_once, contacted(service_up=False))
    assert role(decision) == Deactivate(3, Cause.SERVICE_STOPPED, "secondary")
    nobody = holding("none", 3)
    assert role(run(make_spec(), nobody, back_once, contacted(service_up=False))) is None
    heard_twice = member(age=0.5)
    decision = run(make_spec(), nobody, heard_twice, contacted(service_up=False))
    assert role(decision) == Activate("primary", 4, Cause.FIRST_TO_START, None)


def test_a_holder_back_once_keeps_the_role_and_is_failed_over_if_silent_again() -> None:
    """Heard twice is for a member taking the role; a holder heard again keeps it. When the
    API server came back, the standby's renewal and its hello relayed in the holder's made it
    heard twice first, and the role moved away from a holder answering all along."""
    back_once = replace(member(age=0.1), rejoining=True)
    decision = run(make_spec(), holding("primary", 4), back_once, contacted())
    assert role(decision) is None
    ready = {c.type: c for c in decision.status.conditions}["Ready"]
    assert (
        ready.message
        == "primary cannot serve: HeartbeatLost: heard once again since, so it keeps the role"
    )
    silent_again = replace(member(age=30.5), rejoining=True)  # one late renewal, then nothing
    decision = run(make_spec(), holding("primary", 4), silent_again, contacted())
    assert role(decision) == Activate("secondary", 5, Cause.HEARTBEAT_LOST, "primary")
