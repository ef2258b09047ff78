"""The chaos schedules: a seed makes the same schedule again, within the stated span."""

from __future__ import annotations

import pytest

from pairwarden_testbed.chaos import (
    FAILSAFE,
    KINDS,
    LONGEST_OUTAGE,
    RENEW,
    SPAN,
    WINDOW,
    Fault,
    Schedule,
    judge_moves,
    make_schedule,
    seeds,
)


def test_a_seed_replays_its_schedule() -> None:
    assert make_schedule(42) == make_schedule(42)
    assert make_schedule(42).describe() == make_schedule(42).describe()
    assert make_schedule(42) != make_schedule(43)


def test_faults_land_in_order_within_the_span_and_are_undone_within_two_windows() -> None:
    for seed in range(300):
        faults = make_schedule(seed).faults
        assert 1 <= len(faults) <= 4
        assert [f.at for f in faults] == sorted(f.at for f in faults)
        assert all(0 <= f.at <= SPAN and 0 < f.lasts <= 4.0 for f in faults)


def test_every_kind_is_drawn_and_a_subset_is_respected() -> None:
    drawn = {f.kind for seed in range(300) for f in make_schedule(seed).faults}
    assert drawn == set(KINDS)
    some = ("kill_pod", "partition")
    assert {f.kind for seed in range(300) for f in make_schedule(seed, some).faults} == set(some)


def test_chaos_seed_replays_one_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOS_SEED", "7")
    assert seeds(200) == [7]
    monkeypatch.delenv("CHAOS_SEED")
    assert seeds(3, first=10) == [10, 11, 12]


def test_outages_for_everyone_end_before_the_holders_fence_until_the_failsafe() -> None:
    outages = [
        f.lasts for seed in range(600) for f in make_schedule(seed).faults if f.kind == "api_down"
    ]
    assert outages and max(outages) <= LONGEST_OUTAGE
    if not FAILSAFE:
        # The holder's last renewal was sent before the outage began at the latest, and its
        # retry lands within R/2 of the end (its backoff's cap): before its fence, W - R/2
        # after that renewal, with room for the request itself.
        assert LONGEST_OUTAGE + RENEW / 2 + 0.5 <= WINDOW - RENEW / 2 + 1e-9


def _schedule(*kinds: str) -> Schedule:
    return Schedule(0, tuple(Fault(0.0, kind, "primary", lasts=1.0) for kind in kinds))


def test_a_move_blamed_on_silence_needs_a_faulted_member() -> None:
    outage = _schedule("api_down", "foreign_status")
    assert "HeartbeatLost at epoch 3" in judge_moves(outage, [(3, "HeartbeatLost")], [])
    assert "NotAnswering" in judge_moves(outage, [(2, "NotAnswering")], [])
    assert judge_moves(outage, [(2, "LeaseRepaired")], []) == ""  # a foreign write's repair
    crash = _schedule("api_down", "kill_pod")
    assert judge_moves(crash, [(3, "HeartbeatLost")], [(0.2, None)]) == ""  # a cause, a lost call


def test_a_calm_schedule_moves_nothing_and_drops_no_call() -> None:
    calm = _schedule("restart_operator", "latency")
    assert judge_moves(calm, [], [(0.2 * i, "vm-primary") for i in range(5)]) == ""
    assert "a move" in judge_moves(calm, [(2, "ManualFailover")], [])
    dialled = [(3.6, "vm-primary"), (3.81, None), (4.0, "vm-secondary")]
    assert judge_moves(calm, [], dialled) == (
        "1 of 3 calls through the Service unanswered "
        "(at 3.81s (vm-primary before, vm-secondary after))"
    )
    storm = _schedule("storm")
    lost = judge_moves(storm, [], [(0.0, None)])
    assert (lost == "") is (not FAILSAFE)  # counted once the agents' failsafe is on main
