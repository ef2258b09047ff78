"""The Failsafe condition and its Event, from the members' reports (docs/protocol.md): True
while a member answers on its peer's promise, False naming the last episode once over, one
Warning Event per episode, also for an operator that only reads the episode once it ended."""

from __future__ import annotations

from datetime import timedelta

from tests.engine.test_decide import T0, contacted, holding, make_spec, member, run

from pairwarden.engine import Decision, Warn

SINCE, ENDED = T0 - timedelta(seconds=12), T0 - timedelta(seconds=2)


def failsafe(decision: Decision) -> tuple[str, str, str]:
    c = {c.type: c for c in decision.status.conditions}["Failsafe"]
    return c.status, c.reason, c.message


def events(decision: Decision) -> list[Warn]:
    return [a for a in decision.actions if isinstance(a, Warn) and a.reason == "Failsafe"]


def test_in_effect_then_ended_posts_one_event_and_moves_nothing() -> None:
    spec = make_spec()
    quiet = run(spec, holding("primary"), member(answering=True, epoch=1), contacted())
    assert failsafe(quiet)[:2] == ("False", "NotInEffect") and not events(quiet)

    on = run(spec, quiet.status, member(answering=True, epoch=1, failsafe_since=SINCE), contacted())
    status, reason, message = failsafe(on)
    assert (status, reason) == ("True", "InEffect")
    assert message.startswith("primary answered on its peer's promise from ")
    assert len(events(on)) == 1

    still = run(spec, on.status, member(answering=True, epoch=1, failsafe_since=SINCE), contacted())
    assert failsafe(still)[:2] == ("True", "InEffect") and not events(still)

    over = member(answering=True, epoch=1, failsafe_since=SINCE, failsafe_ended=ENDED)
    ended = run(spec, still.status, over, contacted())
    status, reason, message = failsafe(ended)
    assert (status, reason) == ("False", "Ended") and "(10.0 s)" in message
    assert not events(ended)  # the same episode: announced once
    assert ended.status.active_member == "primary" and ended.status.epoch == 1


def test_an_operator_that_was_away_too_reads_the_ended_episode_and_announces_it() -> None:
    spec = make_spec()
    over = member(answering=True, epoch=1, failsafe_since=SINCE, failsafe_ended=ENDED)
    after = run(spec, holding("primary"), over, contacted())
    assert failsafe(after)[:2] == ("False", "Ended")
    assert len(events(after)) == 1
    again = run(spec, after.status, over, contacted())
    assert not events(again)
    later = SINCE + timedelta(seconds=30)
    second = member(answering=True, epoch=1, failsafe_since=later)
    next_one = run(spec, again.status, second, contacted())
    assert failsafe(next_one)[:2] == ("True", "InEffect") and len(events(next_one)) == 1


def test_the_latest_episode_of_either_member_is_named() -> None:
    spec = make_spec()
    old = contacted(failsafe_since=SINCE - timedelta(hours=1), failsafe_ended=SINCE)
    now = member(answering=True, epoch=1, failsafe_since=SINCE)
    decision = run(spec, holding("primary"), now, old)
    status, _, message = failsafe(decision)
    assert status == "True" and message.startswith("primary")
