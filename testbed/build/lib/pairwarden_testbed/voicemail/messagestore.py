"""The message store (a place apart from both members) and the UMR queue in front of it.

The reference keeps voice messages off the Unity servers, in a message store both servers
reach, so messages survive a failover without replication. When the store is unreachable
the Unity Messaging Repository (the `UnityMTA` directory, which *is* replicated) holds them
until the store comes back. Here the store is a directory (a shared volume), behind the
small `MessageStore` interface so another backend can replace it.

Delivery is idempotent by message id (a file named after it), so a queued message that was
replicated to the other member and drained there too lands once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pairwarden.atomicfile import write_atomically

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def safe_name(text: str) -> str:
    """A mailbox or id usable as one path component (never `..`, never a separator)."""
    name = _SAFE.sub("_", text)[:64].lstrip(".")
    return name or "_"


@dataclass(frozen=True)
class Message:
    mailbox: str
    caller: str
    audio: bytes  # a WAV file
    duration_ms: int
    pod: str
    epoch: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    received: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def meta(self) -> dict[str, object]:
        out = asdict(self)
        del out["audio"]
        return out


class StoreOffline(OSError):
    """The message store cannot take a message now."""


class MessageStore(Protocol):
    def deliver(self, message: Message) -> str:
        """Store the message (idempotent by id); its id. `StoreOffline` if unreachable."""
        ...

    def count(self, mailbox: str) -> int:
        """Messages in the mailbox (all of them count as new: nobody listens yet)."""
        ...

    def online(self) -> bool: ...


class DirectoryMessageStore:
    """`<root>/<mailbox>/<id>.wav` plus `<id>.json`. The root is never created here: a missing
    root means the volume is not mounted, which is "offline", not "make an empty store"."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.forced_offline = False  # the control API's test toggle

    def online(self) -> bool:
        return (
            not self.forced_offline
            and self.root.is_dir()
            and os.access(self.root, os.W_OK | os.X_OK)
        )

    def deliver(self, message: Message) -> str:
        if not self.online():
            raise StoreOffline(f"message store {self.root} is offline")
        box = self.root / safe_name(message.mailbox)
        name = safe_name(message.id)
        try:
            box.mkdir(exist_ok=True)
            if not (box / f"{name}.wav").exists():
                write_atomically(box / f"{name}.json", json.dumps(message.meta()).encode())
                write_atomically(box / f"{name}.wav", message.audio)
        except OSError as exc:
            raise StoreOffline(f"message store {self.root}: {exc}") from exc
        return message.id

    def count(self, mailbox: str) -> int:
        return len(self.messages(mailbox))

    def messages(self, mailbox: str) -> list[Path]:
        """The mailbox's WAV files (temporary files of a delivery in flight excluded)."""
        box = self.root / safe_name(mailbox)
        try:
            return sorted(p for p in box.iterdir() if p.suffix == ".wav" and p.name[0] != ".")
        except OSError:
            return []


Delivered = Callable[[Message], None]


class MessageQueue:
    """The UMR: messages wait in `UnityMTA/` while the store is offline, and `drain()` moves
    them on. `listeners` run after each delivery (message notification, MWI), in the
    delivering thread."""

    def __init__(self, store: MessageStore, directory: Path) -> None:
        self.store = store
        self.dir = directory
        self.listeners: list[Delivered] = []
        self._lock = threading.Lock()

    def _on_delivered(self, message: Message) -> None:
        for listener in self.listeners:
            try:
                listener(message)
            except Exception:
                log.exception("message %s: a delivery listener failed", message.id)

    def submit(self, message: Message) -> str:
        """'delivered' or 'queued'. Never loses the message short of a full local disk."""
        with self._lock:
            try:
                self.store.deliver(message)
            except StoreOffline as exc:
                log.warning("message %s queued in UnityMTA: %s", message.id, exc)
                self._enqueue(message)
                return "queued"
        self._on_delivered(message)
        return "delivered"

    def _enqueue(self, message: Message) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = safe_name(message.id)
        write_atomically(self.dir / f"{name}.wav", message.audio)
        # The .json goes last: drain only picks up complete entries.
        write_atomically(self.dir / f"{name}.json", json.dumps(message.meta()).encode())

    def queued(self) -> int:
        try:
            return sum(1 for p in self.dir.glob("*.json") if not p.name.startswith("."))
        except OSError:
            return 0

    def drain(self) -> int:
        """Deliver what waits, oldest first, until the store refuses; how many went."""
        sent: list[Message] = []
        with self._lock:
            if not self.store.online():
                return 0
            for meta_path in sorted(self.dir.glob("*.json"), key=_mtime):
                message = _load(meta_path)
                if message is None:
                    continue
                try:
                    self.store.deliver(message)
                except StoreOffline:
                    break
                meta_path.unlink(missing_ok=True)
                meta_path.with_suffix(".wav").unlink(missing_ok=True)
                sent.append(message)
        for message in sent:
            self._on_delivered(message)
        return len(sent)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _load(meta_path: Path) -> Message | None:
    try:
        meta = json.loads(meta_path.read_text())
        audio = meta_path.with_suffix(".wav").read_bytes()
        return Message(
            mailbox=str(meta["mailbox"]),
            caller=str(meta["caller"]),
            audio=audio,
            duration_ms=int(meta["duration_ms"]),
            pod=str(meta["pod"]),
            epoch=int(meta["epoch"]),
            id=str(meta["id"]),
            received=str(meta["received"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("skipping unreadable queued message %s: %s", meta_path.name, exc)
        return None
