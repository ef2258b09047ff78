"""The daemons a directory starts (the control plane's and the node's): starting them,
which still run, stopping them, and the state file naming them. Standard library only,
like its two users.

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
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
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


def spawn(
    command: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a daemon in a session of its own (a Ctrl-C or the caller's exit does not reach
    it; `stop` does), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=None if env is None else dict(env),
        )
    return proc


def stop(daemons: Sequence[tuple[str, int | None]], directory: Path, grace: float) -> None:
    """SIGTERM each (name, pid) still ours, all at once, and SIGKILL those that outlive
    `grace`; return once each is gone (or 5 s after the kill). A pid that is no longer ours
    (exited, or reused by another program) is never signalled."""
    live = [(n, p) for n, p in daemons if p and started_here(n, p, directory)]
    for _, pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    live = [(n, p) for n, p in live if _outlives(n, p, directory, deadline)]
    for _, pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    for name, pid in live:
        _outlives(name, pid, directory, deadline)


def _outlives(name: str, pid: int, directory: Path, deadline: float) -> bool:
    while started_here(name, pid, directory):
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)
    return False


def running(components: Sequence[str], pids: Mapping[str, int], directory: Path) -> list[str]:
    """Which of `components` (in their order) still run as started for `directory`."""
    return [n for n in components if pids.get(n) and started_here(n, pids[n], directory)]


def print_status(components: Sequence[str], pids: Mapping[str, int], directory: Path) -> int:
    """`status DIR` of a launcher: a line per component; exit status 0 when all run."""
    width = max(map(len, components)) + 2
    for name in components:
        pid = pids.get(name)
        alive = bool(pid) and started_here(name, pid or 0, directory)
        print(f"{name:{width}} {'running' if alive else 'stopped'} {pid or ''}")
    return 0 if running(components, pids, directory) == list(components) else 1
