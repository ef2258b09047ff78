"""Shared helpers for the replication tests: trees, hashes and file API servers."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pairwarden.replication.fileapi import make_app, make_token, serve
from pairwarden_testbed import faults

PAIR = "vm"
TOKEN = make_token(PAIR, "s3cret-Token_value")
DIRS = ["Localize/Prompts", "Snapshot", "Stream Files", "UnityMTA"]


def tree(root: Path) -> dict[str, str]:
    """Every regular file under the replicated directories -> its SHA-256."""
    out = {}
    for d in DIRS:
        base = root / d
        for dirpath, _, files in os.walk(base):
            for name in files:
                path = Path(dirpath) / name
                rel = path.relative_to(root).as_posix()
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def seed(root: Path, n: int = 12) -> None:
    for d in DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    write(root, {f"{DIRS[i % len(DIRS)]}/f{i:03d}.bin": os.urandom(1000 + i) for i in range(n)})


@asynccontextmanager
async def member(root: Path, pair: str = PAIR, token: str = TOKEN,
                 max_body: int = 1 << 30) -> AsyncIterator[str]:  # fmt: skip
    """An in-process file API on 127.0.0.1; yields its base URL."""
    runner, port = await serve(make_app(root, DIRS, pair, token, max_body), "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}/replication"
    finally:
        await runner.cleanup()


class MemberProcess:
    """A file API in its own process, so a test can kill -9 it."""

    def __init__(
        self,
        root: Path,
        token_file: Path,
        args: tuple[str, ...] = (),
        kill_at: str | None = None,
    ) -> None:
        """`kill_at`: a checkpoint (pairwarden.checkpoints) at which the process kills itself."""
        root.mkdir(parents=True, exist_ok=True)
        argv = ["-m", "pairwarden.replication.serve", "--root", str(root), "--pair", PAIR,
                "--token-file", str(token_file), "--directories", *DIRS, *args]  # fmt: skip
        command = faults.command(kill_at, *argv) if kill_at else [sys.executable, *argv]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE)
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Read lazily, so several members start in parallel."""
        if self._url is None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().decode()
            assert line.startswith("port "), line
            self._url = f"http://127.0.0.1:{int(line.split()[1])}/replication"
        return self._url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
