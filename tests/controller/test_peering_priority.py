"""The operator's peering priority from `--priority`: the chart passes the pod-index label's
value on 1.28+ and the pod's name before, where that label does not exist."""

from __future__ import annotations

import argparse

import pytest

from pairwarden.controller.peering import priority_of


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
