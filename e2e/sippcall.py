"""One call placed by sipp (Debian sip-tester, `make tools`) with a scenario from e2e/sipp,
read back from sipp's log: who answered it, and where a redirect sent it. The scenarios log
`answered-by POD` (the user part of the 200 OK's Contact), `answered-at HOST` (its host) and
`redirected-to HOST:PORT`."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).resolve().parent / "sipp"
needs_sipp = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed: `make tools` as root installs it (Debian package sip-tester)",
)


@dataclass(frozen=True)
class SippCall:
    exit_code: int
    answered_by: str | None  # the pod that answered, None when nobody did
    answered_at: str | None  # the host in the answer's Contact (the pod's IP)
    redirected_to: str | None  # the 302's host:port, when the scenario followed one
    text: str  # the log and the end of stderr, for failure messages


def sipp_call(
    scenario: str,
    target: tuple[str, int],
    log: Path,
    *,
    local_port: int = 0,
    timeout: float = 5.0,
    user: str = "1000",
) -> SippCall:
    """Place one call to `target` from `local_port` (0: any); the exit code says only whether
    the call went as the scenario is written, the log says who answered."""
    assert SIPP is not None
    options = {
        "-sf": str(SCENARIOS / scenario),
        "-s": user,
        "-i": "127.0.0.1",
        "-p": str(local_port),
        "-mp": "0",
        "-m": "1",
        "-timeout": f"{timeout:g}s",
        "-log_file": str(log),
    }
    flags = ["-nostdin", "-timeout_error", "-trace_logs"]
    command = [SIPP, *(x for pair in options.items() for x in pair), *flags]
    done = subprocess.run(
        [*command, f"{target[0]}:{target[1]}"],
        cwd=log.parent,
        capture_output=True,
        timeout=timeout + 25,
    )
    text = log.read_text() if log.exists() else ""
    return SippCall(
        exit_code=done.returncode,
        answered_by=_last(text, "answered-by"),
        answered_at=_last(text, "answered-at"),
        redirected_to=_last(text, "redirected-to"),
        text=f"exit {done.returncode}: {text} {done.stderr[-400:]!r}",
    )


def _last(text: str, word: str) -> str | None:
    found = [line.split()[-1] for line in text.splitlines() if f" {word} " in line]
    return found[-1] if found else None
