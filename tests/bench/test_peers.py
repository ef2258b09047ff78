"""bench/peers.py's figures: calls dropped between a fault and the other member's first
answer, samples with two answering, the ratio printed per fault."""

from __future__ import annotations

import math
import threading

import pytest
from bench.peers import Call, Caller, Figures, TwoAnswering, print_ratios


def test_dropped_calls_are_those_placed_after_the_fault_and_not_answered() -> None:
    caller = Caller.__new__(Caller)  # its record alone: no thread, no network
    caller.lock = threading.Lock()
    caller.calls = [
        Call(9.0, 9.1, "vm-primary"),  # before the fault
        Call(10.1, 11.1, None),  # refused: dropped
        Call(11.2, 12.2, None),  # timed out: dropped
        Call(12.3, 12.4, "vm-secondary"),  # the other member's first answer
        Call(12.5, 12.6, None),  # after it: not counted
    ]
    assert caller.dropped(10.0, 12.4) == 2
    assert caller.first_answer("vm-secondary", 10.0, 0.1) == 12.4
    assert math.isnan(caller.first_answer("vm-secondary", 12.45, 0.05))  # none after 12.45
    assert caller.last_answer() == "vm-secondary"


def test_two_answering_counts_the_samples_in_the_window() -> None:
    sampler = TwoAnswering.__new__(TwoAnswering)
    sampler.samples = [(9.9, 2), (10.0, 1), (10.05, 2), (10.1, 1), (10.2, 2)]
    assert sampler.between(10.0, 10.2) == (1, 3)


def test_the_ratio_is_printed_per_fault_against_each_peer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [
        Figures("pairwarden", "crash", answered=[0.5, 0.7, 0.6]),
        Figures("kamailio", "crash", answered=[2.0, 2.1, 2.2]),
        Figures("kamailio", "hang", answered=[2.0]),  # no pairwarden row: no ratio
    ]
    print_ratios(rows)
    out = capsys.readouterr().out
    assert "vs kamailio  crash            0.29" in out
    assert "hang" not in out
