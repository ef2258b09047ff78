"""Pure validation of the relative paths clients name, and the one I/O check (symlinks).

Every path a client sends is checked here before anything touches the disk, so a bad name is
refused with a 4xx and the tree is never modified.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

STATE_DIR = ".pairwarden-replication"
MAX_PATH = 4096
MAX_COMPONENT = 255


class PathRefused(ValueError):
    """A refused path: `status` is the HTTP status, `reason` a stable machine-readable word."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def check_relative(path: str) -> list[str]:
    """The components of a well-formed relative POSIX path, or PathRefused(400)."""
    if not path:
        raise PathRefused(400, "bad-path", "empty path")
    if "\x00" in path:
        raise PathRefused(400, "bad-path", "NUL byte in path")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH:
        raise PathRefused(400, "bad-path", "path too long")
    if path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
        raise PathRefused(400, "bad-path", f"absolute or non-POSIX path: {path!r}")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise PathRefused(400, "bad-path", f"empty, '.' or '..' component in {path!r}")
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT:
            raise PathRefused(400, "bad-path", "path component too long")
    return parts


def check_directories(directories: Sequence[str]) -> list[str]:
    """The configured directories, validated (they come from the FailoverPair spec)."""
    out = []
    for d in directories:
        parts = check_relative(d.rstrip("/"))
        if parts[0] == STATE_DIR:
            raise PathRefused(400, "bad-path", f"{STATE_DIR} is reserved")
        clean = "/".join(parts)
        if clean in out:
            raise PathRefused(400, "bad-path", f"{clean!r} is listed twice")
        out.append(clean)
    return out


def check_file_path(path: str, directories: Sequence[str]) -> str:
    """A path naming a file strictly inside one of the configured directories."""
    parts = check_relative(path)
    clean = "/".join(parts)
    if not any(clean.startswith(d + "/") for d in directories):
        raise PathRefused(403, "outside-directories", f"{clean!r} is not in a replicated directory")
    return clean


def resolve_inside(root: Path, clean: str) -> Path:
    """The absolute path of `clean` under `root`, refusing any symlink on the way (in the
    directories or the file itself) that leads out of the root. A missing file is fine."""
    real_root = Path(os.path.realpath(root))
    candidate = real_root / clean
    resolved = Path(os.path.realpath(candidate))
    if resolved != candidate and not resolved.is_relative_to(real_root):
        raise PathRefused(403, "symlink-escape", f"{clean!r} leads outside the tree")
    if candidate.is_symlink():
        raise PathRefused(403, "symlink-escape", f"{clean!r} is a symlink")
    parent = candidate.parent
    if Path(os.path.realpath(parent)) != parent:
        raise PathRefused(403, "symlink-escape", f"a directory of {clean!r} is a symlink")
    return candidate
