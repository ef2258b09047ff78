"""Heartbeat cost (issue 26, item 3; docs/protocol.md, "The standby's heartbeat rides the
holder's renewal"): an idle pair costs one member-Lease write per renewal period R, the
holder's, carrying the standby's hello; the standby writes nothing while the relay works, and
is still seen by the operator. Counted at the API server: every write of a member Lease is
one MODIFIED event of a watch on them."""

from __future__ import annotations

import contextlib
import threading
import time

from e2e.conftest import heartbeat, start
from e2e.scenarios import epoch, other
from kubernetes import client, watch

from pairwarden.protocol import LABEL_MEMBER, LABEL_PAIR, MemberReport
from pairwarden_testbed.localcluster import LocalCluster

MISSED = 30  # W = 3 s on the sandbox (R = 1 s), 6 s on the real control plane (R = 2 s)
PERIODS = 20  # k: the idle stretch counted, in renewal periods
SLACK = 0.1  # a write per R, at most 10 % more (a renewal's latency shortens no period)


class LeaseWrites:
    """Counts each member Lease's writes as the API server's watch reports them."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.api = client.CoordinationV1Api(cluster.api)
        self.namespace = cluster.namespace
        self.counts: dict[str, int] = {}
        self.last: dict[str, MemberReport] = {}
        self._watch = watch.Watch()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> LeaseWrites:
        self._thread.start()
        time.sleep(0.5)  # the watch is open before the count starts
        return self

    def __exit__(self, *_: object) -> None:
        self._watch.stop()

    def _follow(self) -> None:
        with contextlib.suppress(Exception):  # the cluster closed under the watch, counted
            self._count()

    def _count(self) -> None:
        stream = self._watch.stream(
            self.api.list_namespaced_lease,
            self.namespace,
            label_selector=f"{LABEL_PAIR}=vm,{LABEL_MEMBER}",
            timeout_seconds=600,
        )
        for event in stream:
            lease = event["object"]
            member = lease.metadata.labels[LABEL_MEMBER]
            with self._lock:
                if event["type"] == "MODIFIED":
                    self.counts[member] = self.counts.get(member, 0) + 1
                report = MemberReport.from_annotations(lease.metadata.annotations)
                self.last[member] = report

    def take(self) -> dict[str, int]:
        with self._lock:
            counts, self.counts = self.counts, {}
            return counts


def test_an_idle_pair_writes_one_member_lease_per_renewal_period(cluster: LocalCluster) -> None:
    active = start(cluster, missed=MISSED)
    standby = other(active)
    interval_ms, _ = heartbeat(cluster)
    window = interval_ms * MISSED / 1000
    period = window / 3
    before = epoch(cluster)
    with LeaseWrites(cluster) as writes:
        time.sleep(3 * period)  # the relay settles: the standby's first hellos acknowledged
        writes.take()
        began = time.monotonic()
        time.sleep(PERIODS * period)
        counted = writes.take()
        seconds = time.monotonic() - began
        relayed = writes.last[active].peer_heard_ms
    per_second = sum(counted.values()) / seconds
    print(
        f"member Lease writes: {counted} in {seconds:.1f} s at R = {period:.1f} s: "
        f"{per_second:.3f}/s per pair = {per_second * period:.2f} per R"
    )
    assert per_second <= (1 + SLACK) / period, counted
    assert counted.get(standby, 0) <= 1, counted  # at most a refresh; the relay carries it
    assert counted.get(active, 0) >= PERIODS * 0.8  # the holder renews every R as before
    assert relayed is not None and relayed <= period * 1000  # the standby's hello, relayed
    # The operator still sees the standby: eligible, no move, no loss reported.
    members = (cluster.pair().get("status") or {}).get("members") or {}
    assert members.get(standby, {}).get("serviceUp"), members
    assert epoch(cluster) == before
