"""The operator's peering priority from `--priority`: the chart passes the pod-index label's
value on 1.28+ and the pod's name before, where that label does not exist; and the peering
entries a restarted operator finds of its own pod's earlier processes."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from pairwarden.controller.peering import (
    handover,
    identity_of,
    pod_of,
    predecessors,
    priority_of,
)


@pytest.mark.parametrize(
    ("text", "priority"),
    [("0", 0), ("1", 1), ("12", 12), ("pairwarden-operator-0", 0), ("pw-operator-3", 3)],
)
def test_priority_from_a_number_or_a_statefulset_pod_name(text: str, priority: int) -> None:
    assert priority_of(text) == priority


@pytest.mark.parametrize("text", ["", "operator", "operator-x", "-"])
def test_anything_else_is_refused_naming_it(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="StatefulSet pod name"):
        priority_of(text)


# A restarted operator and the entries its pod's earlier processes left in kopf's peering object.

STARTED = datetime(2026, 12, 7, 14, 18, 30, tzinfo=UTC)
OWN = identity_of("pw-operator-1", STARTED, "kkl")
EARLIER = "root@pw-operator-1/20261207141821/gjd"  # killed (-9): its entry outlives it
ENTRY = {"priority": 1, "lifetime": 60, "lastseen": "2026-12-07T14:18:21.5+00:00"}


def test_an_identity_names_its_pod_and_is_unique_per_process() -> None:
    assert OWN.endswith("@pw-operator-1/20261207141830/kkl")
    assert pod_of(OWN) == "pw-operator-1"
    assert identity_of("pw-operator-1", STARTED, "abc") != OWN


@pytest.mark.parametrize(
    ("identity", "pod"),
    [
        ("root@pw-operator-1/20261207141821/gjd", "pw-operator-1"),
        # kopf's own identity (POD_NAME unset, or an older release): the pod's FQDN as host
        ("root@pw-operator-1.pw-metrics.pw.svc.cluster.local/20261207141821/gjd", "pw-operator-1"),
        ("alice@laptop", "laptop"),  # `kopf freeze`'s manual identity
        ("pw-operator-1", ""),  # kopf's POD_ID form names no host
    ],
)
def test_the_pod_an_identity_names(identity: str, pod: str) -> None:
    assert pod_of(identity) == pod


def test_the_entries_of_the_same_pods_earlier_processes_are_predecessors() -> None:
    entries = {
        OWN: ENTRY,
        EARLIER: ENTRY,
        "root@pw-operator-1.pw-metrics.pw.svc/20261207120000/old": ENTRY,  # an older release's
        "root@pw-operator-0/20261207141821/abc": {**ENTRY, "priority": 0},  # another replica
        "root@pw-operator-10/20261207141821/xyz": {**ENTRY, "priority": 10},  # a longer name
        "alice@laptop/20261207141821/dev": ENTRY,  # a developer's run
    }
    assert predecessors(entries, OWN, "pw-operator-1") == sorted(
        [EARLIER, "root@pw-operator-1.pw-metrics.pw.svc/20261207120000/old"]
    )


@pytest.mark.parametrize("entries", [None, {}, {OWN: ENTRY}])
def test_no_predecessor_no_handover(entries: dict[str, object] | None) -> None:
    assert predecessors(entries, OWN, "pw-operator-1") == []
    assert handover(entries, OWN, "pw-operator-1", 1, 60, STARTED) is None


def test_outside_a_pod_nothing_is_a_predecessor() -> None:
    assert predecessors({EARLIER: ENTRY, "root@/1/x": ENTRY}, OWN, "") == []


def test_the_handover_replaces_the_predecessors_entry_with_its_own_in_one_patch() -> None:
    """Removed alone, the killed process's entry left the lower replica without a higher peer
    until this process's first keep-alive: it resumed for 40 ms. One write, both entries."""
    other = "root@pw-operator-0/20261207141821/abc"
    patch = handover({EARLIER: ENTRY, other: ENTRY}, OWN, "pw-operator-1", 1, 60, STARTED)
    assert patch == {
        "status": {
            EARLIER: None,  # merge patch: null removes the key
            OWN: {"priority": 1, "lifetime": 60, "lastseen": "2026-12-07T14:18:30+00:00"},
        }
    }
