"""The real node's own tests (marker `realnode`: `pytest -m realnode`)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realnode: needs a real node (hack/node.sh) beside the real control plane"
    )
