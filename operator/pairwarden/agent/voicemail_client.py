"""The agent's view of its voicemail process through the local control port."""

from __future__ import annotations

from typing import Any

import aiohttp

from pairwarden.agent.core import StandbyCalls, VoicemailView
from pairwarden.orders import OrderSigner
from pairwarden.protocol import MAX_ORDER_MS

_REFUSE = StandbyCalls()


class VoicemailClient:
    """The reference process's control port. Every order is signed with the agent's order
    key (`pairwarden.orders`): the process obeys no one else in the pod."""

    def __init__(self, base_url: str, signer: OrderSigner, timeout: float = 0.5) -> None:
        self._signer = signer
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def status(self) -> VoicemailView:
        """Any failure to read the status counts as the service being down; a timeout is
        marked `unread` (the runner gives it VOICEMAIL_SLOW_GRACE, `judged_view`)."""
        try:
            async with self._http().get(f"{self._base}/status") as r:
                if r.status != 200:
                    return VoicemailView(up=False)
                body: dict[str, Any] = await r.json()
        except TimeoutError:  # aiohttp's read and connect timeouts too: slow, not gone
            return VoicemailView(up=False, unread=True)
        except (aiohttp.ClientError, ValueError, OSError):
            return VoicemailView(up=False)
        cpu = body.get("cpuPercent")
        settings = body.get("settings")
        return VoicemailView(
            # A process finishing its calls before it exits takes no new ones: down, so the
            # other member takes over at once rather than when the process is gone.
            up=not body.get("stopping"),
            answering=bool(body.get("answering")),
            calls=int(body.get("callsInProgress") or 0),
            inactive_calls=int(body.get("inactiveCalls") or 0),
            cpu_percent=float(cpu) if isinstance(cpu, int | float) else None,
            settings=settings if isinstance(settings, dict) else None,
            epoch=int(body.get("epoch") or 0),
        )

    async def order(
        self, active: bool, epoch: int, valid_for: float = 0.0, standby: StandbyCalls = _REFUSE
    ) -> int | None:
        """POST /role; the HTTP status, or None if the process did not answer. The order
        always carries its expiry (`validForMs`, bounded by MAX_ORDER_MS): the process
        refuses one without. It also says what to do with calls while not answering: hold
        them (`holdMs`) or redirect them to the active member (`activeContact`). 401: the
        process does not hold this agent's key (its key volume is missing or not shared)."""
        body: dict[str, Any] = {
            "active": active,
            "epoch": epoch,
            "validForMs": order_valid_ms(valid_for),
            "holdMs": order_valid_ms(standby.hold_for),
            "activeContact": standby.redirect or None,
        }
        data, headers = self._signer.sign(body)
        try:
            async with self._http().post(f"{self._base}/role", data=data, headers=headers) as r:
                return r.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def order_valid_ms(valid_for: float) -> int:
    """An order's `validForMs`: whole milliseconds within [0, MAX_ORDER_MS]. Rounded down, so
    an order never claims more time than the agent's own fencing deadline leaves."""
    return min(MAX_ORDER_MS, max(0, int(valid_for * 1000)))
