"""The reference's data layout under the data directory and its SQLite message database.

The six directory names are those the reference replicates, so the replication Jobs copy a
tree shaped like the real one.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from pairwarden.protocol import REPLICATED_DIRECTORIES

DATA_DIRECTORIES = REPLICATED_DIRECTORIES


def prepare_data_dir(root: Path) -> None:
    for name in DATA_DIRECTORIES:
        (root / name).mkdir(parents=True, exist_ok=True)


class MessageDatabase:
    """The reference's message database (UnityDb.sqlite), replicated as a snapshot: messages
    left by callers; one connection shared behind a lock (writes are rare). Not to be confused
    with the `messagestore.MessageStore` interface, where recorded audio is kept."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS messages ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " caller TEXT NOT NULL, body TEXT NOT NULL, pod TEXT NOT NULL,"
            " epoch INTEGER NOT NULL, received TEXT NOT NULL)"
        )

    def add(self, caller: str, body: str, pod: str, epoch: int) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO messages (caller, body, pod, epoch, received) VALUES (?, ?, ?, ?, ?)",
                (caller, body, pod, epoch, datetime.now(UTC).isoformat()),
            )
            return int(cur.lastrowid or 0)

    def count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
            return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
