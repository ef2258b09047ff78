"""The chaos schedules: a seed makes the same schedule again, within the stated span."""

from __future__ import annotations

import pytest

from pairwarden_testbed.chaos import KINDS, SPAN, make_schedule, seeds


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
