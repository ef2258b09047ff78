"""The relay (docs/protocol.md, "The standby's heartbeat rides the holder's renewal"): the pure
rule deciding when a member writes its own Lease, and the codec of what the holder relays."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pairwarden.agent.core import (
    RelayInputs,
    hello_period,
    must_renew_own_lease,
    own_renewal_due,
    relay_fits,
    relay_limit,
    relayed_since,
    report_news,
    settings_from_spec,
)
from pairwarden.agent.peer import PeerLink, PeerMessage, PeerRefused
from pairwarden.clock import ManualClock
from pairwarden.protocol import HeartbeatSizing, MemberReport, heard_age_ms

SIZING = settings_from_spec(None).sizing  # W = 30 s, R = 10 s
R = SIZING.renew_period

# A standby whose relay works: it renewed its own Lease at 0, hears the API server, its last
# hello was acknowledged, and the operator saw it relayed at 95 (now is 100).
RELAYING = RelayInputs(
    pod="vm-secondary",
    holder="vm-primary",
    linked=True,
    last_own_sent=0.0,
    api_heard=99.0,
    relayed_at=95.0,
    hello_failed_since=None,
    urgent=False,
    report_changed=False,
)
NOW = 100.0


@pytest.mark.parametrize(
    ("change", "renews", "why"),
    [
        ({}, False, None),
        ({"last_own_sent": None}, True, "never renewed"),
        ({"holder": ""}, True, "nobody holds the role"),
        ({"holder": None}, True, "nobody holds the role"),
        ({"holder": "vm-secondary"}, True, "the holder renews its own Lease"),
        ({"linked": False}, True, "no peer link to relay through"),
        ({"urgent": True}, True, "a starred report field changed"),
        ({"api_heard": 100.0 - 2 * R - 0.1}, True, "its own requests to the API server fail"),
        ({"api_heard": None}, True, "its own requests to the API server fail"),
        ({"hello_failed_since": 99.5}, True, "the hello to the holder failed"),
        ({"relayed_at": NOW - relay_limit(SIZING)}, True, "the relayed sighting is too old"),
        ({"relayed_at": None}, True, "the relayed sighting is too old"),
        ({"report_changed": True}, False, None),
        ({"report_changed": True, "report_refresh": 100.0}, True, "report fields changed"),
    ],
)
def test_when_the_standby_writes_its_own_lease(
    change: dict[str, object], renews: bool, why: str | None
) -> None:
    inputs = replace(RELAYING, **change)  # type: ignore[arg-type]
    assert must_renew_own_lease(inputs, SIZING, NOW) == (why if renews else None)


def test_a_failing_hello_renews_at_once_then_every_period() -> None:
    failing = replace(RELAYING, hello_failed_since=99.0)
    assert own_renewal_due(failing, SIZING, NOW) == (99.0, "the hello to the holder failed")
    renewed = replace(failing, last_own_sent=99.2)
    assert own_renewal_due(renewed, SIZING, NOW)[0] == 99.2 + R


def test_without_a_relay_every_member_renews_every_period_as_before() -> None:
    for holder in ("vm-secondary", ""):
        inputs = replace(RELAYING, holder=holder, last_own_sent=95.0)
        assert own_renewal_due(inputs, SIZING, NOW)[0] == 95.0 + R
    short = HeartbeatSizing.from_spec(interval_ms=1000, missed=2, renewals_per_window=2)
    assert not relay_fits(short)
    assert must_renew_own_lease(replace(RELAYING, last_own_sent=80.0), short, NOW) is not None


def test_the_relay_is_used_at_the_default_sizing_and_the_e2e_windows() -> None:
    assert relay_fits(SIZING)
    for window_ms in (2000, 3000, 6000, 18000):
        assert relay_fits(HeartbeatSizing.from_spec(interval_ms=window_ms, missed=1))
    # At W = 1 s a request's own floor (0.5 s) leaves no room: both members renew.
    assert not relay_fits(HeartbeatSizing.from_spec(interval_ms=1000, missed=1))


@given(
    window=st.floats(min_value=2.0, max_value=600.0),
    per_window=st.integers(min_value=3, max_value=30),
    holder_gap=st.floats(min_value=0.0, max_value=0.24),
    heard=st.floats(min_value=0.0, max_value=1.0),
    since_ack=st.floats(min_value=0.0, max_value=1.0),
)
def test_a_healthy_relay_never_makes_the_standby_write(
    window: float, per_window: int, holder_gap: float, heard: float, since_ack: float
) -> None:
    """The holder renews every R plus up to R/4 of latency; the hello it relayed was heard at
    most a hello period before; the standby's last acknowledgement is at most a hello period
    old. Then the standby's reckoning never reaches `relay_limit`: it writes nothing."""
    sizing = HeartbeatSizing(window=window, renew_period=window / per_window)
    if not relay_fits(sizing):
        return
    period, hello = sizing.renew_period, hello_period(sizing)
    sent = 1000.0
    renewed_ms = round(period * (1 + holder_gap) * 1000)
    heard_ms = round(hello * heard * 1000)
    at = relayed_since(sent, renewed_ms, heard_ms)
    assert at is not None
    now = sent + hello * since_ack
    inputs = replace(RELAYING, relayed_at=at, api_heard=now, last_own_sent=0.0)
    assert must_renew_own_lease(inputs, sizing, now) is None


@given(
    window=st.floats(min_value=2.0, max_value=600.0),
    per_window=st.integers(min_value=3, max_value=30),
    relayed_at=st.floats(min_value=0.0, max_value=100.0),
)
def test_the_standby_is_written_or_relayed_well_inside_the_window(
    window: float, per_window: int, relayed_at: float
) -> None:
    """Whatever the holder does, the standby's own renewal falls due no later than
    `relay_limit` after the last sighting the operator may have: with the request's own time
    that is at least R/4 inside W, so a live standby is never judged lost."""
    sizing = HeartbeatSizing(window=window, renew_period=window / per_window)
    if not relay_fits(sizing):
        return
    inputs = replace(RELAYING, relayed_at=relayed_at, last_own_sent=0.0, api_heard=None)
    due, _ = own_renewal_due(replace(inputs, api_heard=relayed_at), sizing, relayed_at)
    seen = max(relayed_at, 0.0)
    assert due - seen + sizing.request_timeout <= sizing.window - sizing.renew_period / 4


def test_relayed_since_needs_a_relay() -> None:
    assert relayed_since(50.0, 4000, 1500) == 44.5
    assert relayed_since(50.0, -1, 0) is None
    assert relayed_since(50.0, 0, -1) is None


def test_report_news_urgent_and_other_changes() -> None:
    base = MemberReport(service_up=True, cpu_percent=3)
    assert report_news(base, None) == (True, True)
    assert report_news(replace(base, peer_heard_ms=900), base) == (False, False)
    assert report_news(replace(base, cpu_percent=40), base) == (False, True)
    assert report_news(replace(base, service_up=False), base) == (True, True)
    contact = datetime(2026, 12, 7, tzinfo=UTC)
    assert report_news(replace(base, primary_contact=contact), base)[0]  # first contact
    later = replace(base, primary_contact=contact.replace(hour=1))
    assert report_news(later, replace(base, primary_contact=contact)) == (False, True)


# ---- codec: the relayed age on the Lease, the hello and its acknowledgement on the link ----


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1500", 1500),
        ("0", 0),
        ("", None),
        ("-5", None),
        ("1.5", None),
        ("abc", None),
        ("٣", None),  # a digit, but not ASCII
        ("86400001", None),
        ("9" * 40, None),
    ],
)
def test_the_relayed_age_reads_defensively(text: str, value: int | None) -> None:
    assert heard_age_ms(text) == value
    annotations = MemberReport().to_annotations()
    annotations["pairwarden.io/peer-heard"] = text
    assert MemberReport.from_annotations(annotations).peer_heard_ms == value


def test_the_relayed_age_round_trips_and_is_not_urgent() -> None:
    report = MemberReport(peer_heard_ms=1234)
    assert report.to_annotations()["pairwarden.io/peer-heard"] == "1234"
    assert MemberReport.from_annotations(report.to_annotations()) == report
    assert MemberReport().to_annotations()["pairwarden.io/peer-heard"] == ""
    assert not report.urgent_change(MemberReport())


class Loopback:
    def __init__(self) -> None:
        self.other: PeerLink | None = None
        self.answer: tuple[int, int] = (-1, -1)

    async def send(self, contact: str, body: bytes) -> bytes | None:
        assert self.other is not None
        hello = self.other.receive(body)
        return self.other.ack(hello, 3, *self.answer)


def links() -> tuple[PeerLink, PeerLink, Loopback]:
    clock = ManualClock()
    wire = Loopback()
    standby = PeerLink("vm", "secondary", "vm-secondary", lambda: b"k", clock, wire)
    holder = PeerLink("vm", "primary", "vm-primary", lambda: b"k", clock, wire)
    wire.other = holder
    return standby, holder, wire


async def test_a_hello_is_acknowledged_with_what_the_holder_relayed() -> None:
    standby, _, wire = links()
    wire.answer = (4000, 1500)
    ack = await standby.hello("primary:8083", 2)
    assert ack is not None and (ack.renewed_ms, ack.heard_ms, ack.epoch) == (4000, 1500, 3)
    wire.answer = (-1, -1)
    ack = await standby.hello("primary:8083", 2)
    assert ack is not None and (ack.renewed_ms, ack.heard_ms) == (-1, -1)


def test_a_message_without_a_relay_carries_no_relay_fields() -> None:
    """An agent of the previous release refuses unknown fields: a reply to its ask must not
    carry them, or failsafe breaks during a rolling upgrade."""
    _, holder, _ = links()
    ask = holder.message("ask", 1)
    body = ask.encode(b"k")
    assert b"renewed_ms" not in body and b"heard_ms" not in body
    assert b"renewed_ms" in replace(ask, kind="reply", renewed_ms=5).encode(b"k")


def test_hostile_relay_fields_are_refused() -> None:
    standby, holder, _ = links()
    forged = replace(standby.message("hello", 1), renewed_ms=True)  # type: ignore[arg-type]
    with pytest.raises(PeerRefused):
        holder.receive(forged.encode(b"k"))
    wrong_key = standby.message("hello", 1).encode(b"not the key")
    with pytest.raises(PeerRefused):
        holder.receive(wrong_key)
    assert PeerMessage.decode(standby.message("hello", 1).encode(b"k"), b"k").kind == "hello"


@given(
    window=st.floats(min_value=2.0, max_value=3600.0),
    per_window=st.integers(min_value=3, max_value=30),
)
def test_the_relay_fits_every_window_of_two_seconds_and_three_renewals(
    window: float, per_window: int
) -> None:
    """What docs/protocol.md promises: the relay is on whenever W >= 2 s and
    renewalsPerWindow >= 3 (the CRD allows renewalsPerWindow up to missedBeforeFailover)."""
    assert relay_fits(HeartbeatSizing(window=window, renew_period=window / per_window))
