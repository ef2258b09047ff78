"""The real node's own tests (marker `realnode`: `pytest -m realnode`): the node, the
project's images on it, the operator installed from the chart, failover as callers see it.
The pair is installed once per session and shared by the modules (its install is a minute
or more of the suite's time); each scenario starts from whatever member the last one left
active."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.realnode.pairs import Pair, install

from conftest import namespaces


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realnode: needs a real node (hack/node.sh) beside the real control plane"
    )


@pytest.fixture(scope="session")
def plane(real_node: Any) -> Any:
    """`admin` and `ns` talk to the real node's own control plane here."""
    return real_node.cp


@pytest.fixture(scope="session")
def admin(plane: Any) -> Iterator[Any]:
    """The session's admin client (the pair below outlives a module)."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(plane.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def make_namespace(admin: Any) -> Iterator[Callable[[str], str]]:
    yield from namespaces(admin)


@pytest.fixture(scope="session")
def pair(
    real_node: Any,
    admin: Any,
    make_namespace: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Pair:
    """The chart's operator and the example pair, installed once (tests/realnode/pairs.py)."""
    return install(real_node, admin, make_namespace, tmp_path_factory.mktemp("pair"))
