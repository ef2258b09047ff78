"""The agent's persisted licensing clock, written atomically: a reader (or the agent after a
crash) sees the old file or the new one, never a partial one."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import datetime
from pathlib import Path

from pairwarden.protocol import parse_time

log = logging.getLogger(__name__)
STATE_FILE = "agent-state.json"


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename over the old one, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AgentState:
    """`primaryContact`: the last time this (secondary) member saw the primary renew."""

    def __init__(self, state_dir: Path | None) -> None:
        self._path = state_dir / STATE_FILE if state_dir else None

    def load_primary_contact(self) -> datetime | None:
        if self._path is None or not self._path.exists():
            return None
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("unreadable state file %s: %s", self._path, exc)
            return None
        value = data.get("primaryContact") if isinstance(data, dict) else None
        return parse_time(value) if isinstance(value, str) else None

    def save_primary_contact(self, when: datetime) -> None:
        if self._path is None:
            return
        body = {"primaryContact": when.isoformat().replace("+00:00", "Z")}
        write_atomically(self._path, json.dumps(body).encode())
