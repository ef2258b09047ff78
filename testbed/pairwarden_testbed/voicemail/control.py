"""The control and health HTTP port the agent drives (local to the pod, no API cost).

The port listens on the pod's loopback only (`--control-address`, 127.0.0.1 by default):
only the agent beside the process, in the same network namespace, can order its role.

GET  /healthz  -> 200 "ok"
GET  /status   -> {role, epoch, answering, callsInProgress, inactiveCalls, messages,
                      cpuPercent, settings, [storeOnline, queuedMessages, sip...]}
POST /role     {"active": bool, "epoch": int, "validForMs": int, "issuedAtMs": int,
                "activeContact"?: str|null, "holdMs"?: int}
               with `Authorization: Pairwarden-HMAC-SHA256 <hex>` over the body, keyed by
               the agent's order key file (pairwarden.orders)
               -> 200 status | 401 not signed with the key (no change of role) | 400 malformed | 409
               stale (issued not after the last order taken or not fresh, or an older epoch while an
               active order is in force). Every order carries its expiry (`validForMs`, at most
               MAX_ORDER_MS): an "active" order that is not renewed in time demotes the process, so
               no order, lost agent or replay outlives the agent's own fencing deadline.
               `activeContact` ("host:port" of the active member's SIP port) makes a standby
               redirect SIP callers (302) rather than refuse them; `holdMs` (Force Failover) makes
               it hold a new call ringing that long while it may become active, then answer it or
               refuse it.
POST /load     {"busy": bool}  burn CPU for real (tests of the excessive-CPU rule)
POST /store    {"offline": bool}  take the message store offline by hand (tests of the UMR queue)
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from pairwarden.orders import OrderVerifier
from pairwarden.protocol import MAX_ORDER_MS, call_contact
from pairwarden_testbed.voicemail.core import StaleEpoch, VoicemailCore
from pairwarden_testbed.voicemail.messagestore import DirectoryMessageStore, MessageQueue
from pairwarden_testbed.voicemail.store import MessageDatabase


def parse_order(order: Any) -> tuple[bool, int, float]:
    """(active, epoch, valid_for seconds) of a /role body; ValueError/KeyError/TypeError if
    malformed. `validForMs` is mandatory and bounded: an order without an expiry would hold
    the role (and its epoch) for good."""
    if not isinstance(order, dict):
        raise TypeError("the order must be a JSON object")
    active, epoch, valid_ms = order["active"], order["epoch"], order["validForMs"]
    if not isinstance(active, bool) or not isinstance(epoch, int) or isinstance(epoch, bool):
        raise TypeError("active must be a boolean and epoch an integer")
    if not isinstance(valid_ms, int) or isinstance(valid_ms, bool):
        raise TypeError("validForMs must be an integer")
    if not 0 <= valid_ms <= MAX_ORDER_MS:
        raise ValueError(f"validForMs must be between 0 and {MAX_ORDER_MS}")
    return active, epoch, valid_ms / 1000.0


class CpuMeter:
    """CPU of this process in percent of one core (like `top`), over the last interval."""

    def __init__(self, min_interval: float = 0.5) -> None:
        self._min = min_interval
        self._last = (time.monotonic(), _cpu_seconds())
        self._percent = 0.0

    def percent(self) -> float:
        now, cpu = time.monotonic(), _cpu_seconds()
        elapsed = now - self._last[0]
        if elapsed >= self._min:
            self._percent = max(0.0, (cpu - self._last[1]) / elapsed * 100.0)
            self._last = (now, cpu)
        return self._percent


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Burner:
    """A busy thread: real CPU load, so the agent's sampler is tested end to end."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def set(self, busy: bool) -> None:
        if busy and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._burn, daemon=True, name="burner")
            self._thread.start()
        elif not busy and self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _burn(self) -> None:
        x = 0
        while not self._stop.is_set():
            for _ in range(10_000):
                x += 1


def make_app(
    core: VoicemailCore,
    store: MessageDatabase,
    settings: Mapping[str, Any] | None = None,
    *,
    queue: MessageQueue | None = None,
    extra_status: Callable[[], Mapping[str, Any]] | None = None,
    order_key: Callable[[], bytes | None] = lambda: None,
) -> web.Application:
    """`settings`: this member's own settings, never replicated; the agent digests them so the
    operator can see drift between members. `queue`: the voice message path (UMR queue and
    message store), `extra_status`: more fields for /status (the SIP front end's).
    `order_key`: the agent's current order key (read per order: a restarted agent writes a
    new one); None refuses every order."""
    meter = CpuMeter()
    burner = Burner()
    verifier = OrderVerifier()

    async def status() -> dict[str, Any]:
        body = core.status()
        body["messages"] = await asyncio.to_thread(store.count)
        body["cpuPercent"] = round(meter.percent(), 1)
        body["busy"] = burner.busy
        body["settings"] = dict(settings or {})
        if queue is not None:
            body["storeOnline"] = await asyncio.to_thread(queue.store.online)
            body["queuedMessages"] = await asyncio.to_thread(queue.queued)
        if extra_status is not None:
            body.update(extra_status())
        return body

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def get_status(_: web.Request) -> web.Response:
        return web.json_response(await status())

    async def post_role(request: web.Request) -> web.Response:
        key = await asyncio.to_thread(order_key)
        checked = verifier.check(key, await request.read(), request.headers.get("Authorization"))
        if checked.order is None:
            return web.json_response({"error": checked.reason}, status=checked.status)
        try:
            order = checked.order
            active, epoch, valid_for = parse_order(order)
            contact = order.get("activeContact", core.redirect)
            if contact is not None and not isinstance(contact, str):
                raise TypeError("activeContact must be a string or null")
            if contact and not call_contact(contact):
                raise ValueError("activeContact must be host:port")
            hold_ms = order.get("holdMs", round(core.hold_for * 1000))
            if not isinstance(hold_ms, int) or isinstance(hold_ms, bool):
                raise TypeError("holdMs must be an integer")
            if not 0 <= hold_ms <= MAX_ORDER_MS:
                raise ValueError(f"holdMs must be between 0 and {MAX_ORDER_MS}")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        try:
            core.set_role(active, epoch, valid_for)
        except StaleEpoch as exc:
            return web.json_response({"error": str(exc), **core.status()}, status=409)
        core.redirect = contact or None
        core.hold_for = hold_ms / 1000.0
        return web.json_response(await status())

    async def post_store(request: web.Request) -> web.Response:
        order = await request.json()
        if queue is None or not isinstance(queue.store, DirectoryMessageStore):
            return web.json_response({"error": "no directory message store"}, status=404)
        if not isinstance(order, dict) or not isinstance(order.get("offline"), bool):
            return web.json_response({"error": "offline must be a boolean"}, status=400)
        queue.store.forced_offline = order["offline"]
        return web.json_response(await status())

    async def post_load(request: web.Request) -> web.Response:
        order = await request.json()
        await asyncio.to_thread(burner.set, bool(order.get("busy")))
        return web.json_response(await status())

    async def on_cleanup(_: web.Application) -> None:
        burner.set(False)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", get_status)
    app.router.add_post("/role", post_role)
    app.router.add_post("/load", post_load)
    app.router.add_post("/store", post_store)
    app.on_cleanup.append(on_cleanup)
    return app
