"""The replication report's one codec: what `pairwarden replicate` leaves as its termination
message and the operator reads back from the pod's status (protocol.ReplicationReport)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pairwarden.protocol import TERMINATION_MESSAGE_LIMIT, ReplicationReport


def report(**fields: Any) -> ReplicationReport:
    return ReplicationReport("http://10.0.0.1:8080/replication", "http://10.0.0.2:8080/r", **fields)


def test_a_report_survives_the_round_trip() -> None:
    sent = report(ok=True, files=9, bytes=1234, db_copied=True, db_bytes=77, db_version="v3")
    sent.differing_settings = ["phoneLanguage"]
    assert ReplicationReport.from_message(sent.to_message()) == sent


def test_a_report_with_many_skipped_paths_still_fits_the_kubelets_limit() -> None:
    """The kubelet keeps 4096 bytes of the message: a longer one would lose the whole report.
    Skipped paths go first, and how many were left out is said."""
    long = [f"Stream Files/{i:06d}-{'x' * 60}.wav" for i in range(5000)]
    sent = report(ok=False, files=3, skipped=long, error="e" * 10_000)
    message = sent.to_message()
    assert len(message.encode()) <= TERMINATION_MESSAGE_LIMIT
    got = ReplicationReport.from_message(message)
    assert got is not None and got.files == 3 and not got.ok
    assert len(got.skipped) + got.skipped_omitted == 5000
    assert got.skipped == long[: len(got.skipped)]
    assert got.error is not None and got.error.startswith("eee")


def test_the_report_is_found_in_a_log_tail() -> None:
    """FallbackToLogsOnError: a failed run that wrote no file leaves its log's tail, whose
    last report line counts; other JSON on the way is not a report."""
    line = report(ok=False, error="target refused: 503").to_message()
    tail = f'2026-01-05 12:00:00 pairwarden.replicate copying\n{{"other": 1}}\n{line}\n[1, 2]\n'
    got = ReplicationReport.from_message(tail)
    assert got is not None and got.error == "target refused: 503"


def test_no_report_where_there_is_none() -> None:
    wrong = ['{"source": 1, "target": "b", "ok": true}', '{"source": "a", "target": "b"}']
    for message in (None, "", "Error: killed\n", "[]", "{}", "[" * 100_000, *wrong):
        assert ReplicationReport.from_message(message) is None


def test_foreign_field_types_read_as_defaults() -> None:
    hostile: dict[str, Any] = {"source": "a", "target": "b", "ok": True, "files": -3}
    hostile.update(bytes="many", skipped=[1, "x", None], duration_seconds="NaN", db_copied=1)
    hostile.update(differing_settings="all", error=["no"], db_bytes=True)
    got = ReplicationReport.from_message(json.dumps(hostile))
    assert got == ReplicationReport("a", "b", ok=True, skipped=["x"])


@given(
    st.builds(
        report,
        ok=st.booleans(),
        files=st.integers(0, 10**9),
        skipped=st.lists(st.text(max_size=300), max_size=80),
        error=st.none() | st.text(max_size=6000),
        differing_settings=st.none() | st.lists(st.text(max_size=100), max_size=50),
    )
)
def test_any_report_fits_and_keeps_its_counts(sent: ReplicationReport) -> None:
    message = sent.to_message()
    assert len(message.encode()) <= TERMINATION_MESSAGE_LIMIT
    got = ReplicationReport.from_message(message)
    assert got is not None
    assert (got.ok, got.files, got.source) == (sent.ok, sent.files, sent.source)
    assert len(got.skipped) + got.skipped_omitted == len(sent.skipped)
