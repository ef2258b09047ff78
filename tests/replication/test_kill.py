"""kill -9 of the replicate process or of the target's file API at any point: once the
target is up again its visible tree is exactly as before or exactly as after, never mixed."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pairwarden_testbed import faults

from .helpers import DIRS, TOKEN, MemberProcess, seed, tree, write


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


def replicate(src: str, dst: str, token_file: Path, kill_at: str | None = None,
              report: Path | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    """The replicate client in its own process; killed at checkpoint `kill_at` if given."""
    argv = ["-m", "pairwarden.cli", "replicate", "--from", src, "--to", dst,
            "--token-file", str(token_file), "--pair", "vm", "--concurrency", "2"]  # fmt: skip
    if report is not None:
        argv += ["--report-json", str(report)]
    command = faults.command(kill_at, *argv) if kill_at else [sys.executable, *argv]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


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
        proc = replicate(src.url, dst.url, token_file, f"replicate:after-upload:{uploads}")
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
    dst = MemberProcess(b, token_file, kill_at=point)
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


# One commit in a process of its own, run through pairwarden_testbed.faults to be killed at a
# checkpoint: argv = root, then JSON {"puts": {path: text}, "deletes": []}, then the directories.
COMMIT_SCRIPT = """
import hashlib, json, sys
from pathlib import Path
from pairwarden.replication.storage import Batches
root, plan = Path(sys.argv[1]), json.loads(sys.argv[2])
batches = Batches(root, json.loads(sys.argv[3]))
batch = batches.open()
for path, text in plan["puts"].items():
    data = text.encode()
    part = batches.part_path(batch, path)
    part.write_bytes(data)
    batches.accept(batch, path, part, hashlib.sha256(data).hexdigest(), len(data), None)
for path in plan["deletes"]:
    batches.stage_delete(batch, path)
batches.commit(batch)
"""
# What a restarted agent does before it serves: recover every batch (FileApi's constructor).
RESTART_SCRIPT = """
import json, sys
from pathlib import Path
from pairwarden.replication.fileapi import FileApi
FileApi(Path(sys.argv[1]), json.loads(sys.argv[2]), "vm", "vm.x", 1 << 20)
"""


def _random_change(rng: random.Random, root: Path) -> tuple[dict[str, str], list[str]]:
    """A tree in `root` and a batch for it with both type changes and plain edits."""
    write(
        root,
        {"Snapshot/conv": b"file", "UnityMTA/tree/leaf": b"leaf", "UnityMTA/tree/other": b"other"},
    )
    write(root, {f"UnityMTA/f{i}": os.urandom(64) for i in range(rng.randint(1, 5))})
    puts = {"Snapshot/conv/inner": "now a directory", "UnityMTA/tree": "now a file"}
    deletes = ["Snapshot/conv", "UnityMTA/tree/leaf", "UnityMTA/tree/other"]
    for i in range(rng.randint(0, 4)):
        if rng.random() < 0.5:
            puts[f"UnityMTA/f{i}"] = f"changed {i}"
        elif (root / f"UnityMTA/f{i}").exists():
            deletes.append(f"UnityMTA/f{i}")
    return puts, deletes


def test_kill_9_at_random_points_of_commits_that_change_types(tmp_path: Path) -> None:
    """Over random kill points of commits in which a file becomes a directory and a
    directory a file: no mixed tree, and every restart recovers (counts printed)."""
    rng = random.Random(15)
    trials = int(os.environ.get("PAIRWARDEN_KILL_TRIALS", "8"))  # two processes per trial
    mixed, unable, killed = 0, 0, 0
    for trial in range(trials):
        root = tmp_path / f"t{trial}"
        puts, deletes = _random_change(rng, root)
        before = tree(root)
        after = {k: v for k, v in before.items() if k not in deletes}
        after.update({k: hashlib.sha256(v.encode()).hexdigest() for k, v in puts.items()})
        renames = len(puts) + len([d for d in deletes if (root / d).is_file()])
        points = [f"commit:after-rename:{n}" for n in range(1, renames + 1)]
        point = rng.choice(["commit:before-journal", "commit:after-journal", *points])
        plan = json.dumps({"puts": puts, "deletes": deletes})
        dirs = json.dumps(DIRS)
        commit = faults.command(point, "-c", COMMIT_SCRIPT, str(root), plan, dirs)
        run = subprocess.run(commit, capture_output=True)
        killed += run.returncode == -signal.SIGKILL
        restart_argv = [sys.executable, "-c", RESTART_SCRIPT, str(root), dirs]
        restart = subprocess.run(restart_argv, capture_output=True)
        unable += restart.returncode != 0
        mixed += tree(root) not in (before, after)
    print(
        f"kill -9 in commit: {trials} trials, {killed} killed, {mixed} mixed trees, "
        f"{unable} restarts failed"
    )
    assert killed == trials and mixed == 0 and unable == 0
