"""The reconciler's two cost rules: which status changes are not worth a write, and when a
pair's reconciler next needs to look."""

from datetime import UTC, datetime, timedelta

from pairwarden.api.models import FailoverPairStatus, parse_spec
from pairwarden.controller.observations import MemberSighting, PairBook
from pairwarden.controller.reconcile import HOUSEKEEPING, PairMemory, _next_look, _routine_only
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
    assert not _routine_only(before, wire(T0 + timedelta(seconds=301)), SPEC)  # resolution
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
