"""The direct link between the two agents of a pair, for failsafe (docs/protocol.md,
"Failsafe: when the API server is away"): one codec for both ends, HMAC-SHA256 under the pair's
peer key (Secret `<pair>-peer-key`), replay-checked, epochs on every message. The decisions
(who may ask, who may promise, who answers) live in agent.core; this module only carries them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from pairwarden.clock import Clock
from pairwarden.protocol import MEMBERS, Member, other

log = logging.getLogger("pairwarden.agent.peer")

PEER_PORT = 8083  # its own port: never the voicemail's control port, never the file API's
PEER_PATH = "/peer"
KEY_MOUNT = Path("/var/run/pairwarden/peer/key")
MAX_SKEW = 30.0  # seconds a message's wall time may differ from the receiver's clock
# A promise counts for the asker from when it *sent* the ask, shortened by this factor: the
# peer counts it from the later arrival, and clock rates differ by parts per million.
PROMISE_RATE_MARGIN = 0.95
MAX_MESSAGE = 4096

Kind = Literal["ask", "reply", "release", "hello"]
KINDS = ("ask", "reply", "release", "hello")
# The relay's fields of a reply to a hello, left out of a message while unset, so a reply to an
# ask still decodes at an agent of the previous release (which refuses unknown fields).
RELAY_FIELDS = ("renewed_ms", "heard_ms")


class PeerRefused(Exception):
    """A message that is not authentic, not for us, or not fresh."""


@dataclass(frozen=True)
class PeerMessage:
    kind: Kind
    pair: str
    member: Member  # the sender's
    pod: str
    epoch: int  # the active-Lease epoch the sender acts on: the fencing token
    boot: str  # random per agent start
    seq: int  # grows per message of a boot
    time_ms: int  # the sender's wall clock
    promise: bool = False  # reply: the peer promises not to answer
    promise_ms: int = 0  # reply: for how long after the ask arrived
    up_to: int = 0  # release: the last seq asked with; reply: the seq answered
    re_boot: str = ""  # reply: the boot of the ask answered
    # reply to a hello: ms since the replier's last successful renewal was sent, and the age
    # of the hello that renewal relayed (`pairwarden.io/peer-heard`); -1: none
    renewed_ms: int = -1
    heard_ms: int = -1

    def encode(self, key: bytes) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k not in RELAY_FIELDS or v != -1}
        body["mac"] = _mac(key, body)
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes, key: bytes) -> PeerMessage:
        if len(raw) > MAX_MESSAGE:
            raise PeerRefused("message too long")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise PeerRefused("not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("mac"), str):
            raise PeerRefused("no MAC")
        mac = body.pop("mac")
        if not hmac.compare_digest(mac, _mac(key, body)):
            raise PeerRefused("wrong MAC")
        try:
            message = cls(**body)
        except TypeError as exc:
            raise PeerRefused(f"malformed: {exc}") from exc
        if message.kind not in KINDS or message.member not in MEMBERS:
            raise PeerRefused("malformed kind or member")
        numbers: tuple[object, ...] = (message.epoch, message.seq, message.time_ms)
        numbers += (message.promise_ms, message.up_to, message.renewed_ms, message.heard_ms)
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
            raise PeerRefused("malformed numbers")
        return message


def _mac(key: bytes, body: dict[str, object]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, text, hashlib.sha256).hexdigest()


class ReplayGuard:
    """Accept a message once: its wall time within MAX_SKEW of ours, and its seq above the last
    accepted from its boot (boots are forgotten once their messages would be too old anyway)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, float]] = {}  # boot -> (seq, our wall time seen)

    def accept(self, message: PeerMessage, now_wall: float) -> None:
        if abs(message.time_ms / 1000 - now_wall) > MAX_SKEW:
            raise PeerRefused("message time too far from ours (a replay, or skewed clocks)")
        self._last = {b: v for b, v in self._last.items() if now_wall - v[1] <= 2 * MAX_SKEW}
        last = self._last.get(message.boot)
        if last is not None and message.seq <= last[0]:
            raise PeerRefused("replayed sequence number")
        self._last[message.boot] = (message.seq, now_wall)


class PeerTransport(Protocol):
    async def send(self, contact: str, body: bytes) -> bytes | None:
        """POST `body` to the peer at `contact` ("host:port"); its answer, None on no answer."""
        ...


def key_reader(path: Path) -> Callable[[], bytes | None]:
    """The mounted key, read per use (an optional volume appears once the Secret exists)."""

    def read() -> bytes | None:
        try:
            return path.read_bytes().strip() or None
        except OSError:
            return None

    return read


class PeerLink:
    """One agent's end: signs what it sends, checks what it receives."""

    def __init__(
        self,
        pair: str,
        member: Member,
        pod: str,
        key: Callable[[], bytes | None],
        clock: Clock,
        transport: PeerTransport,
    ) -> None:
        self.pair, self.member, self.pod = pair, member, pod
        self._key, self._clock, self._transport = key, clock, transport
        self.boot = secrets.token_hex(8)
        self.seq = 0
        self.timeout = 1.0  # seconds per message; the agent sets it from the pair's sizing
        self._guard = ReplayGuard()

    def message(self, kind: Kind, epoch: int, **fields: object) -> PeerMessage:
        self.seq += 1
        base = PeerMessage(
            kind, self.pair, self.member, self.pod, epoch, self.boot, self.seq,
            int(self._clock.wall().timestamp() * 1000),
        )  # fmt: skip
        return replace(base, **fields)  # type: ignore[arg-type]

    def receive(self, raw: bytes) -> PeerMessage:
        """A message from the other member, authentic and fresh, or PeerRefused."""
        key = self._key()
        if key is None:
            raise PeerRefused("no peer key mounted")
        message = PeerMessage.decode(raw, key)
        if message.pair != self.pair or message.member != other(self.member):
            raise PeerRefused("not from this pair's other member")
        self._guard.accept(message, self._clock.wall().timestamp())
        return message

    def reply(self, ask: PeerMessage, epoch: int, promise: bool, promise_ms: int) -> bytes:
        key = self._key() or b""
        answer = self.message(
            "reply", epoch, promise=promise, promise_ms=promise_ms, up_to=ask.seq, re_boot=ask.boot
        )
        return answer.encode(key)

    def ack(self, hello: PeerMessage, epoch: int, renewed_ms: int, heard_ms: int) -> bytes:
        """The holder's answer to a hello: what its last successful renewal relayed."""
        key = self._key() or b""
        relay = {"renewed_ms": renewed_ms, "heard_ms": heard_ms}
        answer = self.message("reply", epoch, up_to=hello.seq, re_boot=hello.boot, **relay)
        return answer.encode(key)

    async def ask(self, contact: str, epoch: int) -> PeerMessage | None:
        """Ask the peer to promise; its authentic reply to this very ask, or None (no link,
        no key, no answer, or an answer to something else)."""
        return await self._exchange(contact, self.message("ask", epoch))

    async def hello(self, contact: str, epoch: int) -> PeerMessage | None:
        """The standby's heartbeat to the holder; its authentic acknowledgement, or None."""
        return await self._exchange(contact, self.message("hello", epoch))

    async def _exchange(self, contact: str, question: PeerMessage) -> PeerMessage | None:
        raw = await self._post(contact, question)
        if raw is None:
            return None
        try:
            answer = self.receive(raw)
        except PeerRefused as exc:
            log.warning("peer reply refused: %s", exc)
            return None
        if answer.kind != "reply" or (answer.re_boot, answer.up_to) != (self.boot, question.seq):
            log.warning("peer reply does not answer our %s", question.kind)
            return None
        return answer

    async def release(self, contact: str, epoch: int, up_to: int) -> bool:
        """Tell the peer this member stopped answering: its promises up to `up_to` end."""
        release = self.message("release", epoch, up_to=up_to)
        return await self._post(contact, release) is not None

    async def _post(self, contact: str, message: PeerMessage) -> bytes | None:
        key = self._key()
        if key is None or not contact:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                return await self._transport.send(contact, message.encode(key))
        except (OSError, TimeoutError) as exc:
            log.debug("peer %s unreachable: %r", contact, exc)
            return None


class HttpTransport:
    """POST over the pod network (aiohttp, one session)."""

    def __init__(self) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._session: aiohttp.ClientSession | None = None

    async def send(self, contact: str, body: bytes) -> bytes | None:
        aiohttp = self._aiohttp
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                f"http://{contact}{PEER_PATH}",
                data=body,
            ) as response:
                if response.status != 200:
                    return None
                return await response.content.read(MAX_MESSAGE + 1)
        except aiohttp.ClientError as exc:
            raise OSError(str(exc)) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
