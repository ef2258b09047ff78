"""Shared fixtures: `sandbox` (the embedded API server, or a real cluster when
PAIRWARDEN_TEST_KUBECONFIG is set) and a fresh `namespace` per test."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A namespace of its own for each test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 30
    while True:  # a real cluster may take a moment before the namespace accepts objects
        ns = core.read_namespace(name)
        if (ns.status and ns.status.phase == "Active") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Kubernetes 1.20 control plane (etcd, kube-apiserver, controller-manager,
    scheduler from hack/control-plane.sh), started once per session; a
    `pairwarden_testbed.controlplane.ControlPlane` (.kubeconfig, .server,
    .serviceaccount_kubeconfig(ns, sa)). Skips, naming the reason, when the binaries are
    not built (`make control-plane`) or PAIRWARDEN_REAL_K8S=0."""
    from pairwarden_testbed import controlplane

    reason = controlplane.unavailable()
    if reason:
        pytest.skip(reason)
    cp = controlplane.ControlPlane(tmp_path_factory.mktemp("k8s"))
    try:
        yield cp.up()
    finally:
        cp.down()
