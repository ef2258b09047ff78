"""The real Kubernetes control plane's own tests (marker `realk8s`: `pytest -m realk8s`)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realk8s: needs the real Kubernetes 1.20 control plane (hack/control-plane.sh)"
    )
