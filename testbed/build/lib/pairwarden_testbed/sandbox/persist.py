"""Durable storage for `--data-dir`: one SQLite row per object plus the resourceVersion
counter, committed (WAL, synchronous=FULL) before the API answers, so a kill -9 loses no
acknowledged write."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

Key = tuple[str, str]


class SqliteBackend:
    def __init__(self, data_dir: str | Path) -> None:
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path / "sandbox.db", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (grp TEXT, plural TEXT, ns TEXT, name TEXT, "
            "body TEXT, PRIMARY KEY (grp, plural, ns, name))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")

    def load(self) -> tuple[int, list[tuple[Key, dict[str, Any]]]]:
        row = self._db.execute("SELECT v FROM meta WHERE k = 'rv'").fetchone()
        rows = self._db.execute("SELECT grp, plural, body FROM objects").fetchall()
        return (int(row[0]) if row else 0), [((g, p), json.loads(b)) for g, p, b in rows]

    def save(self, rv: int, key: Key, ns: str, name: str, obj: dict[str, Any] | None) -> None:
        """Store (or delete, when obj is None) one object and the counter atomically."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if obj is None:
                db.execute(
                    "DELETE FROM objects WHERE grp=? AND plural=? AND ns=? AND name=?",
                    (*key, ns, name),
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)",
                    (*key, ns, name, json.dumps(obj, separators=(",", ":"))),
                )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (str(rv),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()
