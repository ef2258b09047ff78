"""The standby's voicemail process never starts on a half-committed tree: a kill -9 in the
middle of a replication commit leaves some files new and the rest old until the file API
rolls the commit forward; the process waits for that (or, with no agent to do it, does it)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

from tests.replication.test_kill import COMMIT_SCRIPT

from pairwarden.protocol import REPLICATED_DIRECTORIES
from pairwarden.replication.storage import Batches
from pairwarden_testbed import faults
from pairwarden_testbed.voicemail.main import committed_tree

DIRS = list(REPLICATED_DIRECTORIES)


def half_committed(root: Path) -> dict[str, str]:
    """A commit of 3 files killed after its first rename; the tree it will have once done."""
    for i in range(3):
        (root / "Snapshot").mkdir(parents=True, exist_ok=True)
        (root / "Snapshot" / f"f{i}").write_text("old")
    plan = json.dumps({"puts": {f"Snapshot/f{i}": "new" for i in range(3)}, "deletes": []})
    argv = faults.command("commit:after-rename:1", "-c", COMMIT_SCRIPT, str(root), plan,
                          json.dumps(DIRS))  # fmt: skip
    run = subprocess.run(argv, capture_output=True, check=False)
    assert run.returncode == -signal.SIGKILL, run.stderr
    texts = sorted((root / "Snapshot" / f"f{i}").read_text() for i in range(3))
    assert texts == ["new", "old", "old"]  # mixed: what the process must never start on
    assert Batches(root, DIRS).committing()
    return {f"f{i}": "new" for i in range(3)}


def snapshot(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((root / "Snapshot").iterdir())}


async def test_it_waits_for_the_agents_file_api_to_roll_the_commit_forward(tmp_path: Path) -> None:
    after = half_committed(tmp_path)
    waiting = asyncio.create_task(committed_tree(tmp_path, wait=60, poll=0.01))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # still waiting: the tree is mixed
    await asyncio.to_thread(Batches(tmp_path, DIRS).recover)  # the agent's file API starts
    assert await asyncio.wait_for(waiting, 30)
    assert snapshot(tmp_path) == after


async def test_with_no_agent_to_do_it_it_recovers_the_tree_itself(tmp_path: Path) -> None:
    after = half_committed(tmp_path)
    assert await committed_tree(tmp_path, wait=0.1, poll=0.01)
    assert snapshot(tmp_path) == after and not Batches(tmp_path, DIRS).committing()
    assert await committed_tree(tmp_path, wait=0.1) == []  # a whole tree: no wait at all
