"""Drain on a clean stop: `kubectl delete pod` of the active member (10 s grace) while calls
are held. The member takes no new call at once (the other takes over), and the calls in
progress finish: the voicemail process drains on SIGTERM instead of exiting."""

from __future__ import annotations

import threading
import time

from e2e.conftest import start
from e2e.scenarios import other

from pairwarden_testbed.localcluster import LocalCluster, wait_until
from pairwarden_testbed.sipcaller import CallOutcome, call_through

HELD = 3
CALL_MS = 5000


def test_calls_in_progress_are_kept_across_a_pod_delete_of_the_active(
    cluster: LocalCluster,
) -> None:
    active = start(cluster)
    address = cluster.sip_address()
    outcomes: list[CallOutcome] = []

    def hold(i: int) -> None:
        outcomes.append(call_through(address, CALL_MS, caller=f"held{i}", timeout=3.0))

    callers = [threading.Thread(target=hold, args=(i,)) for i in range(HELD)]
    for caller in callers:
        caller.start()
    pod = f"vm-{active}"
    wait_until(lambda: cluster.kubelet_status(pod).get("callsInProgress") == HELD, timeout=15)

    deleted = time.monotonic()
    cluster.core.delete_namespaced_pod(pod, cluster.namespace, grace_period_seconds=10)
    # New calls go to the other member at once, while the held ones continue.
    wait_until(lambda: cluster.selector().get("pairwarden.io/member") == other(active), 10)
    wait_until(lambda: cluster.call() == f"vm-{other(active)}", timeout=10)
    took_over = time.monotonic() - deleted

    for caller in callers:
        caller.join(CALL_MS / 1000 + 20)
    kept = [o for o in outcomes if o.answered and o.bye_code == 200]
    assert len(kept) == HELD, [(o.result, o.reason, o.pod) for o in outcomes]
    assert all(o.pod == pod for o in kept)
    assert took_over < CALL_MS / 1000  # the takeover did not wait for the calls to end
