"""kill -9 of the replicate process or of the target's file API at any point: once the
target is up again its visible tree is exactly as before or exactly as after, never mixed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pairwarden.replication.client import CLIENT_FAULT_ENV
from pairwarden.replication.storage import FAULT_ENV

from .helpers import TOKEN, MemberProcess, seed, tree, write


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, str], dict[str, str]]]:
    """A source with 30 files and a target holding an older copy: (a, b, before, after)."""
    a, b = tmp_path / "a", tmp_path / "b"
    seed(a, 30)
    shutil.copytree(a, b)
    write(a, {f"UnityMTA/f{i:03d}.bin": os.urandom(200_000) for i in (3, 7, 11, 15, 19)})
    write(a, {f"Snapshot/new{i}.bin": os.urandom(50_000) for i in range(6)})
    (a / "Snapshot/f001.bin").unlink()
    (a / "Snapshot/f005.bin").unlink()
    yield a, b, tree(b), tree(a)


def replicate(src: str, dst: str, token_file: Path, env: dict[str, str] | None = None,
              report: Path | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    argv = [sys.executable, "-m", "pairwarden.cli", "replicate", "--from", src, "--to", dst,
            "--token-file", str(token_file), "--pair", "vm", "--concurrency", "2"]  # fmt: skip
    if report is not None:
        argv += ["--report-json", str(report)]
    return subprocess.Popen(argv, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def quiesce(url: str) -> None:
    """The manifest waits for the member's writer lock: a commit the dead client started
    has finished once this answers."""
    request = urllib.request.Request(
        url + "/manifest", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("uploads", [1, 4, 11])
def test_replicate_killed_after_some_uploads_changes_nothing(
    roots: tuple[Path, Path, dict[str, str], dict[str, str]], token_file: Path, uploads: int
) -> None:
    a, b, before, after = roots
    src, dst = MemberProcess(a, token_file), MemberProcess(b, token_file)
    try:
        proc = replicate(
            src.url, dst.url, token_file, {CLIENT_FAULT_ENV: f"after-upload:{uploads}"}
        )
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        quiesce(dst.url)
        assert tree(b) == before
        proc = replicate(src.url, dst.url, token_file)  # the next Job finishes the work
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        report = json.loads(out.decode().splitlines()[-1])
        assert report["ok"] and report["files"] == 11 and report["deleted"] == 2
        assert tree(b) == after
    finally:
        src.stop()
        dst.stop()


@pytest.mark.parametrize(
    "point", ["commit:before-journal", "commit:after-journal", "commit:after-rename:1",
              "commit:after-rename:6", "commit:after-rename:13"],
)  # fmt: skip
def test_target_killed_during_commit_recovers_on_restart(
    roots: tuple[Path, Path, dict[str, str], dict[str, str]], token_file: Path, point: str
) -> None:
    a, b, before, after = roots
    src = MemberProcess(a, token_file)
    dst = MemberProcess(b, token_file, env={FAULT_ENV: point})
    try:
        proc = replicate(src.url, dst.url, token_file)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1  # the target died under it, and it says so
        assert b"pairwarden replicate:" in err
        assert dst.proc.wait(10) == -signal.SIGKILL
        dst.stop()
        dst = MemberProcess(b, token_file)  # restart: recovery runs before it serves
        quiesce(dst.url)
        assert tree(b) == (before if point == "commit:before-journal" else after)
    finally:
        src.stop()
        dst.stop()


def test_replicate_killed_at_random_moments(
    roots: tuple[Path, Path, dict[str, str], dict[str, str]], token_file: Path
) -> None:
    a, b, before, after = roots
    src, dst = MemberProcess(a, token_file), MemberProcess(b, token_file)
    seen = set()
    try:
        for delay in (0.05, 0.2, 0.35, 0.5, 0.7, 1.0):
            proc = replicate(src.url, dst.url, token_file)
            time.sleep(delay)  # real time on purpose: the kill must land anywhere in the run
            proc.kill()
            proc.communicate(timeout=30)
            quiesce(dst.url)
            state = tree(b)
            assert state in (before, after), f"mixed tree after a kill at {delay}s"
            seen.add("after" if state == after else "before")
            if state == after:
                break
    finally:
        src.stop()
        dst.stop()
    assert seen
