"""The SIP front end in process, driven by the built-in caller (real UDP and RTP sockets):
answering, refusing, demotion with a call in progress, redirects, CANCEL, the UMR queue,
MWI, and `CallLoad` across a demotion."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import wave
from pathlib import Path

from pairwarden_testbed import sipcaller
from pairwarden_testbed.voicemail import sip

from .conftest import Member, MwiListener


def wav_frames(path: Path) -> int:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1)
        return w.getnframes()


async def call(member: Member, ms: int, **kw: object) -> sipcaller.CallOutcome:
    return await asyncio.to_thread(sipcaller.call_through, member.address, ms, **kw)  # type: ignore[arg-type]


async def test_standby_refuses_with_503_and_counts_inactive_calls(member: Member) -> None:
    outcome = await call(member, 100)
    assert (outcome.result, outcome.code) == ("refused", 503)
    status = await member.status()
    assert status["inactiveCalls"] == 1 and status["callsInProgress"] == 0
    assert status["sipDialogs"] == 0 and status["refused"] == 1


async def test_active_answers_records_a_wav_and_sends_mwi(member: Member, mwi: MwiListener) -> None:
    assert (await member.post("/role", {"active": True, "epoch": 1, "validForMs": 60_000}))[
        0
    ] == 200
    outcome = await call(member, 600, mailbox="2001")
    assert (outcome.result, outcome.code, outcome.bye_code) == ("answered", 200, 200)
    assert outcome.pod == "vm-primary" and outcome.rtp_packets == 30
    await member.wait_for("the message", lambda: member.store.count("2001") == 1)
    assert wav_frames(member.store.messages("2001")[0]) == 600 * 8
    notify = (await mwi.wait(1))[0]
    assert notify.get("Event") == "message-summary"
    assert notify.get("Content-Type") == "application/simple-message-summary"
    assert sip.parse_message_summary(notify.body) == (True, 1, 0)
    assert b"Messages-Waiting: yes\r\n" in notify.body and b"Voice-Message: 1/0\r\n" in notify.body
    second = await call(member, 100, mailbox="2001")
    assert second.answered
    assert sip.parse_message_summary((await mwi.wait(2))[1].body) == (True, 2, 0)
    await member.wait_for("the MWI answers counted", lambda: member.server.stats["mwiAcked"] == 2)


async def test_mwi_goes_to_the_callers_from_uri_without_a_target(member: Member) -> None:
    member.server.mwi_target = None
    member.core.set_role(True, 1)
    outcome = await call(member, 200, mwi_wait=3.0)
    assert outcome.answered and outcome.mwi == (True, 1, 0)


async def test_demotion_lets_the_call_in_progress_finish(member: Member) -> None:
    member.core.set_role(True, 1)
    long_call = asyncio.create_task(call(member, 1000, mailbox="3000"))
    await member.wait_for("the call", lambda: member.core.calls_in_progress == 1)
    assert (await member.status())["callsInProgress"] == 1
    assert (await member.post("/role", {"active": False, "epoch": 2, "validForMs": 60_000}))[
        0
    ] == 200
    refused = await call(member, 100)
    assert (refused.result, refused.code) == ("refused", 503)
    outcome = await long_call
    assert outcome.answered and outcome.rtp_packets == 50
    await member.wait_for("the message", lambda: member.store.count("3000") == 1)
    assert wav_frames(member.store.messages("3000")[0]) == 8000
    status = await member.status()
    assert status["callsInProgress"] == 0 and status["inactiveCalls"] == 1


async def test_standby_redirects_when_told_the_active_contact(member: Member) -> None:
    body = {"active": False, "epoch": 3, "validForMs": 0, "activeContact": "10.1.2.3:5060"}
    assert (await member.post("/role", body))[0] == 200
    outcome = await call(member, 100, mailbox="1000")
    assert (outcome.result, outcome.code) == ("refused", 302)
    assert outcome.redirect == "sip:1000@10.1.2.3:5060"
    assert (await member.status())["inactiveCalls"] == 1


async def test_force_failover_holds_the_call_until_the_member_is_active(member: Member) -> None:
    """The reference's inactive secondary answers the call that causes failover: it rings
    while the order to become active comes, then answers that same call."""
    body = {"active": False, "epoch": 3, "validForMs": 0, "holdMs": 10_000}
    assert (await member.post("/role", body))[0] == 200
    held = asyncio.create_task(call(member, 200, mailbox="1000", timeout=15.0))
    await member.wait_for("the call held", lambda: member.server.stats["held"] == 1)
    assert (await member.status())["inactiveCalls"] == 1  # what makes the operator fail over
    assert not held.done()
    promote = {"active": True, "epoch": 4, "validForMs": 60_000, "holdMs": 10_000}
    assert (await member.post("/role", promote))[0] == 200
    outcome = await held
    assert (outcome.result, outcome.code, outcome.bye_code) == ("answered", 200, 200)
    status = await member.status()
    assert status["answeredCalls"] == 1 and status["refused"] == 0


async def test_a_held_call_is_refused_when_the_member_stays_standby(member: Member) -> None:
    body = {"active": False, "epoch": 3, "validForMs": 0, "holdMs": 200}
    assert (await member.post("/role", body))[0] == 200
    outcome = await call(member, 100, timeout=10.0)
    assert (outcome.result, outcome.code) == ("refused", 503)
    assert member.server.stats["held"] == 1 and member.core.calls_in_progress == 0


async def test_a_held_call_can_be_cancelled(member: Member) -> None:
    body = {"active": False, "epoch": 3, "validForMs": 0, "holdMs": 30_000}
    assert (await member.post("/role", body))[0] == 200

    def ring_then_cancel() -> list[int]:
        offer = sip.build_sdp("127.0.0.1", 9, 1)
        sock, invite = _raw(member, "INVITE", call_id="held-1", body=offer)
        with sock:
            seen = [_next(sock).status, _next(sock).status]  # 100, 180
            sock.sendto(invite.encode(), member.address)  # a retransmission: rings again
            seen.append(_next(sock).status)
            cancel = sip.request(
                "CANCEL", invite.uri, via_host="127.0.0.1", via_port=sock.getsockname()[1],
                from_=invite.header("From"), to=invite.header("To"), call_id="held-1",
                cseq=1, branch=invite.branch,
            )  # fmt: skip
            sock.sendto(cancel.encode(), member.address)
            replies = {(m.cseq[1], m.status) for m in (_next(sock), _next(sock))}
            assert replies == {("CANCEL", 200), ("INVITE", 487)}
            return seen

    assert await asyncio.to_thread(ring_then_cancel) == [100, 180, 180]
    status = await member.status()
    assert status["inactiveCalls"] == 1  # the retransmission is the same call
    assert status["answeredCalls"] == 0 and status["refused"] == 0


async def test_role_orders_with_a_bad_contact_or_hold_are_refused(member: Member) -> None:
    base = {"active": False, "epoch": 3, "validForMs": 0}
    for bad in (
        {"activeContact": "10.0.0.1:5060\r\nX-Evil: 1"},
        {"activeContact": "10.0.0.1"},
        {"holdMs": True},
        {"holdMs": -1},
        {"holdMs": 10_000_000},
    ):
        status, reply = await member.post("/role", {**base, **bad})
        assert status == 400, (bad, reply)
    assert member.core.redirect is None and member.core.hold_for == 0


def _raw(
    member: Member, method: str, *, call_id: str = "raw-1", to_tag: str = "", body: bytes = b""
) -> tuple[socket.socket, sip.SipMessage]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    port = sock.getsockname()[1]
    msg = sip.request(
        method, f"sip:1000@127.0.0.1:{member.server.port}", via_host="127.0.0.1", via_port=port,
        from_=f"<sip:raw@127.0.0.1:{port}>;tag=r1",
        to="<sip:1000@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        call_id=call_id, cseq=1,
        headers=[("Contact", f"<sip:raw@127.0.0.1:{port}>")], body=body,
    )  # fmt: skip
    sock.sendto(msg.encode(), member.address)
    return sock, msg


def _next(sock: socket.socket) -> sip.SipMessage:
    return sip.parse(sock.recvfrom(65535)[0])


async def test_options_unknown_methods_and_stray_bye(member: Member) -> None:
    def exchange(method: str, **kw: str) -> int:
        sock, _ = _raw(member, method, **kw)
        with sock:
            return _next(sock).status

    assert await asyncio.to_thread(exchange, "OPTIONS") == 503  # standby: not the one to use
    member.core.set_role(True, 1)
    assert await asyncio.to_thread(exchange, "OPTIONS") == 200
    assert await asyncio.to_thread(exchange, "REGISTER") == 405
    assert await asyncio.to_thread(exchange, "BYE", call_id="nope", to_tag="x") == 481
    assert (await member.status())["inactiveCalls"] == 0  # none of these is a call


async def test_cancel_while_ringing_ends_the_invite_with_487(member: Member) -> None:
    member.core.set_role(True, 1)
    member.server.answer_delay = 5.0

    def ring_then_cancel() -> list[int]:
        offer = sip.build_sdp("127.0.0.1", 9, 1)
        sock, invite = _raw(member, "INVITE", call_id="cancel-1", body=offer)
        with sock:
            seen = [_next(sock).status, _next(sock).status]  # 100, 180
            cancel = sip.request(
                "CANCEL", invite.uri, via_host="127.0.0.1", via_port=sock.getsockname()[1],
                from_=invite.header("From"), to=invite.header("To"), call_id="cancel-1",
                cseq=1, branch=invite.branch,
            )  # fmt: skip
            sock.sendto(cancel.encode(), member.address)
            replies = {(m.cseq[1], m.status) for m in (_next(sock), _next(sock))}
            assert replies == {("CANCEL", 200), ("INVITE", 487)}
            return seen

    assert await asyncio.to_thread(ring_then_cancel) == [100, 180]
    await member.wait_for("no call", lambda: member.core.calls_in_progress == 0)


async def test_bad_offer_is_488_and_malformed_is_400(member: Member) -> None:
    member.core.set_role(True, 1)

    def bad() -> tuple[int, int]:
        sock, _ = _raw(member, "INVITE", body=b"v=0\r\nm=audio 4000 RTP/AVP 8\r\nc=IN IP4 h\r\n")
        with sock:
            no_pcmu = _next(sock).status
            broken = (
                b"INVITE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                b"From: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\nCall-ID: b\r\nCSeq: 1 BYE\r\n\r\n"
            )
            sock.sendto(broken, member.address)
            return no_pcmu, _next(sock).status

    assert await asyncio.to_thread(bad) == (488, 400)
    assert member.core.calls_in_progress == 0


async def test_store_offline_queues_in_unitymta_and_drains_later(
    member: Member, mwi: MwiListener
) -> None:
    member.core.set_role(True, 1)
    status, body = await member.post("/store", {"offline": True})
    assert status == 200 and body["storeOnline"] is False
    assert (await call(member, 300, mailbox="4000")).answered
    await member.wait_for("the queued message", lambda: member.queue.queued() == 1)
    assert member.store.count("4000") == 0 and mwi.notifies == []
    assert sorted(p.suffix for p in member.queue.dir.iterdir()) == [".json", ".wav"]
    assert await asyncio.to_thread(member.queue.drain) == 0  # still offline
    await member.post("/store", {"offline": False})
    assert await asyncio.to_thread(member.queue.drain) == 1
    assert member.store.count("4000") == 1 and member.queue.queued() == 0
    assert wav_frames(member.store.messages("4000")[0]) == 2400
    assert sip.parse_message_summary((await mwi.wait(1))[0].body) == (True, 1, 0)
    assert (await member.status())["queuedMessages"] == 0


async def test_call_load_across_a_demotion(member: Member) -> None:
    member.core.set_role(True, 1)
    load = sipcaller.CallLoad(member.address, interval_ms=50, duration_ms=100, timeout=1.0)
    load.start()
    try:
        await member.wait_for("answered calls", lambda: load.counts()["answered"] >= 3)
        demoted_at = time.time()
        member.core.set_role(False, 2)
        await member.wait_for("refused calls", lambda: load.counts(demoted_at)["refused"] >= 3)
    finally:
        await asyncio.to_thread(load.stop)
    counts = load.counts()
    assert counts["dropped"] == 0 and counts["unanswered"] == 0
    assert counts["answered"] >= 3 and counts["refused"] >= 3
    assert all(o.code == 503 for o in load.outcomes() if o.started > demoted_at + 0.01)
    assert (await member.status())["callsInProgress"] == 0


class FakeUas:
    """Answers every INVITE 200 OK with media at `rtp_port` and ignores everything else, so
    the caller sees a dialog that breaks."""

    def __init__(self, rtp_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.rtp_port = rtp_port
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            msg = sip.parse(data)
            if msg.method == "INVITE":
                sdp = sip.build_sdp("127.0.0.1", self.rtp_port, 1)
                contact = [("Contact", f"<sip:fake@127.0.0.1:{self.address[1]}>")]
                ok = sip.response(msg, 200, "OK", to_tag="fake", body=sdp, headers=contact)
                self.sock.sendto(ok.encode(), addr)


def test_unanswered_and_dropped_outcomes() -> None:
    # Nothing listens: no final response within the timeout.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        silent = s.getsockname()
        outcome = sipcaller.call_through(silent, 100, timeout=0.3)
    assert (outcome.result, outcome.code) == ("unanswered", None)
    # Answered, but the media port is closed: the kernel's ICMP error ends the call.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    fake = FakeUas(closed_port)
    outcome = sipcaller.call_through(fake.address, 200, timeout=0.3)
    assert (outcome.result, outcome.code, outcome.reason) == (
        "dropped",
        200,
        "RTP port unreachable",
    )
    # Answered, media flows, but the BYE is never answered.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        fake.rtp_port = sink.getsockname()[1]
        outcome = sipcaller.call_through(fake.address, 100, timeout=0.3)
    assert (outcome.result, outcome.reason, outcome.rtp_packets) == ("dropped", "BYE unanswered", 5)
    fake.sock.close()
