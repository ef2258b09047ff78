"""The daemons a directory started (the control plane's and the node's): which still run,
and the state file naming them. Standard library only, like its two users.

A pid file alone cannot tell our process from a reused pid, so a pid counts as ours only
while its command line names the program and the directory. Read just after `Popen`
returns, /proc/PID/cmdline can still be empty for a moment (the kernel is finishing the
exec), which once made a healthy etcd look "exited at start": an empty command line of a
live process is read again rather than taken as an answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

# How long an empty /proc/PID/cmdline (an exec under way) is waited for.
EXEC_SETTLE_SECONDS = 1.0


def save_state(directory: Path, state: dict[str, Any]) -> None:
    """Write DIR/state.json whole or not at all (a crash mid-write leaves the old one)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(directory / "state.json")


def started_here(name: str, pid: int, directory: Path, proc: Path = Path("/proc")) -> bool:
    """Whether pid is still the `name` process started for `directory` (not a reused pid,
    not a zombie, which is reaped here). `proc` is /proc, or a copy of it in a test."""
    deadline = time.monotonic() + EXEC_SETTLE_SECONDS
    while True:
        try:
            cmdline = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
            state = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return False
        if state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
        if cmdline != [b""] or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return Path(cmdline[0].decode(errors="replace")).name == name and any(
        str(directory).encode() in arg for arg in cmdline
    )
