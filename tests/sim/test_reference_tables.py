"""The reference's Tables 4-4 and 4-5 and its listed causes, replayed in the simulator with
the reference's times. W = 30 s (defaults), R = 10 s, operator tick 1 s, latency 50 ms."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pairwarden.clock import ManualClock
from pairwarden.engine import Cause
from pairwarden_testbed.sim import World

from .conftest import make_spec

W, R, TICK, LATENCY = 30.0, 10.0, 1.0, 0.05
SETTLED = 5.0
# The operator acts within a tick of the window; the new holder hears of it one latency later.
LATEST = W + TICK + 2 * LATENCY
IMMEDIATE = TICK  # "immediately": within one operator tick (in practice two latencies)


def settled(**extra: object) -> World:
    world = World(make_spec(**extra), tick=TICK, latency=LATENCY)
    world.run_for(SETTLED)
    assert world.answering() == {"primary"}
    return world


def failed_over(world: World) -> World:
    world.request_manual(f"setup-{len(world.acks)}", "failover")
    assert world.run_until_answering("secondary", IMMEDIATE) is not None
    return world


def last_cause(world: World) -> Cause:
    return world.changes[-1].cause


def no_overlap(world: World) -> bool:
    return all(len(sample.answering) <= 1 for sample in world.samples)


# --------------------------------------------------------------------- Table 4-4: failover


def test_manual_failover_answers_immediately_and_keeps_calls() -> None:
    world = settled()
    world.request_manual("maint-1", "failover")
    waited = world.run_until_answering("secondary", IMMEDIATE)
    # Revoke first: the revoke reaches the primary's agent, its "not answering" reaches the
    # operator, the grant reaches the secondary's agent, which orders its voicemail process.
    assert waited is not None and waited <= 5 * LATENCY
    assert no_overlap(world)
    assert last_cause(world) == Cause.MANUAL_FAILOVER
    assert world.acks[-1].outcome == "Accepted"


@pytest.mark.parametrize("phase", [0.1, 2.5, 5.0, 7.5, 9.9])
def test_os_failure_of_the_primary_fails_over_after_the_window(phase: float) -> None:
    """Crash at `phase` seconds after the primary's last renewal: W - R < wait <= W + tick."""
    world = settled()
    world.run_until(world.members["primary"].last_ok_sent + phase)
    crashed = world.now
    world.crash("primary")
    waited = world.run_until_answering("secondary", 2 * W)
    assert waited is not None
    assert W - R - 1e-9 <= waited <= LATEST
    assert last_cause(world) == Cause.HEARTBEAT_LOST
    assert world.answering(crashed + 1) == set()


@pytest.mark.parametrize("phase", [0.05, 0.5, 0.95])
def test_os_failure_with_the_references_exact_keepalive_semantics(phase: float) -> None:
    """renewalsPerWindow = missedBeforeFailover: one write per interval, wait in (W-1s, W+tick]."""
    world = World(make_spec(heartbeat={"renewalsPerWindow": 30}), tick=TICK, latency=LATENCY)
    world.run_for(SETTLED)
    world.run_until(world.members["primary"].last_ok_sent + phase)
    world.crash("primary")
    waited = world.run_until_answering("secondary", 2 * W)
    assert waited is not None and W - 1.0 - 1e-9 <= waited <= LATEST


def test_network_outage_fails_over_after_the_window_without_two_answering() -> None:
    world = settled()
    world.partition("primary")
    waited = world.run_until_answering("secondary", 2 * W)
    assert waited is not None and W - R <= waited <= LATEST
    assert no_overlap(world)  # the primary fenced itself before the operator acted
    # The outage ends: exactly one stays active. The primary holds the older epoch and is
    # fenced, so the secondary keeps the role (the reference would keep the primary).
    world.heal("primary")
    world.run_for(2 * W)
    assert world.answering() == {"secondary"}
    assert world.members["primary"].view_epoch == world.epoch
    assert no_overlap(world)


def test_failure_of_the_voicemail_service_fails_over_immediately() -> None:
    world = settled()
    world.stop_service("primary")
    waited = world.run_until_answering("secondary", IMMEDIATE)
    assert waited is not None and waited <= 3 * LATENCY
    assert last_cause(world) == Cause.SERVICE_STOPPED


def test_inactive_secondary_answering_a_call_with_force_fails_over_immediately() -> None:
    world = settled(forceFailoverOnInactiveCall=True)
    assert world.call_member("secondary").answered_by is None
    waited = world.run_until_answering("secondary", IMMEDIATE)
    assert waited is not None
    assert last_cause(world) == Cause.INACTIVE_CALL
    assert world.call_service().answered_by == "secondary"


def test_call_on_inactive_secondary_without_force_is_a_warning_only() -> None:
    world = settled()
    world.call_member("secondary")
    world.run_for(W)
    assert world.answering() == {"primary"}
    assert [w.reason for w in world.warnings] == ["InactiveCall"]
    assert world.call_service().answered_by == "primary"


# --------------------------------------------------------------------- Table 4-5: failback


def test_manual_failback_is_immediate() -> None:
    world = failed_over(settled())
    world.request_manual("back-1", "failback")
    waited = world.run_until_answering("primary", IMMEDIATE)
    assert waited is not None and last_cause(world) == Cause.MANUAL_FAILBACK


def test_failure_of_the_service_on_the_active_secondary_fails_back_immediately() -> None:
    world = failed_over(settled())
    world.stop_service("secondary")
    waited = world.run_until_answering("primary", IMMEDIATE)
    assert waited is not None and last_cause(world) == Cause.SERVICE_STOPPED


def test_os_failure_of_the_active_secondary_fails_back_after_the_window() -> None:
    world = failed_over(settled())
    world.crash("secondary")
    waited = world.run_until_answering("primary", 2 * W)
    assert waited is not None and W - R <= waited <= LATEST
    assert last_cause(world) == Cause.HEARTBEAT_LOST


def _scheduled_world(start: str, end: str, zone: str, at: datetime, tick: float = TICK) -> World:
    spec = make_spec(
        failback={"type": "Scheduled", "window": {"start": start, "end": end, "timeZone": zone}}
    )
    world = World(spec, clock=ManualClock(start=at), tick=tick, latency=LATENCY)
    world.run_for(SETTLED)
    return failed_over(world)


def test_scheduled_failback_waits_for_the_window() -> None:
    world = _scheduled_world("13:00", "13:30", "UTC", datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    world.run_for(59 * 60 - 2 * SETTLED)
    assert world.answering() == {"secondary"}
    waited = world.run_until_answering("primary", 10 * 60)
    assert waited is not None
    change = world.changes[-1]
    assert change.cause == Cause.SCHEDULED_FAILBACK
    assert change.wall.hour == 13 and change.wall.minute == 0
    assert change.wall.second <= TICK + 1


def test_scheduled_failback_window_wrapping_midnight_across_dst() -> None:
    """Window 23:30-00:30 Europe/Paris, the nights around the end of summer time
    (2026-10-25 03:00 CEST -> 02:00 CET): 21:30 UTC before, 22:30 UTC after."""
    paris = ZoneInfo("Europe/Paris")
    start = datetime(2026, 10, 24, 20, 0, tzinfo=UTC)  # 22:00 CEST
    world = _scheduled_world("23:30", "00:30", "Europe/Paris", start, tick=10.0)
    assert world.run_until_answering("primary", 4 * 3600) is not None
    summer = world.changes[-1]
    assert summer.cause == Cause.SCHEDULED_FAILBACK
    assert (summer.wall.hour, summer.wall.minute) == (21, 30)
    world.run_for(3600)  # past the window; the next chance is the next night
    failed_over(world)
    assert world.run_until_answering("primary", 30 * 3600) is not None
    winter = world.changes[-1]
    assert winter.cause == Cause.SCHEDULED_FAILBACK
    assert (winter.wall.hour, winter.wall.minute) == (22, 30)
    assert winter.wall.astimezone(paris).strftime("%H:%M") == "23:30"


def test_scheduled_failback_does_not_happen_to_an_unhealthy_primary() -> None:
    world = _scheduled_world("12:00", "23:00", "UTC", datetime(2026, 1, 5, 11, 59, tzinfo=UTC))
    world.stop_service("primary")
    world.run_for(3600)
    assert world.answering() == {"secondary"}
    world.start_service("primary")
    waited = world.run_until_answering("primary", 2 * TICK)
    assert waited is not None and last_cause(world) == Cause.SCHEDULED_FAILBACK


# ------------------------------------------------- shutting down and restarting (reference)


def test_shutting_down_the_active_makes_the_inactive_active_at_once() -> None:
    world = settled()
    world.stop_agent("primary")
    waited = world.run_until_answering("secondary", IMMEDIATE)
    assert waited is not None and last_cause(world) == Cause.AGENT_STOPPED
    assert no_overlap(world)


@pytest.mark.parametrize("first", ["primary", "secondary"])
def test_when_neither_runs_the_first_started_becomes_active(first: str) -> None:
    world = World(make_spec(), tick=TICK, latency=LATENCY, started={})
    world.run_for(60)
    assert world.answering() == set()
    world.start(first)  # type: ignore[arg-type]
    world.run_for(2)
    world.start("secondary" if first == "primary" else "primary")
    world.run_for(30)
    assert world.answering() == {first}
    assert world.changes[0].cause == Cause.FIRST_TO_START


def test_restarted_primary_stays_standby_under_manual_failback() -> None:
    world = settled()
    world.crash("primary")
    world.run_until_answering("secondary", 2 * W)
    world.start("primary")
    world.run_for(600)
    assert world.answering() == {"secondary"}


# ---------------------------------------------- both active at once (reference) and fencing


def test_stopped_agent_on_the_primary_does_not_leave_two_answering() -> None:
    """Reference: Node Manager stopped -> both active. Here the voicemail process stops at its
    grant (W - R/2 after the last renewal) before the operator fails over (W after observing)."""
    world = settled()
    world.kill_agent("primary")
    waited = world.run_until_answering("secondary", 2 * W)
    assert waited is not None and waited <= LATEST
    assert no_overlap(world)


# ----------------------------------------------------------------------- excessive CPU


def test_excessive_cpu_ping_pong_is_damped() -> None:
    """Reference: CPU load that follows the active member fails over and back until fixed.
    Here at most maxTransitions role changes per period, then the pair holds. The agent
    judges CPU excessive after durationSeconds (60 s) above the threshold."""
    world = settled()
    for _ in range(20):
        holder = next(iter(world.answering()), "primary")
        world.set_cpu(holder, True)
        world.run_for(90)
        world.set_cpu("primary", False)
        world.set_cpu("secondary", False)
        world.run_for(30)
        world.set_cpu(next(iter(world.answering()), "primary"), True)
    moves = [c for c in world.changes if c.to != "none"]  # a revoke-first move counts once
    assert len(moves) - 1 <= 4  # the first change is FirstToStart
    assert world.status.phase == "Held"
    world.stop_service(next(iter(world.answering())))
    assert (
        world.run_until_answering(
            "primary" if world.holder == "secondary" else "secondary", IMMEDIATE
        )
        is not None
    ), "holding never blocks failover away from a failed member"


# --------------------------------------------------------------------------- licensing


def test_secondary_that_never_reached_the_primary_stops_after_four_hours() -> None:
    world = World(
        make_spec(),
        tick=TICK,
        latency=LATENCY,
        started={"secondary": True},
        primary_contact=False,
    )
    new_pair_wait = make_spec().heartbeat.renew_period_seconds  # for a primary that never comes
    world.run_for(new_pair_wait + SETTLED)
    assert world.answering() == {"secondary"}
    world.run_for(4 * 3600 - 2 * SETTLED - new_pair_wait)
    assert world.answering() == {"secondary"}
    world.run_for(2 * SETTLED)
    assert world.answering() == set()
    assert last_cause(world) == Cause.LICENSING_EXPIRED
    world.start("primary")
    waited = world.run_until_answering("primary", W)
    assert waited is not None and last_cause(world) == Cause.FIRST_TO_START


def test_secondary_stops_after_max_seconds_since_last_contact() -> None:
    """The 60-day rule with a 2-hour limit (60 days of virtual time would take minutes; the
    engine test proves the default of 60 days)."""
    world = failed_over(settled(licensing={"maxSecondsSinceContact": 7200}))
    world.crash("primary")
    world.run_for(7200 - 600)
    assert world.answering() == {"secondary"}
    world.run_for(1200)
    assert world.answering() == set()
    assert last_cause(world) == Cause.LICENSING_EXPIRED


def test_unlicensed_secondary_is_never_made_active() -> None:
    world = World(
        make_spec(),
        tick=TICK,
        latency=LATENCY,
        started={"secondary": False, "primary": False},
        primary_contact=False,
    )
    world.run_for(5 * 3600)
    world.start("secondary")  # restarted, the primary never reachable: 4 h clock from now
    world.run_for(4 * 3600 + 60)
    assert world.answering() == set() and world.holder == "none"
    world.request_manual("r", "failover")
    world.run_for(1)
    assert world.acks[-1].outcome == "Refused" and "licensing" in world.acks[-1].message


# ------------------------------------------------------------------------ improvements


def test_a_wall_clock_jump_causes_no_failover() -> None:
    world = settled()
    world.jump_wall(-3600)
    world.run_for(3 * W)
    world.jump_wall(7200)
    world.run_for(3 * W)
    assert world.answering() == {"primary"} and len(world.changes) == 1


def test_an_operator_restart_causes_no_failover() -> None:
    world = settled()
    world.run_for(25)
    world.restart_operator()
    world.run_for(3 * W)
    assert world.answering() == {"primary"} and len(world.changes) == 1


def test_paused_pair_does_not_fail_over_but_manual_requests_work() -> None:
    world = settled()
    world.spec = make_spec(paused=True)
    world.crash("primary")
    world.run_for(3 * W)
    assert world.answering() == set()
    world.request_manual("r-paused", "failover")
    assert world.run_until_answering("secondary", IMMEDIATE) is not None


def test_lost_heartbeats_below_the_window_cause_no_failover() -> None:
    world = World(make_spec(), tick=TICK, latency=LATENCY, loss=0.3, seed=7)
    world.run_for(600)
    assert len(world.changes) == 1 and world.answering() == {"primary"}
    assert no_overlap(world)
