"""A small SIP caller (UAC) for demos and tests, when `sipp` is not at hand.

`call_through(address, duration_ms)` places one call: INVITE with a PCMU offer, ACK, a tone
streamed as RTP for `duration_ms`, BYE; and says how it went. `CallLoad` keeps placing calls
in a background thread, so a demo can show what callers saw across a failover.

Outcomes, as a caller experiences them:
- answered:   200 OK, the media went out, and the BYE got its 200 OK;
- refused:    a final error or redirect to the INVITE (503 from a standby, 302, 488, ...);
- dropped:    answered, but the dialog broke: RTP port unreachable, BYE unanswered or 481,
              or the server hung up first;
- unanswered: no final response in time (nobody behind the address: the reference's fast
              busy while no member is active).

Blocking sockets, one pair (SIP, RTP) per call; in-dialog requests go to the Contact of the
200 OK (RFC 3261 12.2.1.1), so a call in progress stays with the member that answered it.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pairwarden_testbed.lifecycle import Service
from pairwarden_testbed.voicemail import sip
from pairwarden_testbed.voicemail.rtp import PCMU, SAMPLES_PER_PACKET, RtpPacket, tone

Addr = tuple[str, int]
Result = Literal["answered", "refused", "dropped", "unanswered"]
RESULTS: tuple[Result, ...] = ("answered", "refused", "dropped", "unanswered")
T1 = 0.1  # shorter than RFC 3261's 500 ms: demo callers retransmit sooner on a quiet LAN


@dataclass(frozen=True)
class CallOutcome:
    result: Result
    code: int | None  # the INVITE's final status (200, 503, 302...); None when none came
    reason: str
    started: float  # wall clock (time.time()) when the INVITE went out
    setup_ms: float  # INVITE to its final response (or to giving up)
    duration_ms: float  # INVITE to the end of the call
    pod: str | None = None  # who answered: the user part of the 200 OK's Contact
    rtp_packets: int = 0
    bye_code: int | None = None
    redirect: str | None = None  # a 3xx's Contact
    mwi: tuple[bool, int, int] | None = None  # (waiting, new, old) if a NOTIFY came meanwhile

    @property
    def answered(self) -> bool:
        return self.result == "answered"


def local_address_for(remote: Addr) -> str:
    """The local IP the kernel routes to `remote` from (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(remote)
        return str(s.getsockname()[0])


class _Call:
    def __init__(
        self, address: Addr, caller: str, mailbox: str, local_host: str, local_port: int = 0
    ) -> None:
        self.address = address
        self.host = local_host
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sip.bind((local_host, local_port))
        self.rtp.bind((local_host, 0))
        self.port = int(self.sip.getsockname()[1])
        self.call_id = f"{secrets.token_hex(8)}@{local_host}"
        self.from_ = f"<sip:{caller}@{local_host}:{self.port}>;tag={sip.new_tag()}"
        self.to = f"<sip:{mailbox}@{address[0]}:{address[1]}>"
        self.uri = f"sip:{mailbox}@{address[0]}:{address[1]}"
        self.contact = f"<sip:{caller}@{local_host}:{self.port}>"
        self.mwi: tuple[bool, int, int] | None = None

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()

    def request(self, method: str, cseq: int, *, uri: str | None = None, to: str | None = None,
                branch: str | None = None, body: bytes = b"") -> sip.SipMessage:  # fmt: skip
        return sip.request(
            method, uri or self.uri, via_host=self.host, via_port=self.port, from_=self.from_,
            to=to or self.to, call_id=self.call_id, cseq=cseq, branch=branch,
            headers=[("Contact", self.contact), ("User-Agent", "pairwarden-sipcaller")],
            body=body,
        )  # fmt: skip

    def receive(self, until: float) -> sip.SipMessage | None:
        """The next SIP response to this call before `until`; requests (NOTIFY, BYE) from the
        server are answered here and reported through attributes."""
        while (left := until - time.monotonic()) > 0:
            self.sip.settimeout(left)
            try:
                data, addr = self.sip.recvfrom(65535)
            except TimeoutError:
                return None
            except OSError:  # ICMP port unreachable from an earlier send
                continue
            try:
                msg = sip.parse(data)
            except sip.SipError:
                continue
            if msg.is_request:
                self._on_request(msg, addr)
                continue
            if msg.call_id == self.call_id:
                return msg
        return None

    remote_bye = False

    def _on_request(self, msg: sip.SipMessage, addr: Addr) -> None:
        if msg.method == "NOTIFY" and (msg.get("Event") or "").startswith("message-summary"):
            self.mwi = sip.parse_message_summary(msg.body)
        if msg.method == "BYE" and msg.call_id == self.call_id:
            self.remote_bye = True
        if msg.method != "ACK":
            self.sip.sendto(sip.response(msg, 200, "OK", received=addr).encode(), addr)

    def transaction(self, msg: sip.SipMessage, to: Addr, deadline: float) -> sip.SipMessage | None:
        """Send with retransmissions (T1 doubling) until a final response; provisional
        responses stop retransmission (RFC 3261 17.1.1.2) but not the wait."""
        data, interval, provisional = msg.encode(), T1, False
        number, method = msg.cseq
        while time.monotonic() < deadline:
            if not provisional:
                with contextlib.suppress(OSError):
                    self.sip.sendto(data, to)
            until = min(deadline, time.monotonic() + interval)
            while (reply := self.receive(until)) is not None:
                if reply.cseq != (number, method):
                    continue
                if reply.status >= 200:
                    return reply
                provisional = True
            interval = min(interval * 2, 4.0)
        return None


def call_through(
    address: Addr,
    duration_ms: int,
    *,
    caller: str = "caller",
    mailbox: str = "1000",
    local_host: str | None = None,
    timeout: float = 2.0,
    mwi_wait: float = 0.0,
    frequency: float = 440.0,
    local_port: int = 0,
) -> CallOutcome:
    """Place one call and stream `duration_ms` of tone; never raises for network trouble.

    `timeout` bounds each transaction (INVITE, BYE). `mwi_wait` keeps listening after the BYE
    for a message-summary NOTIFY (the server's MWI for the message just left). `local_port`
    fixes the SIP source port, as a PBX or SIP trunk sends every call from one port (0: a new
    port per call).
    """
    started, t0 = time.time(), time.monotonic()
    host = local_host or local_address_for(address)
    call = _Call(address, caller, mailbox, host, local_port)
    try:
        return _place(call, duration_ms, timeout, mwi_wait, frequency, started, t0)
    finally:
        call.close()


def _place(call: _Call, duration_ms: int, timeout: float, mwi_wait: float, frequency: float,
           started: float, t0: float) -> CallOutcome:  # fmt: skip
    def elapsed() -> float:
        return (time.monotonic() - t0) * 1000.0

    rtp_port = int(call.rtp.getsockname()[1])
    offer = sip.build_sdp(call.host, rtp_port, int(t0 * 1000) & 0x7FFFFFFF)
    invite = call.request("INVITE", 1, body=offer)
    final = call.transaction(invite, call.address, time.monotonic() + timeout)
    setup = elapsed()
    if final is None:
        # Nobody answered: CANCEL so a late answer is not left hanging (best effort).
        cancel = call.request("CANCEL", 1, branch=invite.branch)
        with contextlib.suppress(OSError):
            call.sip.sendto(cancel.encode(), call.address)
        return CallOutcome("unanswered", None, "no final response", started, setup, elapsed())
    to_with_tag = final.header("To")
    if final.status >= 300:
        # The ACK for a non-2xx final is part of the INVITE transaction: same branch.
        ack = call.request("ACK", 1, to=to_with_tag, branch=invite.branch)
        with contextlib.suppress(OSError):
            call.sip.sendto(ack.encode(), call.address)
        contact = final.get("Contact")
        redirect = sip.uri_of(contact) if contact and final.status < 400 else None
        return CallOutcome("refused", final.status, final.reason, started, setup, elapsed(),
                           redirect=redirect)  # fmt: skip
    try:
        media = sip.parse_sdp(final.body)
        target_uri = sip.uri_of(final.header("Contact"))
        target = sip.parse_uri(target_uri)
    except sip.SipError as exc:
        return CallOutcome("dropped", final.status, f"bad answer: {exc}", started, setup,
                           elapsed())  # fmt: skip
    remote = (target.host, target.port or 5060)
    ack = call.request("ACK", 1, uri=target_uri, to=to_with_tag)
    call.sip.sendto(ack.encode(), remote)

    def outcome(result: Result, reason: str, rtp_packets: int,
                bye_code: int | None = None) -> CallOutcome:  # fmt: skip
        return CallOutcome(result, final.status, reason, started, setup, elapsed(),
                           pod=target.user or None, rtp_packets=rtp_packets, bye_code=bye_code,
                           mwi=call.mwi)  # fmt: skip

    # Media: one 20 ms packet per tick on an absolute schedule; between ticks, answer the
    # server (200 OK retransmissions get their ACK again, NOTIFY/BYE get 200 OK).
    audio = tone(duration_ms, frequency)
    call.rtp.connect((media.host, media.port))
    ssrc, sent = secrets.randbits(32), 0
    packets = (len(audio) + SAMPLES_PER_PACKET - 1) // SAMPLES_PER_PACKET
    tick = time.monotonic()
    while sent < packets and not call.remote_bye:
        chunk = audio[sent * SAMPLES_PER_PACKET : (sent + 1) * SAMPLES_PER_PACKET]
        pkt = RtpPacket(PCMU, sent, sent * SAMPLES_PER_PACKET, ssrc, chunk, marker=sent == 0)
        try:
            call.rtp.send(pkt.encode())
        except ConnectionRefusedError:
            return outcome("dropped", "RTP port unreachable", rtp_packets=sent)
        except OSError as exc:
            return outcome("dropped", f"RTP: {exc}", rtp_packets=sent)
        sent += 1
        tick += SAMPLES_PER_PACKET / 8000
        while (reply := call.receive(tick)) is not None:
            if reply.status == 200 and reply.cseq == (1, "INVITE"):
                call.sip.sendto(ack.encode(), remote)
    if call.remote_bye:
        return outcome("dropped", "the server hung up", rtp_packets=sent)
    # A last check for an ICMP error on the media path (the kernel reports it on the socket).
    with contextlib.suppress(BlockingIOError, TimeoutError):
        call.rtp.setblocking(False)
        try:
            call.rtp.recv(2048)
        except ConnectionRefusedError:
            return outcome("dropped", "RTP port unreachable", rtp_packets=sent)
    bye = call.request("BYE", 2, uri=target_uri, to=to_with_tag)
    reply = call.transaction(bye, remote, time.monotonic() + timeout)
    if reply is None or reply.status != 200:
        code = None if reply is None else reply.status
        why = "BYE unanswered" if reply is None else f"BYE answered {reply.status}"
        return outcome("dropped", why, rtp_packets=sent, bye_code=code)
    if mwi_wait > 0:
        until = time.monotonic() + mwi_wait
        while call.mwi is None and time.monotonic() < until:
            call.receive(min(until, time.monotonic() + 0.05))
    return outcome("answered", "OK", rtp_packets=sent, bye_code=200)


class CallLoad(Service):
    """Calls placed in the background, one every `interval_ms`, each `duration_ms` long.

        with CallLoad(("10.0.0.1", 5060)) as load:
            ...  # fail over
        load.counts()  # {"answered": 41, "refused": 2, "dropped": 0, "unanswered": 3}

    `address` may be a callable, read at each call (a Service address that may change).
    Calls overlap; at most `max_in_flight` at once (the rest are counted as `skipped`).
    """

    def __init__(
        self,
        address: Addr | Callable[[], Addr],
        *,
        interval_ms: int = 100,
        duration_ms: int = 300,
        timeout: float = 1.0,
        caller: str = "load",
        mailbox: str = "1000",
        max_in_flight: int = 16,
    ) -> None:
        self._address = address
        self.interval = interval_ms / 1000.0
        self.duration_ms = duration_ms
        self.timeout = timeout
        self.caller = caller
        self.mailbox = mailbox
        self.max_in_flight = max_in_flight
        self.skipped = 0
        self._outcomes: list[CallOutcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._in_flight = threading.Semaphore(max_in_flight)
        self._threads: list[threading.Thread] = []
        self._scheduler: threading.Thread | None = None

    def start(self) -> CallLoad:
        self._stop.clear()
        self._scheduler = threading.Thread(target=self._run, name="call-load", daemon=True)
        self._scheduler.start()
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop placing calls; with `wait`, let the calls in flight finish first."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join()
        if wait:
            for t in list(self._threads):
                t.join()

    def outcomes(self) -> list[CallOutcome]:
        """Finished calls, in the order they ended."""
        with self._lock:
            return list(self._outcomes)

    def counts(self, since: float | None = None) -> dict[str, int]:
        """Finished calls by result; `since`: only calls started at or after that wall time."""
        out: dict[str, int] = dict.fromkeys(RESULTS, 0)
        for o in self.outcomes():
            if since is None or o.started >= since:
                out[o.result] += 1
        return out

    def _run(self) -> None:
        tick = time.monotonic()
        while not self._stop.is_set():
            if self._in_flight.acquire(blocking=False):
                t = threading.Thread(target=self._one, name="call", daemon=True)
                self._threads = [x for x in self._threads if x.is_alive()] + [t]
                t.start()
            else:
                self.skipped += 1
            tick += self.interval
            self._stop.wait(max(0.0, tick - time.monotonic()))

    def _one(self) -> None:
        try:
            address = self._address() if callable(self._address) else self._address
            o = call_through(address, self.duration_ms, caller=self.caller,
                             mailbox=self.mailbox, timeout=self.timeout)  # fmt: skip
        except OSError as exc:  # e.g. no route to the address at all
            now = time.time()
            o = CallOutcome("unanswered", None, str(exc), now, 0.0, 0.0)
        finally:
            self._in_flight.release()
        with self._lock:
            self._outcomes.append(o)
