"""`pairwarden-testbed demo`: the whole system on loopback, a failover story with stopwatches.

Starts the sandbox, the operator and two voicemail members (agent + reference voicemail
process), creates the pair with a shortened heartbeat, then: the primary crashes (failover
after the window), the primary comes back and is failed back by hand, and the primary is
stopped cleanly (failover at once). Each step is timed from the fault, as callers see it:
until the Service selector flips, and until the first call dialled at the Service is answered
by the new active member.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from dataclasses import asdict, dataclass
from typing import Any

from pairwarden.protocol import LABEL_MEMBER
from pairwarden_testbed.localcluster import LocalCluster, wait_until
from pairwarden_testbed.sipcaller import CallLoad

INTERVAL_MS, MISSED = 100, 10
WINDOW = INTERVAL_MS * MISSED / 1000


@dataclass
class Step:
    step: str
    fault: str
    cause: str
    source: str
    target: str
    epoch: int
    fault_to_flip_seconds: float
    fault_to_answer_seconds: float
    calls_answered: int
    calls_refused: int
    sip_calls: dict[str, int]  # SIP calls placed through the Service during the step, by result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the measured steps as JSON")


def run(args: argparse.Namespace) -> int:
    say = (lambda *_: None) if args.json else print
    say(f"pairwarden-testbed demo: heartbeat {INTERVAL_MS} ms x {MISSED} = {WINDOW:.1f} s window")
    with LocalCluster() as cluster:
        say(f"sandbox API at {cluster.sandbox.url}; operator, kubelet and kube-proxy running")
        started = time.monotonic()
        cluster.start_pair(interval_ms=INTERVAL_MS, missed=MISSED)
        active = wait_until(lambda: _routed_to(cluster), timeout=30)
        first = wait_until(lambda: cluster.call(), timeout=30)
        wait_until(lambda: (cluster.pair().get("status") or {}).get("activeMember") == active, 30)
        say(f"t+{time.monotonic() - started:5.2f}s  {active} active; first call by {first}")
        calls = CallLoad(cluster.sip_address(), interval_ms=100, duration_ms=300).start()
        say("SIP callers: a 300 ms call every 100 ms through the Service, all story long")
        kubelet = cluster.kubelet
        steps = [
            _measure(cluster, calls, say, "crash", "kill -9 the primary pod",
                     lambda: kubelet.kill_pod("vm-primary", signal.SIGKILL), "vm-secondary"),
        ]  # fmt: skip
        kubelet.revive_pod("vm-primary")
        wait_until(lambda: _member_up(cluster, "primary"), timeout=30)
        say("\nprimary pod restarted; it is healthy and standby")
        steps += [
            _measure(cluster, calls, say, "manual failback", "kubectl pairwarden failback vm",
                     lambda: cluster.request("failback"), "vm-primary"),
            _measure(cluster, calls, say, "clean stop", "SIGTERM to the primary pod",
                     lambda: kubelet.kill_pod("vm-primary", signal.SIGTERM), "vm-secondary"),
        ]  # fmt: skip
        calls.stop()
    if args.json:
        print(json.dumps({"windowSeconds": WINDOW, "steps": [asdict(s) for s in steps]}, indent=2))
        return 0
    print("\nstep             cause            fault->flip  fault->answered  window  "
          "SIP calls answered/refused/dropped/unanswered")  # fmt: skip
    for s in steps:
        c = s.sip_calls
        print(f"{s.step:<16} {s.cause:<16} {s.fault_to_flip_seconds:>10.3f}s "
              f"{s.fault_to_answer_seconds:>15.3f}s  {WINDOW:.1f}s    "
              f"{c['answered']}/{c['refused']}/{c['dropped']}/{c['unanswered']}")  # fmt: skip
    return 0


def _routed_to(cluster: LocalCluster) -> str | None:
    member = cluster.selector().get(LABEL_MEMBER, "none")
    return None if member == "none" else member


def _status_after(cluster: LocalCluster, epoch: int) -> dict[str, Any] | None:
    status: dict[str, Any] = cluster.pair().get("status") or {}
    return status if int(status.get("epoch") or 0) > epoch else None


def _member_up(cluster: LocalCluster, member: str) -> bool:
    status = (cluster.pair().get("status") or {}).get("members") or {}
    return bool((status.get(member) or {}).get("serviceUp"))


def _measure(
    cluster: LocalCluster,
    calls: CallLoad,
    say: Any,
    name: str,
    fault: str,
    inject: Any,
    target_pod: str,
) -> Step:
    """Inject the fault, time the flip and the first answered call, and count the SIP calls
    placed from the fault until a second after the new member answered."""
    before = cluster.pair().get("status") or {}
    source = before.get("activeMember", "none")
    target = target_pod.rsplit("-", 1)[1]
    say(f"\n== {name}: {fault}")
    t0, wall0 = time.monotonic(), time.time()
    inject()
    wait_until(lambda: cluster.selector().get(LABEL_MEMBER) == target, timeout=WINDOW * 10 + 10)
    flipped = time.monotonic() - t0
    say(f"   Service selector -> {target:<9} after {flipped:6.3f}s")
    answered_refused = [0, 0]

    def answered_by_target() -> bool:
        who = cluster.call(timeout=0.3)
        answered_refused[0 if who else 1] += 1
        return who == target_pod

    wait_until(answered_by_target, timeout=30, poll=0.01)
    answered = time.monotonic() - t0
    say(f"   first call answered by {target_pod} after {answered:6.3f}s")
    epoch_before = int(before.get("epoch") or 0)
    status = wait_until(lambda: _status_after(cluster, epoch_before), timeout=10)
    after = status["lastTransition"]
    say(f"   cause {after.get('cause')}, epoch {status.get('epoch')}")
    time.sleep(1.0)  # let the calls placed during the flip finish
    settled = time.time()
    later = calls.counts(since=settled)
    sip = {k: n - later[k] for k, n in calls.counts(since=wall0).items()}
    say("   SIP calls since the fault: " + ", ".join(f"{n} {k}" for k, n in sip.items()))
    return Step(
        step=name,
        fault=fault,
        cause=str(after.get("cause")),
        source=source,
        target=target,
        epoch=int(status.get("epoch") or 0),
        fault_to_flip_seconds=round(flipped, 3),
        fault_to_answer_seconds=round(answered, 3),
        calls_answered=answered_refused[0],
        calls_refused=answered_refused[1],
        sip_calls=sip,
    )
