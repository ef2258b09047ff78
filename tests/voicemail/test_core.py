"""The voicemail rules on a ManualClock: roles, epochs, calls in progress, order validity."""

from __future__ import annotations

import pytest

from pairwarden.clock import ManualClock
from pairwarden_testbed.voicemail.core import StaleEpoch, VoicemailCore


def test_starts_standby_and_counts_refused_calls() -> None:
    core = VoicemailCore("vm-primary", ManualClock())
    assert not core.offer("alice").answered
    assert not core.offer("bob").answered
    assert core.status()["role"] == "standby"
    assert core.inactive_calls == 2


def test_active_answers_and_tracks_calls_in_progress() -> None:
    core = VoicemailCore("vm-primary", ManualClock())
    core.set_role(True, 1)
    answer = core.offer("alice")
    assert answer.call is not None and answer.call.epoch == 1
    assert core.calls_in_progress == 1
    core.hang_up(answer.call)
    assert core.calls_in_progress == 0


def test_demotion_keeps_calls_in_progress_but_refuses_new_ones() -> None:
    core = VoicemailCore("vm-primary", ManualClock())
    core.set_role(True, 1)
    call = core.offer("alice").call
    core.set_role(False, 2)
    assert call is not None and core.calls_in_progress == 1
    assert not core.offer("bob").answered
    assert core.inactive_calls == 1


def test_an_older_epoch_is_refused_while_an_active_order_is_in_force() -> None:
    clock = ManualClock()
    core = VoicemailCore("vm-primary", clock)
    core.set_role(True, 5, valid_for=10.0)
    with pytest.raises(StaleEpoch):
        core.set_role(False, 4)  # a restarted agent that has not read the Lease yet
    assert core.answering() and core.epoch == 5
    core.set_role(True, 5, valid_for=10.0)  # the same epoch is a refresh, not a replay
    assert core.answering()


def test_an_expired_order_with_a_wrong_epoch_blocks_nothing() -> None:
    """The issue's brick: one order with a huge epoch made the member refuse its own agent
    forever. Once it expires, the epoch the agent read from the Lease is obeyed."""
    clock = ManualClock()
    core = VoicemailCore("vm-secondary", clock)
    core.set_role(True, 1_000_000_000, valid_for=2.0)
    with pytest.raises(StaleEpoch):
        core.set_role(True, 2, valid_for=10.0)
    clock.advance(2.0)
    core.set_role(True, 2, valid_for=10.0)
    assert core.answering() and core.epoch == 2


def test_a_standby_order_with_a_wrong_epoch_blocks_nothing() -> None:
    core = VoicemailCore("vm-secondary", ManualClock())
    core.set_role(False, 1_000_000_000)
    core.set_role(True, 2, valid_for=10.0)
    assert core.answering() and core.status()["epoch"] == 2


def test_an_active_order_runs_out_without_a_refresh() -> None:
    clock = ManualClock()
    core = VoicemailCore("vm-primary", clock)
    core.set_role(True, 3, valid_for=25.0)
    clock.advance(24.9)
    assert core.answering()
    core.set_role(True, 3, valid_for=25.0)  # the agent renewed its Lease and the order
    clock.advance(24.9)
    assert core.answering()
    clock.advance(0.2)
    assert not core.answering()
    assert core.status()["role"] == "standby"
    clock.advance(1000)
    assert not core.answering()  # stays down until a new order


def test_draining_keeps_calls_refuses_new_ones_and_ignores_a_late_order() -> None:
    core = VoicemailCore("vm-primary", ManualClock())
    core.set_role(True, 1)
    held = core.offer("alice").call
    assert held is not None
    core.drain()
    assert not core.offer("bob").answered
    core.set_role(True, 2, valid_for=5.0)  # an order sent before the agent heard the SIGTERM
    assert not core.answering() and core.status()["stopping"] is True
    assert core.calls_in_progress == 1
    core.hang_up(held)
    assert core.calls_in_progress == 0


async def test_finish_calls_waits_for_calls_in_progress_within_the_grace() -> None:
    from pairwarden_testbed.voicemail.main import finish_calls

    core = VoicemailCore("vm-primary", ManualClock())
    core.set_role(True, 1)
    held = core.offer("alice").call
    assert held is not None
    assert await finish_calls(core, grace=0.05, poll=0.01) == 1  # still going: time ran out
    core.hang_up(held)
    assert await finish_calls(core, grace=5.0, poll=0.01) == 0
