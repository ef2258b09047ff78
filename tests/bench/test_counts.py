"""What the benchmarks report: request counts as kube-apiserver gives them
(`apiserver_request_total`), writes split into the agents' Lease PUTs and the rest, reads
beside them, every rate over the window between the server's two snapshots; and failover rows
that each name their backend and a PASS or FAIL."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench._backends import Counts, _request_counts

from pairwarden.protocol import ANNOTATION_ACTIVE_MEMBER

METRICS = """\
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 40
apiserver_request_total{code="409",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="",verb="PATCH",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 14
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="/metrics",verb="GET",version=""} 9
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 5
"""  # noqa: E501


def test_writes_and_reads_are_counted_by_verb_and_resource() -> None:
    counts = _request_counts(METRICS)
    assert counts.writers == {"update leases": 42}  # every code: a refused write was made too
    assert counts.operator == {
        "patch services": 3,
        "list pods": 7,
        "get pods": 14,
        "patch pods/status": 1,
    }  # the readers' own /metrics and the watches are not requests of the pairs


def test_a_rate_is_taken_over_the_window_between_the_two_snapshots() -> None:
    before = Counts({"patch services": 3}, {"update leases": 40}, etcd_writes=100.0, at=10.0)
    after = Counts({"patch services": 3}, {"update leases": 100}, etcd_writes=160.0, at=40.0)
    delta = after.minus(before)
    assert delta.at == pytest.approx(30.0)
    assert delta.writers == {"update leases": 60}
    assert delta.operator == {}  # no change is no entry
    assert delta.etcd_writes == pytest.approx(60.0)


def test_every_failover_row_names_its_backend_and_a_pass_or_fail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.failover import Result, print_results

    results = [
        Result("clean stop", window=2.0, bound=1.0, flips=[0.2, 0.4]),
        Result("manual", window=2.0, bound=0.5, flips=[0.3, 1.9]),
    ]
    print_results(results, {"clean stop": 2, "manual": 2}, "sandbox")
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert [row.split()[:3] for row in rows] == [
        ["clean", "stop", "sandbox"],
        ["manual", "sandbox", "2/2"],
    ]
    assert rows[0].split("|")[-1].split()[0] == "PASS"
    assert rows[1].split("|")[-1].split()[0] == "FAIL"  # p99 1.9 s against 0.5 s


def test_the_nodes_crash_row_is_judged_on_the_first_fresh_call_answered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 26: the crash is judged as callers see it, to the first of the calls dialled anew
    answered by the other member, not only to the selector's flip; a call dialled into the
    dead member (`answers`: it waits for its INVITE's retransmission) is printed, not judged."""
    from bench.failover import Result, print_results

    late = Result(
        "crash", window=5.0, bound=1.0, flips=[0.4], answers=[1.5], fresh=[1.6], judged="fresh"
    )
    on_time = Result(
        "crash", window=5.0, bound=1.0, flips=[0.4], answers=[3.5], fresh=[0.8], judged="fresh"
    )
    never = Result("crash", window=5.0, bound=1.0, flips=[0.4], answers=[0.5], judged="fresh")
    for result in (late, on_time, never):
        print_results([result], {"crash": 1}, "node")
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("crash")]
    assert [row.split("|")[-1].split()[0] for row in rows] == ["FAIL", "PASS", "FAIL"]
    assert "fresh p99 160% of target" in rows[0]


def _active(pair: str, member: str, epoch: int) -> dict[str, object]:
    holder = f"{pair}-{member}" if member != "none" else ""
    return {
        "metadata": {
            "name": f"{pair}-active",
            "annotations": {ANNOTATION_ACTIVE_MEMBER: member},
        },
        "spec": {"holderIdentity": holder, "leaseTransitions": epoch},
    }


def test_a_simulated_member_answers_while_the_active_lease_names_it(tmp_path: Path) -> None:
    """As the agent: a revoke (nobody named) ends the answer, which a manual move waits for."""
    from bench.scale import Simulation

    sim = Simulation(1, 500, 20, tmp_path, "sandbox")
    primary, secondary = sim.writers[("p0000", "primary")], sim.writers[("p0000", "secondary")]
    sim.on_active_lease("MODIFIED", _active("p0000", "primary", 1), 0.0)
    assert (primary.report().answering, secondary.report().answering) == (True, False)
    assert primary.report().epoch == 1  # the epoch it heard, as an agent reports it
    sim.on_active_lease("MODIFIED", _active("p0000", "none", 2), 1.0)
    assert (primary.report().answering, secondary.report().answering) == (False, False)
    sim.on_active_lease("MODIFIED", _active("p0000", "secondary", 3), 2.0)
    assert (primary.report().answering, secondary.report().answering) == (False, True)
    secondary.stopping = True  # a clean stop: no answer, whatever the Lease says
    assert not secondary.report().answering
