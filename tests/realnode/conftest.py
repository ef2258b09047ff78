"""The real node's own tests (marker `realnode`: `pytest -m realnode`): the node, the
project's images on it, the operator installed from the chart, failover as callers see it."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realnode: needs a real node (hack/node.sh) beside the real control plane"
    )


@pytest.fixture(scope="session")
def plane(real_node: Any) -> Any:
    """`admin` and `ns` talk to the real node's own control plane here."""
    return real_node.cp
