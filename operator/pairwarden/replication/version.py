"""The data version an agent publishes: is there anything to replicate?"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from pathlib import Path

from pairwarden.protocol import DATABASE_NAME
from pairwarden.replication.manifest import walk


def fingerprint(root: Path, directories: Sequence[str]) -> str:
    """A cheap version of the replicated data: (path, size, mtime) of every file and of the
    database, hashed, with no file read. The agent publishes it in its Lease report so the
    operator starts a replication Job only when the active member's data changed, as the
    reference replicates "if there are changes"."""
    digest = hashlib.sha256()
    for directory in directories:
        for rel, st in sorted(walk(root, directory), key=lambda item: item[0]):
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for name in (DATABASE_NAME, DATABASE_NAME + "-wal"):
        with contextlib.suppress(OSError):
            st = (root / name).stat()
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
