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
from e2e.sippcall import Pbx, needs_sipp

from pairwarden_testbed.localcluster import LocalCluster

pytestmark = needs_sipp


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
    pbx = Pbx(cluster.sip_address(), tmp_path)
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
    pbx = Pbx(cluster.sip_address(), tmp_path)
    pbx.until(f"vm-{active}", timeout=30)
    fault = time.monotonic()
    cluster.kubelet.kill_pod(f"vm-{active}", signal.SIGKILL)
    fixed, _ = pbx.until(f"vm-{other(active)}", timeout=WINDOW * 3 + 20)
    new_socket = _new_socket_answer(cluster, f"vm-{other(active)}", timeout=15)
    assert fixed - fault <= max(new_socket - fault, 0.0) + 5.0, (fixed - fault, new_socket - fault)
