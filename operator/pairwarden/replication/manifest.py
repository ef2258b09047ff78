"""The manifest of the replicated tree and the diff between two manifests.

`diff` is pure. `Scanner` walks the tree and hashes only files whose (size, mtime_ns, inode)
changed since the cache last saw them; the cache is a JSON state file written atomically, so
a restart of the agent does not rehash a gigabyte of unchanged prompts.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pairwarden.atomicfile import write_atomically

CHUNK = 1 << 20
# A file modified this recently may change again within the same mtime tick: do not cache it.
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    mtime_ns: int
    sha256: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "sha256": self.sha256,
        }

    @staticmethod
    def from_wire(data: dict[str, Any]) -> Entry:
        return Entry(
            str(data["path"]), int(data["size"]), int(data["mtime_ns"]), str(data["sha256"])
        )


@dataclass(frozen=True)
class Plan:
    """What to do to make the target equal the source: copy (new or changed) and delete."""

    copy: tuple[Entry, ...] = ()
    delete: tuple[str, ...] = ()

    @property
    def bytes_to_copy(self) -> int:
        return sum(e.size for e in self.copy)

    @property
    def empty(self) -> bool:
        return not self.copy and not self.delete


def diff(source: Iterable[Entry], target: Iterable[Entry]) -> Plan:
    """Copy what is new or differs by checksum (size and mtime alone do not decide: mtimes
    are not preserved across members), delete what the source no longer has."""
    have = {e.path: e for e in target}
    want = {e.path: e for e in source}
    copy = tuple(e for p, e in sorted(want.items()) if p not in have or have[p].sha256 != e.sha256)
    delete = tuple(sorted(p for p in have if p not in want))
    return Plan(copy, delete)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


CacheKey = tuple[int, int, int]  # size, mtime_ns, inode


@dataclass
class Scanner:
    """Builds manifests of `directories` under `root`, reusing hashes from `cache_path`."""

    root: Path
    directories: Sequence[str]
    cache_path: Path
    hashed: int = 0  # files hashed since creation: tests and the benchmark read it
    _cache: dict[str, tuple[CacheKey, str]] = field(default_factory=dict)
    _loaded: bool = False

    def _load(self) -> None:
        self._loaded = True
        try:
            data = json.loads(self.cache_path.read_bytes())
            self._cache = {p: ((v[0], v[1], v[2]), v[3]) for p, v in data["files"].items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            self._cache = {}

    def scan(self, only: Sequence[str] | None = None) -> list[Entry]:
        """Regular files in the directories (symlinks and special files are not replicated),
        sorted by path. `only` narrows to some of the configured directories."""
        if not self._loaded:
            self._load()
        now = time.time_ns()
        entries: list[Entry] = []
        fresh: dict[str, tuple[CacheKey, str]] = {}
        dirty = False
        for d in self.directories:
            if only is not None and d not in only:
                fresh.update({p: v for p, v in self._cache.items() if p.startswith(d + "/")})
                continue
            for rel, st in walk(self.root, d):
                key: CacheKey = (st.st_size, st.st_mtime_ns, st.st_ino)
                cached = self._cache.get(rel)
                if cached is not None and cached[0] == key:
                    digest = cached[1]
                else:
                    try:
                        digest = sha256_file(self.root / rel)
                    except OSError:
                        continue  # vanished while scanning: the next cycle sees it
                    self.hashed += 1
                    dirty = True
                entries.append(Entry(rel, st.st_size, st.st_mtime_ns, digest))
                if now - st.st_mtime_ns > RACY_NS:
                    fresh[rel] = (key, digest)
                else:
                    dirty = True
        if dirty or fresh.keys() != self._cache.keys():
            self._cache = fresh
            payload = {"version": 1, "files": {p: [*k, h] for p, (k, h) in fresh.items()}}
            write_atomically(self.cache_path, json.dumps(payload).encode())
        entries.sort(key=lambda e: e.path)
        return entries


def walk(root: Path, directory: str) -> Iterable[tuple[str, os.stat_result]]:
    base = root / directory
    if base.is_symlink() or not base.is_dir():
        return
    stack = [directory]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir) as it:
                items = list(it)
        except OSError:
            continue
        for item in items:
            rel = f"{rel_dir}/{item.name}"
            if item.is_symlink():
                continue
            if item.is_dir(follow_symlinks=False):
                stack.append(rel)
            elif item.is_file(follow_symlinks=False):
                try:
                    yield rel, item.stat(follow_symlinks=False)
                except OSError:
                    continue
