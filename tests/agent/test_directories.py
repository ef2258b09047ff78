"""An agent handed directories the operator would refuse keeps renewing and replicates nothing."""

from __future__ import annotations

import pytest

from pairwarden.agent.main import replicated_directories
from pairwarden.api.models import DEFAULT_DIRECTORIES


@pytest.mark.parametrize(
    "listed",
    [
        pytest.param(["../../etc"], id="dot-dot"),
        pytest.param(["/"], id="root"),
        pytest.param(["."], id="dot"),
        pytest.param(["/etc"], id="absolute"),
        pytest.param([".pairwarden-replication"], id="reserved-state-dir"),
        pytest.param(["a\x00b"], id="nul"),
        pytest.param(["Snapshot", "Snapshot/"], id="twice"),
        pytest.param([7], id="not-a-string"),
    ],
)
def test_bad_directories_disable_replication_with_a_reason(listed: list[object]) -> None:
    directories, problem = replicated_directories({"replication": {"directories": listed}})
    assert directories == []
    assert problem is not None and problem.startswith("spec.replication.directories: ")


def test_good_or_missing_directories() -> None:
    assert replicated_directories(None) == (list(DEFAULT_DIRECTORIES), None)
    assert replicated_directories({"replication": {}}) == (list(DEFAULT_DIRECTORIES), None)
    got = replicated_directories({"replication": {"directories": ["A/B/", "C"]}})
    assert got == (["A/B", "C"], None)
