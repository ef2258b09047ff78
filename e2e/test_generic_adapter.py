"""Any voicemail server: baresip, a third-party SIP user agent from Debian (`make tools`),
plays the voicemail server in both pods (e2e/manifests/baresip-pair.yaml), knowing nothing of
pairwarden. The unchanged operator and agent pair it through the generic adapter (health: a
SIP OPTIONS ping; activate/deactivate: baresip's answer mode over its HTTP port), and sipp
calls through the Service: the active member's baresip answers, the other one does not, a
hang of the active baresip fails over, and when it wakes it is fenced until the pair hands it
the role again."""

from __future__ import annotations

import itertools
import shutil
import signal
import time
from pathlib import Path

import pytest
from e2e.conftest import _both_up, _routed, heartbeat
from e2e.scenarios import other
from e2e.sippcall import SippCall, needs_sipp, sipp_call

from pairwarden_testbed.localcluster import LocalCluster, wait_until

MANIFEST = Path(__file__).resolve().parent / "manifests" / "baresip-pair.yaml"
pytestmark = [
    needs_sipp,
    pytest.mark.skipif(
        shutil.which("baresip") is None,
        reason="baresip is not installed: `make tools` as root installs it (Debian baresip-core)",
    ),
]


class Caller:
    """sipp dialling sip:voicemail@ADDRESS, as a phone system would."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.count = itertools.count()

    def call(self, address: tuple[str, int], timeout: float = 5.0) -> SippCall:
        log = self.workdir / f"call-{next(self.count)}.log"
        return sipp_call("uac_answered_by.xml", address, log, user="voicemail", timeout=timeout)

    def answered_at(self, address: tuple[str, int]) -> str | None:
        done = self.call(address)
        return done.answered_at if done.exit_code == 0 else None


def test_a_third_party_sip_server_is_supervised_fenced_and_failed_over(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    interval_ms, missed = heartbeat(cluster)
    cluster.start_pair(MANIFEST, interval_ms=interval_ms, missed=missed)
    active = wait_until(lambda: _routed(cluster), timeout=180)  # the operator starts slowly
    standby = other(active)
    ip = {m: cluster.kubelet.pod_ip(f"vm-{m}") for m in (active, standby)}
    service, caller = cluster.sip_address(), Caller(tmp_path)
    wait_until(lambda: caller.answered_at(service) == ip[active], timeout=30)
    wait_until(lambda: _both_up(cluster), timeout=30)  # the SIP OPTIONS health, as reported

    # Fenced: the other baresip is up but does not answer, even dialled directly.
    direct = caller.call((str(ip[standby]), 5060), timeout=3.0)
    assert direct.answered_at is None, direct.text

    # Supervised: the active baresip hangs (SIGSTOP: its ports stop answering, the process
    # stays); the health check times out and the pair fails over.
    hung = time.monotonic()
    cluster.kubelet.kill_container(f"vm-{active}", "voicemail", signal.SIGSTOP)
    wait_until(lambda: caller.answered_at(service) == ip[standby], timeout=30)
    took = time.monotonic() - hung
    print(f"baresip hung -> the other baresip answers through the Service: {took:.2f} s")
    # Its agent's health check saw it: the member's report says its service is down. The
    # pair's cause is ServiceStopped, or HeartbeatLost when a loaded machine lets the window
    # (1 s on the sandbox) run out while the 2 s check still waits.
    assert wait_until(lambda: _service_up(cluster, active) is False, 30)
    reasons = {e.reason for e in cluster.events()}
    assert reasons & {"ServiceStopped", "HeartbeatLost"}, reasons

    # It wakes up still set to answer; its agent, no longer the holder, fences it.
    cluster.kubelet.kill_container(f"vm-{active}", "voicemail", signal.SIGCONT)
    wait_until(lambda: _both_up(cluster), timeout=60)
    wait_until(lambda: caller.call((str(ip[active]), 5060), timeout=3.0).answered_at is None, 30)

    # Handed the role back, it is ordered to answer again.
    cluster.request("failback" if active == "primary" else "failover")
    wait_until(lambda: caller.answered_at(service) == ip[active], timeout=30)


def _service_up(cluster: LocalCluster, member: str) -> bool | None:
    """What the pair's status says of the member's voicemail server (its agent's report)."""
    members = (cluster.pair().get("status") or {}).get("members") or {}
    value = (members.get(member) or {}).get("serviceUp")
    return value if isinstance(value, bool) else None
