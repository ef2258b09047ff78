"""The agent's pure rules on a ManualClock: spec defaults, fencing, CPU, licensing, counters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pairwarden.agent.core import (
    HOLD_TRIGGERING_CALL,
    RENEW_RETRY,
    CpuJudge,
    FenceInputs,
    InactiveCallCounter,
    LicensingClocks,
    StandbyCalls,
    accepts_replication,
    ask_period,
    decide_answer,
    fence_counts_from,
    licensing_expired,
    may_promise,
    next_renew_delay,
    promise_wanted_below,
    restart_hold,
    settings_digest,
    settings_from_spec,
    standby_calls,
    wants_promise,
)
from pairwarden.clock import ManualClock
from pairwarden.protocol import HeartbeatSizing, MemberReport

SIZING = settings_from_spec(None).sizing  # W = 30 s, R = 10 s, fence after 25 s


def test_spec_defaults_and_defensive_reading() -> None:
    s = settings_from_spec(None)
    assert (s.sizing.window, s.sizing.renew_period, s.sizing.fence_after) == (30.0, 10.0, 25.0)
    assert (s.never_contacted_grace, s.max_since_contact) == (14400.0, 5184000.0)
    assert (s.cpu_enabled, s.cpu_threshold, s.cpu_duration) == (True, 95.0, 60.0)
    assert not settings_from_spec({"excessiveCpu": {"enabled": False}}).cpu_enabled
    odd = settings_from_spec(
        {"heartbeat": {"intervalMs": "fast", "missedBeforeFailover": 10, "renewalsPerWindow": -1},
         "excessiveCpu": {"thresholdPercent": 75, "durationSeconds": True},
         "licensing": []}
    )  # fmt: skip
    assert odd.sizing.window == 10.0 and odd.sizing.renew_period == 10 / 3
    assert odd.cpu_threshold == 75.0 and odd.cpu_duration == 60.0
    assert odd.never_contacted_grace == 14400.0


@given(
    interval_ms=st.integers(100, 60_000),
    missed=st.integers(2, 1000),
    per_window=st.integers(2, 1000),
    failures=st.integers(1, 64),
    draws=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=8),
)
def test_the_renewal_timing_keeps_its_bounds(
    interval_ms: int, missed: int, per_window: int, failures: int, draws: list[float]
) -> None:
    """The renew loop's one timing rule (the agent and the simulator both wait it): R after a
    success; after failures, a pause > 0, at most R/2 and the retry cap, so a holder whose
    renewal due at R fails still retries at least once before its fence (W - R/2)."""
    sizing = HeartbeatSizing.from_spec(interval_ms, missed, min(per_window, missed))
    assert next_renew_delay(0, sizing, draws[0]) == sizing.renew_period
    for draw in draws:
        pause = next_renew_delay(failures, sizing, draw)
        assert 0 < pause <= min(sizing.renew_period / 2, RENEW_RETRY.cap)
        assert sizing.renew_period + pause <= sizing.fence_after + 1e-9
    grows = [next_renew_delay(n, sizing, 0.0) for n in range(1, 10)]
    assert grows == sorted(grows)


def test_renewals_are_sent_a_period_apart_whatever_they_take() -> None:
    """After a success the loop waits what is left of R since the attempt began (the write,
    the read after it, the order): the next renewal is sent R after the last, so a healthy
    holder's renewal is answered before it would ask its peer for a promise (3.0 s at
    R = 2.5 s). Waiting R after the attempt's end, three requests of 0.15 s each put the next
    answer 3.1 s after the last renewal was sent: an ask before every renewal."""
    sizing = HeartbeatSizing.from_spec(500, 10, 2)
    assert next_renew_delay(0, sizing, 0.5, spent=0.6) == pytest.approx(1.9)
    assert next_renew_delay(0, sizing, 0.5, spent=3.0) == 0.0  # late already: at once
    assert next_renew_delay(2, sizing, 0.5, spent=0.6) == next_renew_delay(2, sizing, 0.5)
    request, spent = 0.15, 0.45  # the write, the read, the order
    sent = 1000.0
    for _ in range(20):
        done = sent + spent
        nxt = done + next_renew_delay(0, sizing, 0.5, spent=spent)
        assert nxt - sent == pytest.approx(2.5)
        held = inputs(last_renewal_sent=sent, holder_checked=sent + request)
        assert not wants_promise(held, sizing, nxt + request - 1e-6)  # until the next answer
        sent = nxt
    # the rule before, R after the end: sent at 1000, the next answered at 1003.1
    drifting = 1000.0 + spent + sizing.renew_period + request
    assert wants_promise(inputs(), sizing, drifting - 1e-6)


def inputs(**kw: object) -> FenceInputs:
    base: dict[str, object] = dict(
        pod="vm-primary", holder="vm-primary", epoch=3, last_renewal_sent=1000.0,
        holder_checked=1000.0, service_up=True, licensing=None,
    )  # fmt: skip
    base.update(kw)
    return FenceInputs(**base)  # type: ignore[arg-type]


def test_the_fence_counts_from_the_older_of_the_renewal_and_the_read_after_it() -> None:
    """What an active order's validity derives from (the agent orders again when it moves): a
    renewal sent at 1010 whose read has not answered yet still counts from the read at 1000."""
    assert fence_counts_from(inputs(last_renewal_sent=1010.0, holder_checked=1000.0)) == 1000.0
    assert fence_counts_from(inputs(last_renewal_sent=1010.0, holder_checked=1010.2)) == 1010.0
    left = decide_answer(inputs(last_renewal_sent=1010.0), SIZING, 1012.0).valid_for
    assert left == 1000.0 + SIZING.fence_after - 1012.0


def test_answers_only_while_every_condition_holds() -> None:
    ok = decide_answer(inputs(), SIZING, 1010.0)
    assert ok.answer and ok.valid_for == 15.0
    assert not decide_answer(inputs(holder="vm-secondary"), SIZING, 1010.0).answer
    assert not decide_answer(inputs(holder=""), SIZING, 1010.0).answer
    assert not decide_answer(inputs(last_renewal_sent=None), SIZING, 1010.0).answer
    assert not decide_answer(inputs(service_up=False), SIZING, 1010.0).answer
    assert not decide_answer(inputs(licensing="licensing: x"), SIZING, 1010.0).answer
    assert not decide_answer(inputs(holder_checked=None), SIZING, 1010.0).answer


def test_fences_strictly_before_the_operator_can_fail_over() -> None:
    # Sent at 1000; the operator observes it no earlier and fails over no earlier than 1030.
    assert decide_answer(inputs(), SIZING, 1024.99).answer
    late = decide_answer(inputs(), SIZING, 1025.0)
    assert not late.answer and "renewal" in late.reason
    assert SIZING.fence_after < SIZING.window


def test_a_stale_holder_confirmation_fences_even_with_fresh_renewals() -> None:
    v = decide_answer(inputs(last_renewal_sent=1020.0, holder_checked=1000.0), SIZING, 1024.0)
    assert v.answer and v.valid_for == 1.0
    assert not decide_answer(inputs(last_renewal_sent=1020.0), SIZING, 1025.0).answer


# Failsafe (docs/protocol.md): renewal sent and holder confirmed at 1000, fence at 1025.
# (inputs, now) -> (answers, failsafe, valid_for or None)
FAILSAFE_TABLE = [
    ("no promise: fences as before", {}, 1025.0, (False, False, None)),
    ("a live promise carries it past the fence", {"peer_until": 1030.0}, 1025.0, (True, True, 5.0)),
    ("the promise lapses: it fences", {"peer_until": 1030.0}, 1030.0, (False, False, None)),
    (
        "a renewal still valid: not failsafe, the longer bound",
        {"peer_until": 1020.0},
        1010.0,
        (True, False, 15.0),
    ),
    (
        "promise outlasting the renewal: valid for the promise",
        {"peer_until": 1040.0},
        1010.0,
        (True, False, 30.0),
    ),
    (
        "the peer knows a newer epoch: stop at once, even with a fresh renewal",
        {"peer_epoch": 4, "peer_until": 1030.0},
        1010.0,
        (False, False, None),
    ),
    ("the peer's older epoch changes nothing", {"peer_epoch": 2}, 1010.0, (True, False, 15.0)),
    (
        "promised the peer: not even the named holder answers",
        {"promised_until": 1012.0},
        1010.0,
        (False, False, None),
    ),
    ("that promise lapsed: answers", {"promised_until": 1012.0}, 1012.0, (True, False, 13.0)),
    (
        "failsafe is never for another's pod",
        {"holder": "vm-secondary", "peer_until": 1030.0},
        1025.0,
        (False, False, None),
    ),
    (
        "failsafe needs the voicemail up",
        {"service_up": False, "peer_until": 1030.0},
        1025.0,
        (False, False, None),
    ),
    (
        "failsafe keeps the licensing rule",
        {"licensing": "licensing: x", "peer_until": 1030.0},
        1025.0,
        (False, False, None),
    ),
    (
        "failsafe needs one renewal first",
        {"last_renewal_sent": None, "peer_until": 1030.0},
        1010.0,
        (False, False, None),
    ),
    (
        "a stale holder read alone is carried too",
        {"last_renewal_sent": 1020.0, "peer_until": 1027.0},
        1025.0,
        (True, True, 2.0),
    ),
]


@pytest.mark.parametrize(
    ("change", "now", "expected"),
    [
        pytest.param(change, now, expected, id=name)
        for name, change, now, expected in FAILSAFE_TABLE
    ],
)
def test_failsafe_rule(change: dict[str, object], now: float, expected: tuple[object, ...]) -> None:
    verdict = decide_answer(inputs(**change), SIZING, now)
    answers, failsafe, valid_for = expected
    assert (verdict.answer, verdict.failsafe) == (answers, failsafe), verdict.reason
    if valid_for is not None:
        assert verdict.valid_for == valid_for
    if verdict.failsafe:
        assert "failsafe" in verdict.reason


def test_the_holder_asks_only_once_its_own_validity_is_under_half() -> None:
    # fence_after 25 s: ask once less than 12.5 s is left, i.e. from 1012.5 on
    assert not wants_promise(inputs(), SIZING, 1012.4)
    assert wants_promise(inputs(), SIZING, 1012.5)
    assert wants_promise(inputs(last_renewal_sent=1012.0, holder_checked=1000.0), SIZING, 1013.0)
    assert not wants_promise(inputs(holder="vm-secondary"), SIZING, 1020.0)
    assert not wants_promise(inputs(last_renewal_sent=None), SIZING, 1020.0)
    assert not wants_promise(inputs(holder_checked=None), SIZING, 1020.0)


def test_a_healthy_holder_never_asks_when_it_renews_twice_per_window() -> None:
    """renewalsPerWindow 2 (the real node's W = 5 s, R = 2.5 s, fence after 3.75 s): half the
    fence bound (1.875 s) comes before the renewal due at 2.5 s, so the holder asked before
    every renewal and its peer kept each promise 3.75 s: a kill -9 then left the new holder
    silent after its grant. It asks once that renewal is late, one ask period (0.75 s) before
    the fence."""
    sizing = HeartbeatSizing.from_spec(500, 10, 2)
    assert (sizing.renew_period, sizing.fence_after, ask_period(sizing)) == (2.5, 3.75, 0.75)
    assert promise_wanted_below(sizing) == 0.75
    assert not wants_promise(inputs(), sizing, 1001.9)  # half the fence bound: no more
    assert not wants_promise(inputs(), sizing, 1002.9)  # the renewal sent at 2.5 s in flight
    assert wants_promise(inputs(), sizing, 1003.0)
    assert decide_answer(inputs(), sizing, 1003.0).answer  # and it still has 0.75 s to ask


@given(
    interval_ms=st.integers(100, 60_000),
    missed=st.integers(2, 1000),
    per_window=st.integers(2, 1000),
)
def test_the_ask_comes_after_a_healthy_renewal_and_before_the_fence(
    interval_ms: int, missed: int, per_window: int
) -> None:
    """For every sizing with two renewals or more per window: a renewal (and the read after
    it) done within a quarter of its slack after R never makes the holder ask, and the ask
    leaves it at least one ask period before its fence; with three or more it asks at half
    the fence bound, as ever."""
    sizing = HeartbeatSizing.from_spec(interval_ms, missed, min(per_window, missed))
    fence, renew = sizing.fence_after, sizing.renew_period
    below = promise_wanted_below(sizing)
    healthy = renew + min(sizing.request_timeout, fence - renew) / 4
    assert not wants_promise(inputs(), sizing, 1000.0 + healthy - 1e-6)
    assert ask_period(sizing) - 1e-9 <= below <= fence / 2 + 1e-9
    assert wants_promise(inputs(), sizing, 1000.0 + fence - below + 1e-6)
    if sizing.window / renew >= 3 and renew / 2 == sizing.request_timeout:
        assert below == pytest.approx(fence / 2)


@pytest.mark.parametrize(
    ("answering", "voicemail", "epoch", "asked", "promises"),
    [
        (False, False, 3, 3, True),  # the standby at the holder's epoch
        (False, False, 2, 3, True),  # behind the holder: it cannot have been granted since
        (False, False, 4, 3, False),  # a newer epoch: the asker must hear it and stop
        (True, False, 3, 3, False),  # answering itself
        (False, True, 3, 3, False),  # its voicemail still answers (an order not yet taken)
    ],
)
def test_the_peer_promises_only_while_it_does_not_answer(
    answering: bool, voicemail: bool, epoch: int, asked: int, promises: bool
) -> None:
    assert may_promise(answering, voicemail, epoch, asked) is promises


@pytest.mark.parametrize(
    ("previous", "holder", "epoch", "held"),
    [
        (None, "vm-primary", 3, False),  # no first sight yet (it cannot answer anyway)
        (MemberReport(), "vm-primary", 3, False),  # never published a contact: never asked
        (MemberReport(peer_contact="a:8083", answering=True, epoch=3), "vm-primary", 3, False),
        (MemberReport(peer_contact="a:8083", answering=True, epoch=2), "vm-primary", 3, True),
        (MemberReport(peer_contact="a:8083", answering=False, epoch=3), "vm-primary", 3, True),
        (MemberReport(peer_contact="a:8083", answering=True, epoch=3), "vm-secondary", 3, True),
    ],
)
def test_a_restarted_agent_holds_back_unless_it_cannot_have_promised(
    previous: MemberReport | None, holder: str, epoch: int, held: bool
) -> None:
    until = restart_hold(previous, holder, "vm-primary", epoch, 1000.0, SIZING)
    assert until == (1025.0 if held else None)


def test_cpu_excessive_after_the_whole_duration_above_threshold() -> None:
    clock, judge = ManualClock(), CpuJudge()
    assert not judge.observe(95, clock.monotonic(), 90, 60)
    clock.advance(59)
    assert not judge.observe(95, clock.monotonic(), 90, 60)
    clock.advance(1)
    assert judge.observe(95, clock.monotonic(), 90, 60)
    assert not judge.observe(80, clock.monotonic(), 90, 60)  # one low sample clears it
    clock.advance(30)
    assert not judge.observe(95, clock.monotonic(), 90, 60)
    assert not judge.observe(None, clock.monotonic(), 90, 60)


def test_licensing_clocks_of_the_secondary() -> None:
    clock = ManualClock()
    s = settings_from_spec(None)
    never = LicensingClocks(started=clock.wall())
    clock.advance(4 * 3600 - 1)
    assert licensing_expired("secondary", never, s, clock.wall()) is None
    clock.advance(1)
    assert "never contacted" in (licensing_expired("secondary", never, s, clock.wall()) or "")
    assert licensing_expired("primary", never, s, clock.wall()) is None
    contacted = LicensingClocks(started=never.started, primary_contact=clock.wall())
    clock.advance(60 * 86400 - 1)
    assert licensing_expired("secondary", contacted, s, clock.wall()) is None
    clock.jump_wall(1)  # a calendar step, as after an NTP correction
    assert "too long" in (licensing_expired("secondary", contacted, s, clock.wall()) or "")
    assert contacted.primary_contact is not None
    assert clock.wall() - contacted.primary_contact == timedelta(days=60)


def test_inactive_call_counter_only_grows() -> None:
    c = InactiveCallCounter()
    assert [c.update(n) for n in (0, 2, 3)] == [0, 2, 3]
    assert c.update(0) == 3  # the voicemail process restarted
    assert c.update(1) == 4


def test_inactive_call_counter_continues_from_the_lease_after_agent_restart() -> None:
    same_process = InactiveCallCounter()
    same_process.floor(5)
    assert same_process.total == 5
    assert [same_process.update(n) for n in (5, 6)] == [5, 6]
    restarted_process = InactiveCallCounter()
    restarted_process.floor(5)
    assert [restarted_process.update(n) for n in (0, 1)] == [5, 6]


def test_settings_digest_is_order_independent() -> None:
    assert settings_digest({"a": 1, "b": 2}) == settings_digest({"b": 2, "a": 1})
    assert settings_digest({"a": 1}) != settings_digest({"a": 2})
    assert settings_digest(None) == ""


@pytest.mark.parametrize(
    ("force", "holder", "contact", "expected"),
    [
        # Force Failover: hold the call that causes failover, whoever holds the Lease.
        (True, "vm-primary", "10.0.0.6:5060", StandbyCalls(hold_for=HOLD_TRIGGERING_CALL)),
        (True, None, "", StandbyCalls(hold_for=HOLD_TRIGGERING_CALL)),
        # Without it: to the active member when its contact is known, else refuse.
        (False, "vm-primary", "10.0.0.6:5060", StandbyCalls(redirect="10.0.0.6:5060")),
        (False, "vm-primary", "", StandbyCalls()),
        (False, "", "10.0.0.6:5060", StandbyCalls()),  # nobody active: nowhere to send it
        (False, None, "10.0.0.6:5060", StandbyCalls()),
        (False, "vm-secondary", "10.0.0.7:5060", StandbyCalls()),  # never to itself
    ],
)
def test_what_the_standby_does_with_a_call(
    force: bool, holder: str | None, contact: str, expected: StandbyCalls
) -> None:
    settings = settings_from_spec({"forceFailoverOnInactiveCall": force})
    assert settings.force_failover is force
    assert standby_calls(settings, holder, "vm-secondary", contact) == expected


def test_only_a_member_known_not_to_be_active_takes_replication_writes() -> None:
    assert accepts_replication("vm-secondary", "vm-primary")
    assert accepts_replication("", "vm-primary")  # nobody holds it: the operator copies nothing
    assert not accepts_replication("vm-primary", "vm-primary")  # a stale Job's writes
    assert not accepts_replication(None, "vm-primary")  # not seen yet: it may be the active one
