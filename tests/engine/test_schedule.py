"""The two cost rules, pure: which status changes are worth a write (engine.worth_writing),
and when a pair's reconciler next needs to look (engine.schedule)."""

from datetime import UTC, datetime, timedelta

from pairwarden.api.models import FailoverPairStatus, parse_spec
from pairwarden.engine import worth_writing
from pairwarden.engine.schedule import (
    DEADLINE_MARGIN,
    RESYNC_SECONDS,
    LookInputs,
    failback_window_opens_in,
    next_look,
    resync_in,
    resync_phase,
    still_quiet,
    timers,
)
from pairwarden.engine.types import Now

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SPEC = parse_spec(
    {"members": {"primary": {"podName": "a"}, "secondary": {"podName": "b"}}, "service": "calls"}
)


def status(contact: datetime, cpu: int = 5, phase: str = "Healthy") -> FailoverPairStatus:
    deadline = contact + timedelta(days=60)
    return FailoverPairStatus.model_validate(
        {
            "activeMember": "primary",
            "phase": phase,
            "epoch": 1,
            "members": {"secondary": {"primaryContact": contact.isoformat(), "cpuPercent": cpu}},
            "licensing": {"secondaryDeadline": deadline.isoformat()},
        }
    )


def test_renewal_churn_is_not_written_but_real_changes_are() -> None:
    before = status(T0)
    assert not worth_writing(before, status(T0 + timedelta(seconds=10), cpu=40), SPEC)
    hundredth = timedelta(days=60) / 100  # of the default contact limit
    assert not worth_writing(before, status(T0 + hundredth - timedelta(seconds=1)), SPEC)
    assert worth_writing(before, status(T0 + hundredth), SPEC)  # the backup's resolution
    assert worth_writing(before, status(T0, phase="FailedOver"), SPEC)


def test_a_foreign_holder_or_epoch_in_the_status_is_worth_overwriting() -> None:
    ours = status(T0)
    restored = ours.model_copy(update={"epoch": 99, "active_member": "secondary"})
    assert worth_writing(restored, ours, SPEC)


def test_contact_resolution_shrinks_with_a_short_licence() -> None:
    short = SPEC.model_copy(
        update={"licensing": SPEC.licensing.model_copy(update={"max_seconds_since_contact": 4})}
    )
    assert worth_writing(status(T0), status(T0 + timedelta(seconds=1)), short)


def look(held: FailoverPairStatus, now: Now, due_in: float | None = None) -> LookInputs:
    return LookInputs(spec=SPEC, status=held, now=now, replication_due_in=due_in)


HOLDING = FailoverPairStatus.model_validate({"activeMember": "primary", "epoch": 1})


def test_a_healthy_pair_sleeps_until_a_window_could_run_out_not_every_renewal() -> None:
    # W = 30, R = 10; both members last renewed at 100 s.
    wait = next_look(look(HOLDING, Now(101.0, T0)), [100.0, 100.0])
    assert 29.0 <= wait <= 29.02 < RESYNC_SECONDS  # a loss is possible at 130 s, not before
    wait = next_look(look(HOLDING, Now(125.0, T0)), [100.0, 100.0])
    assert 5.0 <= wait <= 5.02
    assert next_look(look(FailoverPairStatus(), Now(101.0, T0)), [100.0, 100.0]) == 10.0


def test_nothing_due_still_resyncs_within_the_period() -> None:
    """A drift nobody announces (a foreign write to the Service) is looked at within
    RESYNC_SECONDS, however quiet the pair is."""
    assert next_look(look(HOLDING, Now(1000.0, T0)), []) == RESYNC_SECONDS
    assert timers(look(HOLDING, Now(1000.0, T0), due_in=900.0)) == RESYNC_SECONDS


def test_a_quiet_pair_wakes_for_its_network_policy_retry() -> None:
    """A pair applied before its Service: the policy is tried again in seconds, and the
    reconciler must be awake then, not at its resync."""
    retry = LookInputs(
        spec=SPEC, status=HOLDING, now=Now(1000.0, T0), replication_due_in=None, policy_due_in=5.0
    )
    assert timers(retry) == 5.0


def test_a_dead_member_does_not_keep_its_pair_spinning() -> None:
    held = FailoverPairStatus.model_validate({"activeMember": "secondary", "epoch": 2})
    wait = next_look(look(held, Now(200.0, T0)), [100.0, 190.0])
    assert 19.0 < wait <= 20.02  # the live secondary's deadline, not the dead primary's past one


def test_a_pending_handoff_is_looked_at_each_renewal_period_and_at_its_expiry() -> None:
    handing = FailoverPairStatus.model_validate(
        {
            "activeMember": "none",
            "epoch": 2,
            "handoff": {
                "from": "primary",
                "to": "secondary",
                "cause": "ManualFailover",
                "epoch": 2,
                "since": (T0 - timedelta(seconds=25)).isoformat(),
            },
        }
    )
    assert 5.0 <= timers(look(handing, Now(0.0, T0))) <= 5.02  # expires 30 s after the revoke


def test_a_timed_wake_up_costs_a_step_only_when_something_is_due() -> None:
    assert still_quiet(None, None, [100.0], 0.0, 100.0) is None  # never stepped: step
    timers_at = 101.0 + timers(look(HOLDING, Now(101.0, T0)))  # the resync, at 131 s
    renewed = [125.0]  # renewed while the reconciler slept
    quiet = still_quiet(timers_at, 30.0, renewed, 101.0, 130.02)
    assert quiet is not None and 0 < quiet <= 1.0  # the resync (at 131) is next, not a loss
    assert still_quiet(timers_at, 30.0, renewed, 101.0, 131.5) is None  # resync due: step


def scheduled(start: str, end: str, zone: str = "UTC") -> LookInputs:
    window = {"start": start, "end": end, "timeZone": zone}
    spec = parse_spec(
        {**SPEC.model_dump(by_alias=True), "failback": {"type": "Scheduled", "window": window}}
    )
    return LookInputs(spec=spec, status=SECONDARY, now=Now(0.0, T0), replication_due_in=None)


SECONDARY = FailoverPairStatus.model_validate({"activeMember": "secondary", "epoch": 2})


def test_the_failback_window_opening_is_a_timer_while_the_secondary_holds() -> None:
    """Failback "when the time scheduled arrives": a quiet pair wakes at the opening, not at
    its next resync (found replaying issue 16: 10 s late, up to RESYNC_SECONDS)."""
    # T0 is 12:00 UTC; 45 s later the opening is 15 s away, sooner than the resync.
    soon = scheduled("12:01", "12:00")  # closed for this minute, opens at 12:01
    assert failback_window_opens_in(soon.spec, SECONDARY, soon.now) == 60.0
    assert timers(soon) == RESYNC_SECONDS  # 60 s away: the resync comes first
    inside = LookInputs(
        spec=soon.spec,
        status=SECONDARY,
        now=Now(0.0, T0 + timedelta(seconds=45)),
        replication_due_in=None,
    )
    assert timers(inside) == 15.0 + DEADLINE_MARGIN
    # Open now (opened at 11:30): the next opening is tomorrow; nothing earlier is due.
    open_now = scheduled("11:30", "13:00")
    assert failback_window_opens_in(open_now.spec, SECONDARY, open_now.now) == 23.5 * 3600
    # On the pair's own clock: 12:00 UTC is 13:00 in Paris in November.
    paris = scheduled("13:01", "14:00", "Europe/Paris")
    assert failback_window_opens_in(paris.spec, SECONDARY, paris.now) == 60.0
    # The primary holds, or failback is Manual: no such timer.
    assert failback_window_opens_in(soon.spec, HOLDING, soon.now) is None
    assert failback_window_opens_in(SPEC, SECONDARY, soon.now) is None


def test_resyncs_are_spread_over_the_period_by_the_pairs_names() -> None:
    """Pairs started together (an operator start) resynced together for good, every
    RESYNC_SECONDS in one burst of reads. Each pair has its own moment in the period, the
    same in every process, and a thousand names cover the period evenly."""
    phases = [resync_phase("scale", f"p{i:04d}") for i in range(1000)]
    assert all(0.0 <= p < RESYNC_SECONDS for p in phases)
    assert resync_phase("scale", "p0001") == resync_phase("scale", "p0001")
    tenths = [0] * 10
    for p in phases:
        tenths[int(p / RESYNC_SECONDS * 10)] += 1
    assert max(tenths) < 130 and min(tenths) > 70  # 100 each, give or take


def test_a_pair_resyncs_at_its_own_moment_never_later_than_a_period() -> None:
    phased = LookInputs(
        spec=SPEC, status=HOLDING, now=Now(1000.0, T0), replication_due_in=None, resync_phase=5.0
    )
    # its moments are 5 + 30 k s: at 1000 s the last was 995, the next is 1025
    assert timers(phased) == 25.0 == resync_in(1000.0, 5.0)
    # a step at its moment waits a full period; one just after it, just under a period
    assert resync_in(995.0, 5.0) == RESYNC_SECONDS
    assert 0 < resync_in(995.5, 5.0) < RESYNC_SECONDS
    for now in (0.0, 3.3, 17.0, 29.99, 1e6 + 0.1):
        assert 0 < resync_in(now, 12.0) <= RESYNC_SECONDS
        assert (now + resync_in(now, 12.0) - 12.0) % RESYNC_SECONDS < 1e-6 or (
            RESYNC_SECONDS - (now + resync_in(now, 12.0) - 12.0) % RESYNC_SECONDS < 1e-6
        )
    assert resync_in(1000.0, None) == RESYNC_SECONDS  # no phase: a full period, as before
