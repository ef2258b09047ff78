"""The SIP front end: a user agent server over UDP beside the TCP line protocol.

Active: INVITE -> 100 Trying, (180 Ringing while `answer_delay` runs), 200 OK with an SDP
answer naming an RTP port opened for this call; the caller's PCMU is recorded and, at BYE,
left as a WAV message through the UMR queue, then an MWI NOTIFY goes to the subscriber.
Standby: INVITE -> 503 (or 302 to the active member when the control API named one), and
the call counts as an inactive call. With Force Failover (the control API's `holdMs`) the
standby rings instead (100, 180) while the call makes it active, answers it if it becomes
active within the hold, and refuses it (503) if not. A demotion never touches dialogs in
progress: ACK, BYE and RTP keep working until the caller hangs up (the reference maintains
calls in progress on a clean failover).

Replies go to the datagram's source address (RFC 3581 rport behaviour, always), so a caller
behind the Service proxy gets its answers back through the same flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from pairwarden_testbed.voicemail import sip
from pairwarden_testbed.voicemail.core import Call, VoicemailCore
from pairwarden_testbed.voicemail.messagestore import Message, MessageQueue
from pairwarden_testbed.voicemail.rtp import PCMU, Recording, RtpError, parse_rtp

log = logging.getLogger(__name__)
Addr = tuple[str, int]

T1 = 0.5  # RFC 3261 timer T1
T2 = 4.0
TRANSACTION_LIFETIME = 32.0  # 64 * T1: how long a retransmitted request gets the same reply
SERVER = "pairwarden-voicemail"


@dataclass
class Dialog:
    call: Call
    invite: sip.SipMessage
    remote: Addr
    local_tag: str
    mailbox: str
    caller_uri: str
    remote_target: Addr
    recording: Recording = field(default_factory=Recording)
    rtp: asyncio.DatagramTransport | None = None
    rtp_port: int = 0
    final: bytes | None = None  # the 200 OK (or 487) as sent, for retransmissions
    confirmed: bool = False
    ended: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    cseq_out: int = 1


@dataclass
class Held:
    """An INVITE ringing on a standby under Force Failover, waiting for this member's role."""

    invite: sip.SipMessage
    remote: Addr
    local_tag: str
    cancelled: bool = False


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipServer) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self._owner.datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("sip socket error: %s", exc)


class _RtpSink(asyncio.DatagramProtocol):
    def __init__(self, dialog: Dialog) -> None:
        self._dialog = dialog

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        with contextlib.suppress(RtpError):
            self._dialog.recording.add(parse_rtp(data))


class SipServer:
    """`CallFrontend` for SIP over UDP. `queue` takes messages (None: calls leave none)."""

    def __init__(
        self,
        core: VoicemailCore,
        host: str,
        port: int,
        *,
        queue: MessageQueue | None = None,
        contact_host: str | None = None,
        mwi_target: Addr | None = None,
        answer_delay: float = 0.0,
        max_call: float = 600.0,
    ) -> None:
        self._core = core
        self._host = host
        self._port = port
        self._queue = queue
        self._contact_host = contact_host or (host if host not in ("", "0.0.0.0", "::") else None)
        self.mwi_target = mwi_target
        self.answer_delay = answer_delay
        self.max_call = max_call
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dialogs: dict[str, Dialog] = {}
        self._held: dict[str, Held] = {}
        self._replies: dict[tuple[str, str, str], tuple[bytes, float]] = {}
        self._notifies: dict[str, asyncio.Future[int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats = {"invites": 0, "answered": 0, "refused": 0, "held": 0, "messages": 0,
                      "mwiSent": 0, "mwiAcked": 0}  # fmt: skip
        if queue is not None:
            queue.listeners.append(self._message_delivered)

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    @property
    def contact_host(self) -> str:
        if self._contact_host is None and self._transport is not None:
            self._contact_host = str(self._transport.get_extra_info("sockname")[0])
        return self._contact_host or "127.0.0.1"

    @property
    def dialogs(self) -> int:
        return sum(1 for d in self._dialogs.values() if not d.ended)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self._host, self._port)
        )
        self._transport = transport

    async def close(self) -> None:
        """Stop: calls in progress are dropped (the service stops, as in the reference)."""
        for dialog in list(self._dialogs.values()):
            self._end(dialog, keep_message=False)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()

    def status(self) -> dict[str, Any]:
        return {"sipPort": self.port if self._transport else None, "sipDialogs": self.dialogs,
                **self.stats}  # fmt: skip

    # ---- receiving ---------------------------------------------------------------------

    def datagram(self, data: bytes, addr: Addr) -> None:
        if not data.strip():
            return  # CRLF keep-alive
        try:
            msg = sip.parse(data)
        except sip.SipError as exc:
            self._bad_request(data, addr, str(exc))
            return
        if not msg.is_request:
            self._on_response(msg)
            return
        key = (msg.call_id, msg.branch, msg.method)
        cached = self._replies.get(key)
        if cached is not None and msg.method != "ACK":
            self._send(cached[0], addr)  # a retransmission gets the same answer
            return
        handler = {
            "INVITE": self._on_invite,
            "ACK": self._on_ack,
            "BYE": self._on_bye,
            "CANCEL": self._on_cancel,
            "OPTIONS": self._on_options,
        }.get(msg.method, self._on_other)
        handler(msg, addr)

    def _bad_request(self, data: bytes, addr: Addr, why: str) -> None:
        """Answer 400 only when the headers we must echo are readable; else drop."""
        log.debug("bad SIP datagram from %s: %s", addr, why)
        head = data.split(b"\r\n", 1)[0]
        if head.startswith(b"SIP/") or b" SIP/2.0" not in head or head.startswith(b"ACK "):
            return
        lenient = sip.SipMessage(method="X")
        for line in data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")[1:]:
            name, colon, value = line.partition(":")
            if colon:
                lenient.headers.append((sip.canonical(name), value.strip()))
        if all(lenient.get(h) for h in sip.REQUIRED):
            reply = sip.response(lenient, 400, f"Bad Request ({why[:60]})")
            self._send(reply.encode(), addr)

    def _reply(self, req: sip.SipMessage, addr: Addr, status: int, reason: str,
               **kw: Any) -> bytes:  # fmt: skip
        msg = sip.response(req, status, reason, received=addr, **kw)
        msg.headers.append(("Server", SERVER))
        data = msg.encode()
        now = time.monotonic()
        if status >= 200:
            self._replies[(req.call_id, req.branch, req.method)] = (data, now)
            if len(self._replies) > 256:
                for k, (_, at) in list(self._replies.items()):
                    if now - at > TRANSACTION_LIFETIME:
                        del self._replies[k]
        self._send(data, addr)
        return data

    def _send(self, data: bytes, addr: Addr) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, addr)

    # ---- INVITE ------------------------------------------------------------------------

    def _on_invite(self, req: sip.SipMessage, addr: Addr) -> None:
        self.stats["invites"] += 1
        existing = self._dialogs.get(req.call_id)
        if req.to_tag:
            if existing is None or existing.ended or existing.local_tag != req.to_tag:
                self._reply(req, addr, 481, "Call/Transaction Does Not Exist")
                return
            # A re-INVITE (session refresh): same media, same answer.
            body = sip.build_sdp(self.contact_host, existing.rtp_port, existing.call.id)
            self._reply(req, addr, 200, "OK", body=body, headers=self._contact(existing))
            return
        if existing is not None:
            if not existing.ended and existing.final is None:  # still answering
                self._reply(req, addr, 100, "Trying")
            return
        held = self._held.get(req.call_id)
        if held is not None:  # a retransmission while it rings
            self._reply(req, addr, 180, "Ringing", to_tag=held.local_tag)
            return
        if not self._core.answering():
            self._core.offer(_caller(req))  # counts as an inactive call
            if self._core.hold_for > 0 and not self._core.draining:
                self._hold(req, addr)
            else:
                self._refuse(req, addr, sip.new_tag())
            return
        self._accept(req, addr, sip.new_tag())

    def _refuse(self, req: sip.SipMessage, addr: Addr, tag: str) -> None:
        """302 to the active member when the control API named it, else 503: retry."""
        self.stats["refused"] += 1
        redirect = self._core.redirect
        if redirect:
            contact = ("Contact", f"<sip:{_mailbox(req)}@{redirect}>")
            self._reply(req, addr, 302, "Moved Temporarily", to_tag=tag, headers=[contact])
        else:
            retry = ("Retry-After", "1")
            self._reply(req, addr, 503, "Service Unavailable", to_tag=tag, headers=[retry])

    def _hold(self, req: sip.SipMessage, addr: Addr) -> None:
        """Force Failover: this call is the one that makes the member active (the agent reports
        it as an inactive call, the operator flips), so ring while that happens instead of
        refusing it, as the reference's secondary answers the call that causes failover."""
        held = Held(req, addr, sip.new_tag())
        self._held[req.call_id] = held
        self.stats["held"] += 1
        self._reply(req, addr, 100, "Trying")
        self._reply(req, addr, 180, "Ringing", to_tag=held.local_tag)
        self._background(self._await_role(held, self._core.hold_for))

    async def _await_role(self, held: Held, hold_for: float) -> None:
        assert self._loop is not None
        deadline = self._loop.time() + hold_for
        try:
            while not held.cancelled and self._loop.time() < deadline:
                if self._core.answering():
                    break
                await asyncio.sleep(0.02)
        finally:
            if self._held.get(held.invite.call_id) is held:
                del self._held[held.invite.call_id]
        if held.cancelled:
            return
        if self._core.answering():
            self._accept(held.invite, held.remote, held.local_tag)
        else:
            self._refuse(held.invite, held.remote, held.local_tag)

    def _accept(self, req: sip.SipMessage, addr: Addr, tag: str) -> None:
        try:
            offer = sip.parse_sdp(req.body)
            if PCMU not in offer.payload_types:
                raise sip.SipError("no PCMU in the offer")
            remote_target = sip.parse_uri(sip.uri_of(req.header("Contact"))).hostport
        except sip.SipError as exc:
            self._reply(req, addr, 488, "Not Acceptable Here", to_tag=tag,
                        headers=[("Warning", f'399 pairwarden "{exc}"')])  # fmt: skip
            return
        answer = self._core.offer(_caller(req))
        assert answer.call is not None
        dialog = Dialog(
            call=answer.call,
            invite=req,
            remote=addr,
            local_tag=tag,
            mailbox=_mailbox(req),
            caller_uri=sip.uri_of(req.header("From")),
            remote_target=remote_target,
        )
        self._dialogs[req.call_id] = dialog
        self.stats["answered"] += 1
        self._reply(req, addr, 100, "Trying")
        self._spawn(dialog, self._answer(dialog))

    def _contact(self, dialog: Dialog) -> list[tuple[str, str]]:
        return [("Contact", f"<sip:{self._core.pod}@{self.contact_host}:{self.port}>"),
                ("Allow", sip.ALLOW)]  # fmt: skip

    async def _answer(self, dialog: Dialog) -> None:
        assert self._loop is not None
        rtp, _ = await self._loop.create_datagram_endpoint(
            lambda: _RtpSink(dialog), local_addr=(self._host, 0)
        )
        dialog.rtp = rtp
        dialog.rtp_port = int(rtp.get_extra_info("sockname")[1])
        if dialog.ended:
            rtp.close()
            return
        if self.answer_delay > 0:
            self._reply(dialog.invite, dialog.remote, 180, "Ringing", to_tag=dialog.local_tag,
                        headers=self._contact(dialog))  # fmt: skip
            await asyncio.sleep(self.answer_delay)
            if dialog.ended:
                return
        body = sip.build_sdp(self.contact_host, dialog.rtp_port, dialog.call.id)
        dialog.final = self._reply(dialog.invite, dialog.remote, 200, "OK", to_tag=dialog.local_tag,
                                   headers=self._contact(dialog), body=body)  # fmt: skip
        # Timer G: resend the 200 until the ACK; Timer H: give up after 64*T1.
        interval, waited = T1, 0.0
        while not dialog.confirmed and not dialog.ended:
            if waited >= TRANSACTION_LIFETIME:
                log.info("call %s: no ACK for the 200 OK, ending it", dialog.invite.call_id)
                self._send_bye(dialog)
                self._end(dialog, keep_message=True)
                return
            await asyncio.sleep(interval)
            waited += interval
            if not dialog.confirmed and not dialog.ended:
                self._send(dialog.final, dialog.remote)
            interval = min(interval * 2, T2)
        await asyncio.sleep(max(0.0, self.max_call - waited))
        if not dialog.ended:
            log.info("call %s: longer than %.0f s, hanging up", dialog.invite.call_id,
                     self.max_call)  # fmt: skip
            self._send_bye(dialog)
            self._end(dialog, keep_message=True)

    # ---- in-dialog and other requests ---------------------------------------------------

    def _on_ack(self, req: sip.SipMessage, addr: Addr) -> None:
        dialog = self._dialogs.get(req.call_id)
        if dialog is not None and req.to_tag == dialog.local_tag:
            dialog.confirmed = True  # (an ACK for a 4xx-6xx needs nothing more)

    def _on_bye(self, req: sip.SipMessage, addr: Addr) -> None:
        dialog = self._dialogs.get(req.call_id)
        if dialog is None or dialog.ended or req.to_tag != dialog.local_tag:
            self._reply(req, addr, 481, "Call/Transaction Does Not Exist")
            return
        self._reply(req, addr, 200, "OK")
        self._end(dialog, keep_message=True)

    def _on_cancel(self, req: sip.SipMessage, addr: Addr) -> None:
        held = self._held.get(req.call_id)
        if held is not None and held.invite.branch == req.branch:
            held.cancelled = True
            del self._held[req.call_id]
            self._reply(req, addr, 200, "OK")
            self._reply(held.invite, held.remote, 487, "Request Terminated", to_tag=held.local_tag)
            return
        dialog = self._dialogs.get(req.call_id)
        if dialog is None or dialog.invite.branch != req.branch:
            self._reply(req, addr, 481, "Call/Transaction Does Not Exist")
            return
        self._reply(req, addr, 200, "OK")
        if dialog.final is None and not dialog.ended:  # still ringing: the INVITE ends 487
            dialog.final = self._reply(dialog.invite, dialog.remote, 487, "Request Terminated",
                                       to_tag=dialog.local_tag)  # fmt: skip
            self._end(dialog, keep_message=False)

    def _on_options(self, req: sip.SipMessage, addr: Addr) -> None:
        """200 while answering, 503 on standby: a SIP proxy's health probe finds the active."""
        if self._core.answering():
            self._reply(req, addr, 200, "OK", headers=[("Allow", sip.ALLOW),
                        ("Accept", "application/sdp")])  # fmt: skip
        else:
            self._reply(req, addr, 503, "Service Unavailable")

    def _on_other(self, req: sip.SipMessage, addr: Addr) -> None:
        self._reply(req, addr, 405, "Method Not Allowed", headers=[("Allow", sip.ALLOW)])

    # ---- ending a call -----------------------------------------------------------------

    def _end(self, dialog: Dialog, *, keep_message: bool) -> None:
        if dialog.ended:
            return
        dialog.ended = True
        if dialog.rtp is not None:
            dialog.rtp.close()
        self._core.hang_up(dialog.call)
        current = asyncio.current_task() if self._loop is not None else None
        for task in dialog.tasks:
            if task is not current:
                task.cancel()
        # Forget the dialog later, so late retransmissions still find their answers.
        if self._loop is not None:
            self._loop.call_later(TRANSACTION_LIFETIME, self._forget, dialog)
        if keep_message and dialog.recording.samples and self._queue is not None:
            message = Message(
                mailbox=dialog.mailbox,
                caller=dialog.caller_uri,
                audio=dialog.recording.wav(),
                duration_ms=dialog.recording.duration_ms,
                pod=self._core.pod,
                epoch=dialog.call.epoch,
            )
            self._background(self._submit(message))

    def _forget(self, dialog: Dialog) -> None:
        if self._dialogs.get(dialog.invite.call_id) is dialog:
            del self._dialogs[dialog.invite.call_id]

    async def _submit(self, message: Message) -> None:
        assert self._queue is not None
        outcome = await asyncio.to_thread(self._queue.submit, message)
        self.stats["messages"] += 1
        log.info("message %s for %s (%d ms): %s", message.id, message.mailbox,
                 message.duration_ms, outcome)  # fmt: skip

    def _send_bye(self, dialog: Dialog) -> None:
        dialog.cseq_out += 1
        invite = dialog.invite
        bye = sip.request(
            "BYE",
            sip.uri_of(invite.header("Contact")),
            via_host=self.contact_host,
            via_port=self.port,
            from_=f"{invite.header('To')};tag={dialog.local_tag}",
            to=invite.header("From"),
            call_id=invite.call_id,
            cseq=dialog.cseq_out,
        )
        self._send(bye.encode(), dialog.remote_target)

    # ---- MWI ---------------------------------------------------------------------------

    def _message_delivered(self, message: Message) -> None:
        """Called by the queue (in a worker thread) once the store holds the message."""
        if self._queue is None or self._loop is None or self._loop.is_closed():
            return
        count = self._queue.store.count(message.mailbox)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._background, self._notify(message, count))

    async def _notify(self, message: Message, count: int) -> None:
        if self.mwi_target is not None:
            target, uri = self.mwi_target, f"sip:{message.mailbox}@{self.mwi_target[0]}:" \
                f"{self.mwi_target[1]}"  # fmt: skip
        else:
            try:
                target, uri = sip.parse_uri(message.caller).hostport, message.caller
            except sip.SipError:
                log.info("message %s: no subscriber address for MWI", message.id)
                return
        account = f"sip:{message.mailbox}@{self.contact_host}"
        call_id = secrets.token_hex(8)
        notify = sip.request(
            "NOTIFY",
            uri,
            via_host=self.contact_host,
            via_port=self.port,
            from_=f"<{account}>;tag={sip.new_tag()}",
            to=f"<{uri}>",
            call_id=call_id,
            cseq=1,
            headers=[
                ("Contact", f"<sip:{self._core.pod}@{self.contact_host}:{self.port}>"),
                ("Event", "message-summary"),
                ("Subscription-State", "active"),
            ],
            body=sip.message_summary(count, 0, account),
            content_type="application/simple-message-summary",
        )
        assert self._loop is not None
        answered: asyncio.Future[int] = self._loop.create_future()
        self._notifies[call_id] = answered
        self.stats["mwiSent"] += 1
        data, interval = notify.encode(), T1
        try:
            for _ in range(6):  # Timer E up to T2, about 16 s in all
                self._send(data, target)
                try:
                    status = await asyncio.wait_for(asyncio.shield(answered), interval)
                except TimeoutError:
                    interval = min(interval * 2, T2)
                    continue
                if 200 <= status < 300:
                    self.stats["mwiAcked"] += 1
                return
        finally:
            self._notifies.pop(call_id, None)

    def _on_response(self, msg: sip.SipMessage) -> None:
        future = self._notifies.get(msg.call_id)
        if future is not None and not future.done() and msg.status >= 200:
            future.set_result(msg.status)

    # ---- tasks -------------------------------------------------------------------------

    def _spawn(self, dialog: Dialog, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        dialog.tasks.add(task)
        self._tasks.add(task)
        task.add_done_callback(dialog.tasks.discard)
        task.add_done_callback(self._done)

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sip task failed", exc_info=task.exception())


def _caller(req: sip.SipMessage) -> str:
    uri = sip.uri_of(req.header("From"))
    with contextlib.suppress(sip.SipError):
        return sip.parse_uri(uri).user or uri
    return uri


def _mailbox(req: sip.SipMessage) -> str:
    """The called mailbox: the Request-URI's user part (what the phone system diverted to)."""
    with contextlib.suppress(sip.SipError):
        user = sip.parse_uri(req.uri).user
        if user:
            return user
    return "default"
