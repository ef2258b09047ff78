from datetime import UTC, datetime

import pytest

from pairwarden.protocol import HeartbeatSizing, MemberReport, PeerGone, call_contact, peer_gone


def test_default_sizing_meets_the_write_budget_and_the_window() -> None:
    sizing = HeartbeatSizing.from_spec()
    assert sizing.window == 30.0
    assert sizing.renew_period == 10.0
    assert 2 / sizing.renew_period <= 0.2  # two members, writes per second per pair
    assert sizing.lease_duration_seconds == 30
    assert sizing.renew_period < sizing.fence_after < sizing.window


def test_reference_semantics_when_renewing_every_interval() -> None:
    sizing = HeartbeatSizing.from_spec(1000, 30, renewals_per_window=30)
    assert sizing.renew_period == 1.0


def test_report_round_trips_through_annotations() -> None:
    report = MemberReport(
        agent_running=False,
        service_up=True,
        answering=True,
        cpu_percent=97,
        cpu_excessive=True,
        calls_in_progress=3,
        inactive_calls=7,
        started=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        primary_contact=None,
        epoch=4,
        settings_digest="abc",
        call_contact="10.0.0.7:5060",
        peer_contact="10.0.0.7:8083",
        failsafe_since=datetime(2026, 11, 25, 12, 1, tzinfo=UTC),
        failsafe_ended=datetime(2026, 11, 25, 12, 2, tzinfo=UTC),
    )
    annotations = report.to_annotations()
    assert annotations["pairwarden.io/agent"] == "stopping"
    assert annotations["pairwarden.io/failsafe"] == "2026-11-25T12:01:00Z"
    assert annotations["pairwarden.io/started"] == "2026-11-25T12:00:00Z"
    assert MemberReport.from_annotations(annotations) == report


def test_garbage_annotations_read_as_safe_defaults() -> None:
    report = MemberReport.from_annotations(
        {"pairwarden.io/calls": "many", "pairwarden.io/started": "x"}
    )
    assert report.calls_in_progress == 0 and report.started is None
    assert report.service_up is False  # never assume a service is up without being told


def test_urgent_changes_are_the_ones_that_cannot_wait_for_a_renewal() -> None:
    base = MemberReport(service_up=True)
    assert MemberReport(service_up=False).urgent_change(base)
    assert not MemberReport(service_up=True, cpu_percent=50).urgent_change(base)
    # a member's settings changed: drift is reported within a renewal, not at the resync
    assert MemberReport(service_up=True, settings_digest="a1").urgent_change(base)
    assert not MemberReport(service_up=True, data_version="v2").urgent_change(base)
    # the agent heard a new active Lease (a revoke's acknowledgement): the operator may grant
    assert MemberReport(service_up=True, epoch=2).urgent_change(base)


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("10.0.0.7:5060", "10.0.0.7:5060"),
        ("vm-primary.voice.svc.cluster.local:5060", "vm-primary.voice.svc.cluster.local:5060"),
        ("[fd00::7]:5060", "[fd00::7]:5060"),
        ("10.0.0.7:05060", "10.0.0.7:5060"),
        ("10.0.0.7", ""),  # no port
        ("10.0.0.7:0", ""),
        ("10.0.0.7:65536", ""),
        ("10.0.0.7:5060\r\nX-Evil: 1", ""),  # it ends up in a SIP header
        ("evil;maddr=1.2.3.4:5060", ""),
        ("sip:a@b:5060", ""),
        ("[not-v6]:5060", ""),
        ("fd00::7:5060", ""),  # IPv6 unbracketed
        ("a:\u00b2", ""),  # a digit that is not ASCII
        ("-bad-.example:5060", ""),
        ("", ""),
    ],
)
def test_a_call_contact_is_host_and_port_or_nothing(text: str, read: str) -> None:
    """A contact crosses two agents and the operator into a SIP Contact header: what is not
    plainly host:port is dropped, wherever it was written."""
    assert call_contact(text) == read
    report = MemberReport.from_annotations({"pairwarden.io/call-contact": text})
    assert report.call_contact == read


# ---- the standby's claim that the holder's processes are gone (protocol.PeerGone) ---------


def test_the_claim_round_trips_and_is_urgent() -> None:
    seen = datetime(2026, 12, 7, 21, 0, 0, 250000, tzinfo=UTC)
    claim = PeerGone(4, "vm-primary-0", "10.244.0.7", seen)
    report = MemberReport(peer_gone=claim)
    annotations = report.to_annotations()
    assert annotations["pairwarden.io/peer-gone"] == "4 vm-primary-0 10.244.0.7 " + (
        "2026-12-07T21:00:00.250000Z"
    )
    assert MemberReport.from_annotations(annotations).peer_gone == claim
    assert report.urgent_change(MemberReport())
    assert MemberReport().to_annotations()["pairwarden.io/peer-gone"] == ""
    assert peer_gone("4 vm-0 fd00::7") == PeerGone(4, "vm-0", "fd00::7")


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "4 vm-0",  # no address
        "-1 vm-0 10.0.0.7",  # not an epoch
        "4.0 vm-0 10.0.0.7",
        "x vm-0 10.0.0.7",
        "4 Vm_0 10.0.0.7",  # not a pod name
        "4 vm-0 vm.example",  # a name, not an address: which pod is that?
        "4 vm-0 10.0.0.7 2026-12-07T21:00:00Z extra",
        "4  vm-0 10.0.0.7",
        "4 vm-0 10.0.0.7\r\nX: y",
        "9" * 19 + " vm-0 10.0.0.7",  # beyond any epoch
    ],
)
def test_a_malformed_claim_is_no_claim(text: str | None) -> None:
    """A claim moves a role: anything but what an agent writes (a foreign writer's junk) is
    read as none."""
    assert peer_gone(text) is None
    assert MemberReport.from_annotations({"pairwarden.io/peer-gone": text or ""}).peer_gone is None
