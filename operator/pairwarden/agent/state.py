"""The agent's persisted licensing clock, written atomically: a reader (or the agent after a
crash) sees the old file or the new one, never a partial one."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

from pairwarden.atomicfile import write_atomically
from pairwarden.protocol import parse_time

log = logging.getLogger(__name__)
STATE_FILE = "agent-state.json"


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
