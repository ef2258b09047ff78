from datetime import UTC, datetime

from pairwarden.plugin import render_status, status_document
from pairwarden.protocol import MemberReport

NOW = datetime(2026, 11, 25, 13, 0, 30, tzinfo=UTC)


def lease(report: MemberReport, renewed: str) -> dict[str, object]:
    return {"metadata": {"annotations": report.to_annotations()}, "spec": {"renewTime": renewed}}


def test_status_shows_both_members_their_clocks_and_the_last_transition() -> None:
    pair = {
        "metadata": {"namespace": "voice", "name": "vm"},
        "spec": {"paused": False},
        "status": {
            "activeMember": "secondary",
            "phase": "FailedOver",
            "epoch": 2,
            "members": {
                "primary": {"podName": "vm-primary"},
                "secondary": {"podName": "vm-secondary"},
            },
            "licensing": {"secondaryDeadline": "2027-01-24T13:00:00Z"},
            "lastTransition": {
                "time": "2026-11-25T12:59:00Z",
                "from": "primary",
                "to": "secondary",
                "cause": "HeartbeatLost",
                "durationSeconds": 30.4,
            },
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Answering", "message": "ok"}
            ],
        },
    }
    leases = {
        "primary": lease(MemberReport(service_up=False), "2026-11-25T12:58:20Z"),
        "secondary": lease(
            MemberReport(service_up=True, answering=True, cpu_percent=12, calls_in_progress=3),
            "2026-11-25T13:00:28Z",
        ),
    }
    text = render_status(pair, leases, NOW)
    lines = text.splitlines()
    assert (
        "phase FailedOver" in lines[0] and "active secondary" in lines[0] and "epoch 2" in lines[0]
    )
    primary = next(line for line in lines if line.startswith("primary"))
    secondary = next(line for line in lines if line.startswith("secondary"))
    assert "standby" in primary and "down" in primary and "130.0s ago" not in primary
    assert "2m ago" in primary
    assert "active" in secondary and "2.0s ago" in secondary and "yes" in secondary
    assert "12%" in secondary and "until 2027-01-24 13:00Z" in secondary
    assert "primary -> secondary  HeartbeatLost  (30.4s)" in text
    assert "Condition        Ready=True Answering: ok" in text


def test_a_new_pair_without_status_renders() -> None:
    pair = {"metadata": {"namespace": "voice", "name": "vm"}, "spec": {"paused": True}}
    text = render_status(pair, {}, NOW)
    assert "PAUSED" in text and "Last transition  none" in text
    assert text.count("never") == 2


def test_a_renewal_stamped_ahead_of_this_clock_is_never_negative() -> None:
    pair = {"metadata": {"namespace": "voice", "name": "vm"}, "spec": {}, "status": {}}
    ahead = lease(MemberReport(service_up=True), "2026-11-25T13:00:30.040000Z")  # 40 ms ahead
    text = render_status(pair, {"primary": ahead}, NOW)
    primary = next(line for line in text.splitlines() if line.startswith("primary"))
    assert "0.0s ago" in primary and "-0.0s" not in primary


def test_the_yaml_document_is_camel_case_throughout() -> None:
    """`status -o yaml` puts each member's report beside the pair's status: the report's keys
    follow the status's camelCase, so a script reads `dataVersion`, not `data_version`."""
    report = MemberReport(answering=True, epoch=3, data_version="v7", calls_in_progress=2)
    pair = {"metadata": {"namespace": "voice", "name": "vm"}, "status": {"activeMember": "primary"}}
    document = status_document(pair, {"primary": lease(report, "2026-11-25T13:00:29Z")})
    shown = document["members"]["primary"]["report"]
    assert (shown["dataVersion"], shown["callsInProgress"], shown["epoch"]) == ("v7", 2, 3)
    assert not [key for key in shown if "_" in key]
    assert document["members"]["secondary"]["report"]["answering"] is False
