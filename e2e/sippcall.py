"""One call placed by sipp (Debian sip-tester, `make tools`) with a scenario from e2e/sipp,
read back from sipp's log: who answered it, and where a redirect sent it. The scenarios log
`answered-by POD` (the user part of the 200 OK's Contact), `answered-at HOST` (its host) and
`redirected-to HOST:PORT`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
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
    local_ip: str = "127.0.0.1",
    timeout: float = 5.0,
    user: str = "1000",
) -> SippCall:
    """Place one call to `target` from `local_ip`:`local_port` (0: any); the exit code says
    only whether the call went as the scenario is written, the log says who answered."""
    assert SIPP is not None
    options = {
        "-sf": str(SCENARIOS / scenario),
        "-s": user,
        "-i": local_ip,
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


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Pbx:
    """A phone system on a fixed port: a PBX or SIP trunk sends every INVITE from one UDP
    source port, so its calls share one flow through a Service. sipp calls to `address`,
    one at a time, all from one port of `local_ip` (or each from a new port with
    `fixed_port=False`). On the sandbox (e2e/test_fixed_port.py) and the real node
    (tests/realnode), where kube-proxy routes the flow."""

    def __init__(
        self,
        address: tuple[str, int],
        workdir: Path,
        local_ip: str = "127.0.0.1",
        fixed_port: bool = True,
    ) -> None:
        self.address = address
        self.local_ip = local_ip
        self.fixed_port = fixed_port
        self.port = free_udp_port(local_ip)
        self.workdir = workdir
        self.calls = 0
        self.last = ""  # what the last call said, for failure messages

    def call(self) -> str | None:
        """One call; the pod that answered it, or None (refused, unanswered)."""
        self.calls += 1
        log = self.workdir / f"call-{self.port}-{self.calls}.log"
        port = self.port if self.fixed_port else 0
        done = sipp_call(
            "uac_answered_by.xml", self.address, log, local_port=port, local_ip=self.local_ip
        )
        self.last = done.text
        return done.answered_by

    def until(self, pod: str, timeout: float) -> tuple[float, int]:
        """Call until `pod` answers: (when, calls placed meanwhile)."""
        deadline, placed = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            placed += 1
            if self.call() == pod:
                return time.monotonic(), placed
        raise AssertionError(
            f"{pod} never answered the {'fixed-port ' if self.fixed_port else ''}caller "
            f"in {timeout} s: {self.last}"
        )
