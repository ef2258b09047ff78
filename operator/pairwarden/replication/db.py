"""The database: consistent snapshots on the source, atomic installs on the target.

A snapshot is made with SQLite's online backup API into a fresh file switched to rollback
journal mode, so it is one self-contained file. It is made only when the data changed:
`PRAGMA data_version` on a connection kept open changes whenever another connection commits,
and the snapshot of identical content is byte-identical (measured), so its SHA-256 is the
content fingerprint the target compares with what it installed last.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pairwarden.atomicfile import fsync_dir, write_atomically
from pairwarden.protocol import DATABASE_NAME
from pairwarden.replication.manifest import sha256_file
from pairwarden.replication.paths import STATE_DIR


@dataclass(frozen=True)
class SnapshotInfo:
    sha256: str
    size: int

    @property
    def version(self) -> str:
        """Content-addressed: equal versions mean equal databases."""
        return self.sha256[:16]

    def to_wire(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "version": self.version}


class Database:
    """Snapshots of `<root>/UnityDb.sqlite` (source side) and installs of one (target side)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / DATABASE_NAME
        self.state = root / STATE_DIR
        self.snapshot_path = self.state / "db-snapshot.sqlite"
        self.installed_path = self.state / "db-installed.json"
        self.backups = 0  # snapshots taken: tests read it
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._conn_ino: int | None = None
        self._key: tuple[int, int] | None = None
        self._info: SnapshotInfo | None = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._conn_ino, self._key = None, None, None

    def snapshot(self) -> SnapshotInfo | None:
        """The current snapshot, taken anew only if the database changed since the last one.
        None when there is no database."""
        with self._lock:
            try:
                ino = os.stat(self.path).st_ino
            except FileNotFoundError:
                self._drop()
                return None
            if self._conn is None or self._conn_ino != ino:  # replaced (an install): reopen
                self._drop()
                self._conn = sqlite3.connect(self.path, check_same_thread=False)
                self._conn_ino = ino
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            key = (ino, version)
            if key == self._key and self._info is not None and self.snapshot_path.exists():
                return self._info
            self._info = self._backup()
            self._key = key
            return self._info

    def _backup(self) -> SnapshotInfo:
        assert self._conn is not None
        self.state.mkdir(parents=True, exist_ok=True)
        tmp = self.state / "db-snapshot.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        dest = sqlite3.connect(tmp)
        try:
            self._conn.backup(dest)
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.snapshot_path)
        fsync_dir(self.state)
        self.backups += 1
        return SnapshotInfo(sha256_file(self.snapshot_path), self.snapshot_path.stat().st_size)

    def installed(self) -> SnapshotInfo | None:
        """What the last install put here, if the file is still exactly that one (a member
        that was active since has changed it, and then nothing is known)."""
        try:
            data = json.loads(self.installed_path.read_bytes())
            st = os.stat(self.path)
        except (OSError, ValueError):
            return None
        if [st.st_ino, st.st_size, st.st_mtime_ns] != data.get("stat"):
            return None
        return SnapshotInfo(str(data["sha256"]), int(data["size"]))

    def install(self, staged: Path, info: SnapshotInfo) -> None:
        """Rename a verified, fsynced snapshot over the database. A stale `-wal` would be
        replayed onto the new file by the next opener, so the old WAL and SHM go first (and
        again after, in case an opener recreated them in between)."""
        with self._lock:
            self._drop()
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            os.replace(staged, self.path)
            for suffix in ("-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            fsync_dir(self.root)
            st = os.stat(self.path)
            record = {
                "sha256": info.sha256,
                "size": info.size,
                "stat": [st.st_ino, st.st_size, st.st_mtime_ns],
            }
            write_atomically(self.installed_path, json.dumps(record).encode())
