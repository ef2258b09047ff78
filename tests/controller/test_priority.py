"""The peering priority of a replica: kopf pauses every replica when two peers share one, so on
a server without the pod-index label (before 1.28) each must still get its own."""

from __future__ import annotations

import argparse

import pytest

from pairwarden.controller.main import peering_priority


@pytest.mark.parametrize(
    ("text", "pod", "priority"),
    [
        ("3", "pairwarden-operator-0", 3),  # the pod-index label (1.28+) wins
        ("", "pairwarden-operator-1", 1),  # before 1.28 the label reads as empty
        ("", "pairwarden-operator-0", 0),
        (" ", "operator-12", 12),
        ("", "a-local-process", 0),  # not a StatefulSet pod: the one replica
        ("", "", 0),
    ],
)
def test_the_priority_is_the_pod_index_else_the_ordinal_of_the_pod_name(
    text: str, pod: str, priority: int
) -> None:
    assert peering_priority(text, pod) == priority


def test_anything_else_is_refused_at_start() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not an integer"):
        peering_priority("high", "pairwarden-operator-0")
