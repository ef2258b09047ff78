"""A time anyone may write (a report, a restored status) cannot overflow the licence clock."""

from datetime import UTC, datetime

from pairwarden.api import FailoverPairStatus, parse_spec
from pairwarden.engine import MemberObservation, licence_deadline
from pairwarden.protocol import MemberReport


def test_a_contact_at_the_end_of_the_calendar_saturates() -> None:
    spec = parse_spec(
        {
            "members": {"primary": {"podName": "a"}, "secondary": {"podName": "b"}},
            "service": "calls",
            "licensing": {"maxSecondsSinceContact": 315_360_000},
        }
    )
    far = datetime(9999, 12, 31, tzinfo=UTC)
    seen = MemberObservation(report=MemberReport(primary_contact=far))
    deadline, reason = licence_deadline(spec, FailoverPairStatus(), seen)
    assert deadline == datetime.max.replace(tzinfo=UTC)
    assert "after last contact" in reason
