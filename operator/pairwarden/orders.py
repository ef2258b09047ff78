"""Role orders that only the agent can give: one codec for the signer (the agent) and the
verifier (the voicemail process, or a third-party server), as `protocol.MemberReport` is for
the member Lease.

The voicemail's control port listens on the pod's loopback, so any process in the pod could
order a role there. An order is therefore signed: HMAC-SHA256 over the exact request body,
with a key the agent draws at each start and writes to a volume only it writes (an emptyDir
the voicemail container mounts read-only). The body carries `seq`, a counter that grows with
every order of one key: a verifier refuses a `seq` it has already passed, so an order of this
agent delivered late, or replayed, is never obeyed after a newer one. A new key (the agent
restarted) starts a new sequence, and every order signed with the old key is refused.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The emptyDir both containers mount: the agent read-write, the voicemail read-only.
ORDER_KEY_FILE = "/var/run/pairwarden/order/key"
AUTH_HEADER = "Authorization"
AUTH_SCHEME = "Pairwarden-HMAC-SHA256"
KEY_BYTES = 32


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
    """The agent's side: each order gets the next `seq` and a signature over its bytes."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._seq = 0

    def sign(self, order: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """(request body, headers) of `order` with its `seq`."""
        self._seq += 1
        body = json.dumps({**order, "seq": self._seq}, separators=(",", ":")).encode()
        return body, {AUTH_HEADER: signature(self.key, body), "Content-Type": "application/json"}


@dataclass(frozen=True)
class Checked:
    """The verifier's answer: the HTTP status to give (200: obey `order`) and why not."""

    status: int
    order: dict[str, Any] | None = None
    reason: str = ""


class OrderVerifier:
    """The server's side: authentic (401 otherwise), JSON with an integer `seq` (400), and
    newer than every authentic order of the same key before it (409: late or replayed). An
    authentic fresh order uses up its `seq` whatever the server then does with it."""

    def __init__(self) -> None:
        self._key: bytes | None = None
        self._seq = 0

    def check(self, key: bytes | None, body: bytes, header: str | None) -> Checked:
        if key is None:
            return Checked(401, reason="no order key: the agent has not written one")
        if not header or not hmac.compare_digest(header.strip(), signature(key, body)):
            return Checked(401, reason="the order is not signed with this pod's order key")
        try:
            order = json.loads(body)
        except ValueError:
            return Checked(400, reason="the order is not JSON")
        seq = order.get("seq") if isinstance(order, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool):
            return Checked(400, reason="the order has no integer seq")
        if key != self._key:
            self._key, self._seq = key, 0  # the agent restarted: a new sequence
        if seq <= self._seq:
            return Checked(409, reason=f"seq {seq} is not newer than {self._seq}: late or replayed")
        self._seq = seq
        return Checked(200, order=order)
