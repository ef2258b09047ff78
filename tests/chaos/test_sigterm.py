"""A chaos, demo or bench run stopped with `kill` (or by a CI timeout) stops the operator,
agents and voicemail processes its clusters started: SIGTERM unwinds the `with` blocks."""

from __future__ import annotations

import signal
import subprocess
import sys

PROGRAM = """
import signal, time
from pairwarden_testbed.lifecycle import sigterm_unwinds
{before}
with sigterm_unwinds():
    try:
        print("ready", flush=True)
        time.sleep(60)
    finally:
        print("stopped what it started", flush=True)
print("after the block:", signal.getsignal(signal.SIGTERM), flush=True)
"""


def _terminated(before: str = "") -> subprocess.CompletedProcess[str]:
    code = PROGRAM.format(before=before)
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, out)


def test_sigterm_runs_the_cleanup_and_exits_with_its_status() -> None:
    done = _terminated()
    assert done.returncode == 128 + signal.SIGTERM
    assert done.stdout.splitlines() == ["stopped what it started"]


def test_a_handler_someone_installed_is_kept() -> None:
    done = _terminated("signal.signal(signal.SIGTERM, lambda *_: exit(7))")
    assert done.returncode == 7  # theirs ran, not ours (143)
    assert done.stdout.splitlines() == ["stopped what it started"]
