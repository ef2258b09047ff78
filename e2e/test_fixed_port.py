"""A phone system on a fixed port: a PBX or SIP trunk sends every INVITE from one UDP source
port, so its calls share one flow through the Service. sipp (Debian sip-tester, `make tools`)
plays the PBX with `-p PORT`, calling through a failover and through a crash of the active pod:
it reaches the new active member within the same bound as a caller on a new socket, because
the kube-proxy stand-in drops the flow when its pod leaves the Service, as kube-proxy does."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from e2e.conftest import WINDOW, start
from e2e.scenarios import other
from e2e.sippcall import needs_sipp, sipp_call

from pairwarden_testbed.localcluster import LocalCluster, free_port

pytestmark = needs_sipp


class Pbx:
    """sipp calls, one at a time, all from one local UDP port."""

    def __init__(self, cluster: LocalCluster, workdir: Path) -> None:
        self.address = cluster.sip_address()
        self.port = free_port()
        self.workdir = workdir
        self.calls = 0
        self.last = ""  # what the last call said, for failure messages

    def call(self) -> str | None:
        """One call; the pod that answered it, or None (refused, unanswered)."""
        self.calls += 1
        log = self.workdir / f"call-{self.calls}.log"
        done = sipp_call("uac_answered_by.xml", self.address, log, local_port=self.port)
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
            f"{pod} never answered the fixed-port caller in {timeout} s: {self.last}"
        )


def _new_socket_answer(cluster: LocalCluster, pod: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.call(timeout=0.5) == pod:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"{pod} never answered a new-socket caller within {timeout} s")


def test_a_fixed_port_caller_follows_a_manual_failover(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    active = start(cluster)
    pbx = Pbx(cluster, tmp_path)
    pbx.until(f"vm-{active}", timeout=30)  # the PBX's flow is pinned to the active member
    fault = time.monotonic()
    cluster.request("failover" if active == "primary" else "failback")
    new_socket = _new_socket_answer(cluster, f"vm-{other(active)}", timeout=15)
    fixed, _ = pbx.until(f"vm-{other(active)}", timeout=15)
    # The same bound as a new socket: within a call or two of it, not 30 s of silence later.
    assert fixed - fault <= max(new_socket - fault, 0.0) + 5.0, (fixed - fault, new_socket - fault)


def test_a_fixed_port_caller_follows_a_crash_of_the_active_pod(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    active = start(cluster)
    pbx = Pbx(cluster, tmp_path)
    pbx.until(f"vm-{active}", timeout=30)
    fault = time.monotonic()
    cluster.kubelet.kill_pod(f"vm-{active}", signal.SIGKILL)
    fixed, _ = pbx.until(f"vm-{other(active)}", timeout=WINDOW * 3 + 20)
    new_socket = _new_socket_answer(cluster, f"vm-{other(active)}", timeout=15)
    assert fixed - fault <= max(new_socket - fault, 0.0) + 5.0, (fixed - fault, new_socket - fault)
