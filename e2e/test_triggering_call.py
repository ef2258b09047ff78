"""The call that reaches the member that is not active, as a phone system presents a call the
active member did not answer to the other one (the reference's "Force Failover If Call
Arrives on Inactive Secondary"). sipp (Debian sip-tester) plays the phone system and dials
the member's own address, not the Service:

- Force Failover off: that member redirects the call (302) to the active member's contact,
  which its agent learnt from the active Lease, and the active member answers it.
- Force Failover on: that member rings while the call makes it active, then answers the
  same call (within agent.core.HOLD_TRIGGERING_CALL)."""

from __future__ import annotations

import time
from pathlib import Path

from e2e.conftest import start
from e2e.scenarios import other
from e2e.sippcall import SippCall, needs_sipp, sipp_call

from pairwarden.agent.core import HOLD_TRIGGERING_CALL
from pairwarden_testbed.localcluster import LocalCluster, wait_until

pytestmark = needs_sipp
SIP_PORT = 5060  # the members' SIP port (examples/voicemail-pair.yaml)


def _address(cluster: LocalCluster, member: str) -> tuple[str, int]:
    pod = cluster.core.read_namespaced_pod(f"vm-{member}", cluster.namespace)
    return str(pod.status.pod_ip), SIP_PORT


def test_a_call_to_the_member_not_active_is_redirected_to_the_active_one(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    active = start(cluster)
    new = other(active)
    old_address, new_address = _address(cluster, active), _address(cluster, new)
    cluster.request("failover" if active == "primary" else "failback")
    calls: list[SippCall] = []

    def redirected() -> SippCall | None:
        """Dial the member that was active, during the flip and after it."""
        log = tmp_path / f"call-{len(calls)}.log"
        calls.append(sipp_call("uac_redirected.xml", old_address, log))
        done = calls[-1]
        return done if done.exit_code == 0 and done.answered_by == f"vm-{new}" else None

    done = wait_until(redirected, timeout=60)
    contact = f"{new_address[0]}:{new_address[1]}"
    assert done.redirected_to == contact, done.text
    # From then on every such call is redirected there, never refused. (Whether the active
    # member answers each one is its own matter: on a loaded machine a 1 s window may fence
    # it for a moment; the first call above was answered.)
    for i in range(3):
        again = sipp_call("uac_redirected.xml", old_address, tmp_path / f"after-{i}.log")
        assert again.redirected_to == contact, again.text


def test_force_failover_answers_the_call_that_triggers_it(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    active = start(cluster, forceFailoverOnInactiveCall=True)
    standby = other(active)
    dialled = time.monotonic()
    done = sipp_call(
        "uac_answered_by.xml",
        _address(cluster, standby),
        tmp_path / "trigger.log",
        timeout=HOLD_TRIGGERING_CALL + 10,
    )
    answered = time.monotonic() - dialled
    assert (done.exit_code, done.answered_by) == (0, f"vm-{standby}"), done.text
    print(f"the triggering call was answered by the standby after {answered:.2f} s")
    assert answered < HOLD_TRIGGERING_CALL + 5, answered  # sipp's own start included
    wait_until(lambda: cluster.selector().get("pairwarden.io/member") == standby, timeout=10)
    reasons = {e.reason for e in cluster.events()}
    assert "InactiveCall" in reasons, reasons
