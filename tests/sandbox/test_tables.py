"""Table output as kubectl asks for it: ages from any RFC 3339 time a printer column names."""

from datetime import UTC, datetime

from pairwarden_testbed.sandbox.tables import human_age

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def test_age_of_metadata_and_of_status_times_with_fractions_and_offsets() -> None:
    assert human_age("2026-11-25T11:59:30Z", NOW) == "30s"
    assert human_age("2026-11-25T11:59:30.061762Z", NOW) == "29s"
    assert human_age("2026-11-25T12:55:00+01:00", NOW) == "5m"
    assert human_age("not a time", NOW) == "<invalid>"
    assert human_age(None, NOW) == "<unknown>"
