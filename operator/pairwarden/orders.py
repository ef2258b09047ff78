"""Role orders that only the agent can give: one codec for the signer (the agent) and the
verifier (the voicemail process, or a third-party server), as `protocol.MemberReport` is for
the member Lease.

The voicemail's control port listens on the pod's loopback, so any process in the pod could
order a role there. An order is therefore signed: HMAC-SHA256 over the exact request body,
with a key the agent draws at each start and writes to a volume only it writes (an emptyDir
the voicemail container mounts read-only). The body carries `issuedAtMs`, the agent's wall
clock (the same host's clock the server reads) in milliseconds, strictly growing per key: a
verifier refuses an order issued more than ORDER_FRESH_MS from its own now, and one not newer
than the last it took of the same key, so an order delivered late or replayed is never obeyed
after a newer one, and no order, even signed, can hold the sequence beyond that window. A new
key (the agent restarted) starts afresh, and every order signed with the old one is refused.

This replaces the permanent epoch floor the voicemail used to keep ("never an order older
than the highest epoch ever obeyed"): that floor let one forged order with a huge epoch make
the member refuse its own agent forever. The epoch a member accepts now follows what its
agent has read from the active Lease (docs/voicemail-contract.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The emptyDir both containers mount: the agent read-write, the voicemail read-only.
ORDER_KEY_FILE = "/var/run/pairwarden/order/key"
AUTH_HEADER = "Authorization"
AUTH_SCHEME = "Pairwarden-HMAC-SHA256"
KEY_BYTES = 32
# How far an order's `issuedAtMs` may be from the server's clock: far above a loopback
# request's delay (the agent gives up on one after 0.5 s), and the longest that a signed order
# stamped in the future could keep the agent's own orders out.
ORDER_FRESH_MS = 5_000


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def write_key(path: Path, key: bytes) -> None:
    """Replace the key file atomically (a reader never sees half a key), readable by the
    owner and the pod's group (fsGroup) only."""
    staged = path.with_name(f".{path.name}.tmp")
    staged.unlink(missing_ok=True)  # left by a run killed here; read-only, so not reopened
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o440)
    try:
        os.write(fd, key.hex().encode())
    finally:
        os.close(fd)
    os.replace(staged, path)


def read_key(path: Path) -> bytes | None:
    """The key in the file, or None when there is none (no file, unreadable, malformed)."""
    try:
        key = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return key if len(key) == KEY_BYTES else None


def signature(key: bytes, body: bytes) -> str:
    """The `Authorization` header value of an order whose request body is `body`."""
    return f"{AUTH_SCHEME} {hmac.new(key, body, hashlib.sha256).hexdigest()}"


class OrderSigner:
    """The agent's side: each order gets its `issuedAtMs` and a signature over its bytes."""

    def __init__(self, key: bytes, wall: Callable[[], float] = time.time) -> None:
        self.key = key
        self._wall = wall
        self._last = 0

    def sign(self, order: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """(request body, headers) of `order` stamped with the next `issuedAtMs`."""
        self._last = max(self._last + 1, int(self._wall() * 1000))
        body = json.dumps({**order, "issuedAtMs": self._last}, separators=(",", ":")).encode()
        return body, {AUTH_HEADER: signature(self.key, body), "Content-Type": "application/json"}


@dataclass(frozen=True)
class Checked:
    """The verifier's answer: the HTTP status to give (200: obey `order`) and why not."""

    status: int
    order: dict[str, Any] | None = None
    reason: str = ""


class OrderVerifier:
    """The server's side: authentic (401 otherwise), JSON with an integer `issuedAtMs` (400),
    fresh and newer than every order of the same key taken before (409: late, replayed or
    stamped far from now). An authentic fresh order is taken whatever the server then does
    with it."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._key: bytes | None = None
        self._last = 0

    def check(self, key: bytes | None, body: bytes, header: str | None) -> Checked:
        if key is None:
            return Checked(401, reason="no order key: the agent has not written one")
        if not header or not hmac.compare_digest(header.strip(), signature(key, body)):
            return Checked(401, reason="the order is not signed with this pod's order key")
        try:
            order = json.loads(body)
        except ValueError:
            return Checked(400, reason="the order is not JSON")
        issued = order.get("issuedAtMs") if isinstance(order, dict) else None
        if not isinstance(issued, int) or isinstance(issued, bool):
            return Checked(400, reason="the order has no integer issuedAtMs")
        now = int(self._wall() * 1000)
        if abs(issued - now) > ORDER_FRESH_MS:
            return Checked(409, reason=f"issued {issued - now} ms from now: not fresh")
        if key != self._key or self._last > now + ORDER_FRESH_MS:
            self._key, self._last = key, 0  # a new agent, or the clock went back
        if issued <= self._last:
            return Checked(409, reason=f"issued at {issued}, not after {self._last}: late")
        self._last = issued
        return Checked(200, order=order)
