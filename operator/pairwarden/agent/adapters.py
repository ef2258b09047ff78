"""The generic voicemail adapter: the agent supervises any voicemail server through checks and
hooks named on its command line, so a third-party server is paired without speaking the
reference process's control port (docs/voicemail-contract.md).

Each piece is a hook, written as one of:

- `http://...` or `https://...`: a check is a GET (2xx = up); an order is a POST of JSON
  `{active, epoch, validForMs, validUntil, activeContact, holdMs, issuedAtMs}` (2xx = obeyed),
  signed as the reference process's orders are (`pairwarden.orders`: the `Authorization`
  header, an HMAC-SHA256 of the body with the agent's order key), so a server that can check
  it obeys only this agent;
- `tcp://HOST:PORT`: a check connects (connected = up);
- `sip://HOST:PORT`: a check sends SIP OPTIONS (any final answer = up), as SIP proxies probe
  their targets;
- anything else: a command line (no shell), run with the order in its environment
  (`PAIRWARDEN_ACTIVE`, `PAIRWARDEN_EPOCH`, `PAIRWARDEN_VALID_FOR_MS`, `PAIRWARDEN_VALID_UNTIL`
  in RFC 3339, `PAIRWARDEN_ACTIVE_CONTACT`, `PAIRWARDEN_HOLD_MS`); exit 0 = up or obeyed.

Whether the server answers is what the adapter last ordered it (an active order not yet
expired): a check says only up or down, and a server that was down has lost its orders, so
it is ordered again. The epoch rule is kept here too: an order older than the one obeyed is
refused (409) before any hook runs. An active order carries its expiry; when it passes
without a renewal the adapter runs the deactivate hook itself, and the server should honour
`validUntil` on its own as well, since only the server can outlive a hung agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shlex
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from pairwarden.agent.core import StandbyCalls, VoicemailView
from pairwarden.agent.voicemail_client import order_valid_ms
from pairwarden.clock import Clock
from pairwarden.orders import OrderSigner
from pairwarden.protocol import call_contact

log = logging.getLogger("pairwarden.agent")

HookKind = Literal["http", "tcp", "sip", "exec"]
OUTPUT_LIMIT = 65536  # a stats hook's JSON; more is a mistake, not a report
_REFUSE = StandbyCalls()


class HookError(ValueError):
    """A hook that cannot be used as written (named in the message)."""


@dataclass(frozen=True)
class Hook:
    kind: HookKind
    target: str  # the URL, the "host:port", or the command line as given
    argv: tuple[str, ...] = ()  # the command, split as a shell would but run without one

    def __str__(self) -> str:
        return self.target


def parse_hook(text: str, name: str = "hook") -> Hook:
    """Pure: a hook from its written form; HookError naming `name` when it cannot be used."""
    text = text.strip()
    if not text:
        raise HookError(f"{name}: empty")
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme in ("http", "https"):
        if not urlsplit(text).hostname:
            raise HookError(f"{name}: {text!r} has no host")
        return Hook("http", text)
    if scheme in ("tcp", "sip"):
        address = text.split("://", 1)[1].rstrip("/")
        if not call_contact(address):
            raise HookError(f"{name}: {text!r} is not {scheme}://HOST:PORT")
        return Hook(scheme, address)  # type: ignore[arg-type]
    if scheme:
        raise HookError(f"{name}: {scheme}:// is not one of http, https, tcp, sip or a command")
    try:
        argv = tuple(shlex.split(text))
    except ValueError as error:
        raise HookError(f"{name}: {text!r}: {error}") from error
    return Hook("exec", text, argv)


@dataclass(frozen=True)
class HookConfig:
    health: Hook
    activate: Hook
    deactivate: Hook
    stats: Hook | None = None  # JSON {calls, inactiveCalls, cpuPercent, settings}; absent: 0
    timeout: float = 2.0  # each check or hook; a hung one counts as failed


def hook_config(
    health: str, activate: str, deactivate: str, stats: str | None = None, timeout: float = 2.0
) -> HookConfig:
    """Pure: the adapter's configuration from the agent's arguments (HookError if unusable).
    Orders need a hook that can act: a TCP or SIP check cannot order anything."""
    pieces = {
        "--voicemail-activate": parse_hook(activate, "--voicemail-activate"),
        "--voicemail-deactivate": parse_hook(deactivate, "--voicemail-deactivate"),
    }
    for name, hook in pieces.items():
        if hook.kind not in ("http", "exec"):
            raise HookError(f"{name}: an order is an HTTP call or a command, not {hook.kind}://")
    return HookConfig(
        health=parse_hook(health, "--voicemail-health"),
        activate=pieces["--voicemail-activate"],
        deactivate=pieces["--voicemail-deactivate"],
        stats=parse_hook(stats, "--voicemail-stats") if stats else None,
        timeout=timeout,
    )


@dataclass(frozen=True)
class Outcome:
    ok: bool
    output: bytes = b""


@dataclass(frozen=True)
class RoleOrder:
    active: bool
    epoch: int
    valid_for: float
    standby: StandbyCalls


class HookVoicemail:
    """`runner.Voicemail` over hooks. Orders are remembered: `status()` says the server answers
    while the last order it obeyed is an active one that has not expired."""

    def __init__(self, config: HookConfig, clock: Clock, signer: OrderSigner | None = None) -> None:
        self.config = config
        self._clock = clock
        self._signer = signer  # signs the orders of HTTP hooks
        self._epoch = 0
        self._active_until: float | None = None  # monotonic expiry of the active order
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()  # one order at a time, in the order given
        self._renewing: asyncio.Task[None] | None = None

    async def status(self) -> VoicemailView:
        await self._expire()
        if not (await self._run(self.config.health, None)).ok:
            self._active_until = None  # a server that restarts forgets its orders: order again
            return VoicemailView(up=False, epoch=self._epoch)
        stats = await self._stats()
        return VoicemailView(
            up=True,
            answering=self._answering(),
            calls=_count(stats, "calls"),
            inactive_calls=_count(stats, "inactiveCalls"),
            cpu_percent=_percent(stats.get("cpuPercent")),
            settings=stats.get("settings") if isinstance(stats.get("settings"), dict) else None,
            epoch=self._epoch,
        )

    async def order(
        self, active: bool, epoch: int, valid_for: float = 0.0, standby: StandbyCalls = _REFUSE
    ) -> int | None:
        """200 when the hook obeyed, 409 for an order older than the one obeyed (no hook
        runs), None when the hook failed: the agent sends the order again."""
        if active and epoch == self._epoch and self._answering():
            return self._renew(RoleOrder(active, epoch, valid_for, standby))
        async with self._lock:
            if epoch < self._epoch:
                return 409
            order = RoleOrder(active, epoch, valid_for if active else 0.0, standby)
            hook = self.config.activate if active else self.config.deactivate
            if not (await self._run(hook, order)).ok:
                log.warning("voicemail hook %s failed (epoch %d)", hook, epoch)
                return None
            self._epoch = epoch
            self._active_until = self._clock.monotonic() + valid_for if active else None
            return 200

    def _renew(self, order: RoleOrder) -> int:
        """The renewal of an order the server obeyed: extend it now and run the hook in the
        background, since the agent renews its Lease in the same step and a slow or hung
        server must not hold its heartbeat back (nor may a failed renewal send the agent back
        to a blocking order: the health check says whether the server is there). A failed
        renewal hook is tried again with the next renewal."""
        self._active_until = self._clock.monotonic() + order.valid_for
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.create_task(self._renew_hook(order))
        return 200

    async def _renew_hook(self, order: RoleOrder) -> None:
        async with self._lock:
            if self._epoch != order.epoch or self._active_until is None:
                return  # overtaken by a newer order
            if not (await self._run(self.config.activate, order)).ok:
                hook = self.config.activate
                log.warning("voicemail hook %s failed renewing epoch %d", hook, order.epoch)

    async def close(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
        if self._session is not None:
            await self._session.close()

    # ---- the rules -----------------------------------------------------------------------

    def _answering(self) -> bool:
        until = self._active_until
        return until is not None and self._clock.monotonic() < until

    async def _expire(self) -> None:
        """An active order that ran out unrenewed is a deactivation: run its hook here, since
        the server may not know how to expire an order on its own."""
        if self._active_until is None or self._answering():
            return
        async with self._lock:
            if self._active_until is None or self._answering():
                return
            order = RoleOrder(False, self._epoch, 0.0, _REFUSE)
            if (await self._run(self.config.deactivate, order)).ok:
                log.info("active order expired unrenewed: deactivated (epoch %d)", self._epoch)
                self._active_until = None

    async def _stats(self) -> Mapping[str, Any]:
        if self.config.stats is None:
            return {}
        outcome = await self._run(self.config.stats, None)
        if not outcome.ok:
            return {}
        try:
            data = json.loads(outcome.output or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    # ---- running hooks -------------------------------------------------------------------

    async def _run(self, hook: Hook, order: RoleOrder | None) -> Outcome:
        """Never raises: a hook that fails, hangs or cannot start is a failed one."""
        try:
            async with asyncio.timeout(self.config.timeout):
                if hook.kind == "http":
                    return await self._http(hook, order)
                if hook.kind == "tcp":
                    return await _tcp(hook.target)
                if hook.kind == "sip":
                    return await sip_options(hook.target)
                return await _exec(hook.argv, self._environment(order))
        except (TimeoutError, OSError, aiohttp.ClientError, ValueError) as error:
            log.debug("hook %s failed: %r", hook, error)
            return Outcome(False)

    async def _http(self, hook: Hook, order: RoleOrder | None) -> Outcome:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        if order is None:
            async with self._session.get(hook.target) as response:
                body = await response.content.read(OUTPUT_LIMIT)
                return Outcome(200 <= response.status < 300, output=body)
        if self._signer is None:
            async with self._session.post(hook.target, json=self._body(order)) as response:
                return Outcome(200 <= response.status < 300)
        data, headers = self._signer.sign(self._body(order))
        async with self._session.post(hook.target, data=data, headers=headers) as response:
            return Outcome(200 <= response.status < 300)

    def _body(self, order: RoleOrder) -> dict[str, Any]:
        until = self._clock.wall() + timedelta(seconds=order.valid_for)
        return {
            "active": order.active,
            "epoch": order.epoch,
            "validForMs": order_valid_ms(order.valid_for),
            "validUntil": until.isoformat().replace("+00:00", "Z") if order.active else None,
            "activeContact": order.standby.redirect or None,
            "holdMs": order_valid_ms(order.standby.hold_for),
        }

    def _environment(self, order: RoleOrder | None) -> dict[str, str]:
        env = dict(os.environ)
        if order is not None:
            body = self._body(order)
            env.update(
                PAIRWARDEN_ACTIVE="1" if order.active else "0",
                PAIRWARDEN_EPOCH=str(order.epoch),
                PAIRWARDEN_VALID_FOR_MS=str(body["validForMs"]),
                PAIRWARDEN_VALID_UNTIL=body["validUntil"] or "",
                PAIRWARDEN_ACTIVE_CONTACT=body["activeContact"] or "",
                PAIRWARDEN_HOLD_MS=str(body["holdMs"]),
            )
        return env


async def _exec(argv: tuple[str, ...], env: dict[str, str]) -> Outcome:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its own process group: what it started goes with it
    )
    try:
        output, _ = await process.communicate()
    except asyncio.CancelledError:  # the timeout: a hung hook must not outlive its call
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    return Outcome(process.returncode == 0, output=output[:OUTPUT_LIMIT])


async def _tcp(address: str) -> Outcome:
    host, _, port = address.rpartition(":")
    _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Outcome(True)


class _SipReply(asyncio.DatagramProtocol):
    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        status = sip_final_status(data, self.call_id)
        if status is not None and not self.status.done():
            self.status.set_result(status)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable: nothing listens there now (a crashed server), so say down
        at once rather than after the timeout, or a quick restart would go unseen."""
        if not self.status.done():
            self.status.set_exception(exc if isinstance(exc, OSError) else OSError(str(exc)))


async def sip_options(address: str, resend: float = 0.5) -> Outcome:
    """One SIP OPTIONS over UDP, resent after `resend` s (T1 by default) doubling (RFC 3261)
    until a final answer (the caller bounds the wait): any answer means the server is up (a
    404 for an unknown user too: it parsed the request). A probe resends sooner: a request
    that reached a server which then died is never answered, while the resend meets the
    closed port's ICMP answer at once."""
    host, _, port = address.rpartition(":")
    loop = asyncio.get_running_loop()
    call_id = secrets.token_hex(8)
    transport, reply = await loop.create_datagram_endpoint(
        lambda: _SipReply(call_id), remote_addr=(host.strip("[]"), int(port))
    )
    try:
        local = transport.get_extra_info("sockname")
        request = sip_options_request(address, (str(local[0]), int(local[1])), call_id)
        interval = resend
        while True:
            transport.sendto(request)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await asyncio.shield(reply.status)
                    return Outcome(True)
            interval = min(interval * 2, 4.0)
    finally:
        transport.close()


def sip_options_request(target: str, local: tuple[str, int], call_id: str) -> bytes:
    """Pure: the OPTIONS a SIP proxy sends to probe a server."""
    branch, tag = "z9hG4bK" + secrets.token_hex(6), secrets.token_hex(4)
    lines = [
        f"OPTIONS sip:{target} SIP/2.0",
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:pairwarden@{local[0]}>;tag={tag}",
        f"To: <sip:{target}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        "Accept: application/sdp",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sip_final_status(data: bytes, call_id: str) -> int | None:
    """Pure: the status of a final SIP response to our OPTIONS (`call_id`), else None."""
    head, _, _ = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0" or not parts[1].isdigit():
        return None
    status = int(parts[1])
    ours = any(
        name.strip().lower() in ("call-id", "i") and value.strip() == call_id
        for name, _, value in (line.partition(":") for line in lines[1:])
    )
    return status if ours and status >= 200 else None


def _count(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _percent(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class Unusable:
    """The adapter as configured cannot run: always down, never ordered (the hooks' error was
    logged at start)."""

    async def status(self) -> VoicemailView:
        return VoicemailView(up=False)

    async def order(
        self, active: bool, epoch: int, valid_for: float = 0.0, standby: StandbyCalls = _REFUSE
    ) -> int | None:
        return None

    async def close(self) -> None:
        pass
