"""The reconciler's two cost rules: which status changes are not worth a write, and when a
pair's reconciler next needs to look."""

from datetime import UTC, datetime, timedelta

from pairwarden.api.models import FailoverPairStatus, parse_spec
from pairwarden.controller.observations import MemberSighting, PairBook
from pairwarden.controller.reconcile import (
    HOUSEKEEPING,
    PairMemory,
    _next_look,
    _routine_only,
    still_quiet,
)
from pairwarden.engine.types import Now
from pairwarden.protocol import HeartbeatSizing, MemberReport

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SPEC = parse_spec({"members": {"primary": {"podName": "a"}, "secondary": {"podName": "b"}},
                   "service": "calls"})  # fmt: skip


def wire(contact: datetime, cpu: int = 5, phase: str = "Healthy") -> dict[str, object]:
    deadline = contact + timedelta(days=60)
    return FailoverPairStatus.model_validate(
        {
            "activeMember": "primary",
            "phase": phase,
            "epoch": 1,
            "members": {"secondary": {"primaryContact": contact.isoformat(), "cpuPercent": cpu}},
            "licensing": {"secondaryDeadline": deadline.isoformat()},
        }
    ).to_wire()


def test_renewal_churn_is_not_written_but_real_changes_are() -> None:
    before = wire(T0)
    assert _routine_only(before, wire(T0 + timedelta(seconds=10), cpu=40), SPEC)
    hundredth = timedelta(days=60) / 100  # of the default contact limit
    assert _routine_only(before, wire(T0 + hundredth - timedelta(seconds=1)), SPEC)
    assert not _routine_only(before, wire(T0 + hundredth), SPEC)  # the backup's resolution
    assert not _routine_only(before, wire(T0, phase="FailedOver"), SPEC)


def test_contact_resolution_shrinks_with_a_short_licence() -> None:
    short = SPEC.model_copy(
        update={"licensing": SPEC.licensing.model_copy(update={"max_seconds_since_contact": 4})}
    )
    assert not _routine_only(wire(T0), wire(T0 + timedelta(seconds=1)), short)


def test_a_healthy_pair_sleeps_until_a_window_could_run_out_not_every_renewal() -> None:
    sizing = HeartbeatSizing.from_spec()  # W = 30, R = 10
    book = PairBook()
    for member in ("primary", "secondary"):
        book.members[member] = MemberSighting(100.0, "t", member, MemberReport(service_up=True))
    status = FailoverPairStatus.model_validate({"activeMember": "primary", "epoch": 1})
    now = Now(101.0, T0)
    wait = _next_look(SPEC, sizing, book, status, PairMemory(), both_up=False, now=now)
    assert 29.0 <= wait <= 29.02 < HOUSEKEEPING  # a loss is possible at 130 s, not before
    now = Now(125.0, T0)
    wait = _next_look(SPEC, sizing, book, status, PairMemory(), both_up=False, now=now)
    assert 5.0 <= wait <= 5.02
    new_pair = FailoverPairStatus()
    assert _next_look(SPEC, sizing, book, new_pair, PairMemory(), False, Now(101.0, T0)) == 10.0


def test_a_dead_member_does_not_keep_its_pair_spinning() -> None:
    sizing = HeartbeatSizing.from_spec()  # W = 30
    book = PairBook()
    book.members["primary"] = MemberSighting(100.0, "t", "p", MemberReport(service_up=True))
    book.members["secondary"] = MemberSighting(190.0, "t", "s", MemberReport(service_up=True))
    status = FailoverPairStatus.model_validate({"activeMember": "secondary", "epoch": 2})
    memory = PairMemory()
    wait = _next_look(SPEC, sizing, book, status, memory, both_up=False, now=Now(200.0, T0))
    assert 19.0 < wait <= 20.02  # the live secondary's deadline, not the dead primary's past one


def test_a_timed_wake_up_costs_a_step_only_when_something_is_due() -> None:
    sizing = HeartbeatSizing.from_spec()
    book = PairBook()
    book.members["primary"] = MemberSighting(100.0, "t", "p", MemberReport(service_up=True))
    status = FailoverPairStatus.model_validate({"activeMember": "primary", "epoch": 1})
    memory = PairMemory()
    assert still_quiet(memory, book, 100.0) is None  # never stepped: step
    _next_look(SPEC, sizing, book, status, memory, both_up=False, now=Now(101.0, T0))
    book.members["primary"].last_seen = 125.0  # renewed while the reconciler slept
    quiet = still_quiet(memory, book, 130.02)
    assert quiet is not None and 0 < quiet <= 1.0  # housekeeping (at 131) is next, not a loss
    assert still_quiet(memory, book, 131.5) is None  # housekeeping is due: step
