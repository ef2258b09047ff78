"""Shared fixtures: `sandbox` (the embedded API server, or a real cluster when
PAIRWARDEN_TEST_KUBECONFIG is set) and a fresh `namespace` per test."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from pairwarden_testbed.sandbox import Sandbox

REAL_KUBECONFIG_ENV = "PAIRWARDEN_TEST_KUBECONFIG"


@dataclass
class RealCluster:
    """A cluster from a kubeconfig, offering what tests need of a sandbox."""

    kubeconfig_path: Path
    url: str


def _server_of(kubeconfig: Path) -> str:
    data = yaml.safe_load(kubeconfig.read_text())
    contexts = {c["name"]: c["context"] for c in data.get("contexts", [])}
    cluster_name = contexts[data["current-context"]]["cluster"]
    clusters = {c["name"]: c["cluster"] for c in data.get("clusters", [])}
    return str(clusters[cluster_name]["server"])


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox | RealCluster]:
    """The API server under test: a session-wide Sandbox, or the real cluster named by
    PAIRWARDEN_TEST_KUBECONFIG. Sandbox-only tests use `sandbox_only` instead."""
    real = os.environ.get(REAL_KUBECONFIG_ENV)
    if real:
        path = Path(real)
        yield RealCluster(path, _server_of(path))
        return
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def sandbox_only(sandbox: Sandbox | RealCluster) -> Sandbox:
    """The sandbox itself, for tests of its own hooks (faults, stats, compaction)."""
    if not isinstance(sandbox, Sandbox):
        pytest.skip("needs the embedded sandbox (fault injection, stats or compaction)")
    return sandbox


@pytest.fixture(scope="session")
def api_client(sandbox: Sandbox | RealCluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
    yield api
    api.close()


@pytest.fixture
def namespace(sandbox: Sandbox | RealCluster, api_client: client.ApiClient) -> Iterator[str]:
    """A namespace of its own for each test, deleted afterwards. On a real server it is
    ready once the ServiceAccount controller has made its `default` ServiceAccount and the
    token controller its token: until then a pod is refused ("No API token found")."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 60
    while not isinstance(sandbox, Sandbox) and not _has_token(core, name):
        if time.monotonic() > deadline:
            pytest.fail(f"namespace {name}: no token for its default ServiceAccount in 60 s")
        time.sleep(0.1)
    yield name
    core.delete_namespace(name)


def _has_token(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        account = core.read_namespaced_service_account("default", namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return bool(account.secrets)
