"""Fixtures for the sandbox conformance suite, which runs twice: against the embedded sandbox
and against the real Kubernetes 1.20 control plane (hack/control-plane.sh, started once per
session). Where the two differ, the real server is right. The `kube-1.20` runs skip, naming
the reason, when that control plane cannot be built or started here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from .helpers import KUBECTL, WIDGET_CRD, install_crd, install_pairwarden_crd

BACKENDS = ("sandbox", "kube-1.20")


@pytest.fixture(scope="session", params=BACKENDS)
def sandbox(request: pytest.FixtureRequest, sandbox: Any) -> Any:
    """The API server under test: the session's sandbox (or PAIRWARDEN_TEST_KUBECONFIG's
    cluster), then the real control plane with the pairwarden CRD installed as a user of
    1.20 would (without its CEL rules, which that server does not know)."""
    if request.param == "sandbox":
        return sandbox
    from tests.conftest import RealCluster

    plane = request.getfixturevalue("real_cluster")
    real = RealCluster(Path(plane.kubeconfig), plane.server)
    install_pairwarden_crd(real.kubeconfig_path)
    return real


@pytest.fixture(scope="session")
def widgets(api_client: client.ApiClient) -> client.CustomObjectsApi:
    install_crd(api_client, WIDGET_CRD)
    return client.CustomObjectsApi(api_client)


@pytest.fixture(scope="session")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def leases(api_client: client.ApiClient) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api_client)


@pytest.fixture
def kubectl(
    sandbox: Any, tmp_path: Path
) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Run the real kubectl against the cluster under test, with a private discovery cache."""
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig_path), "HOME": str(tmp_path)}

    def run(
        *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [KUBECTL, f"--cache-dir={tmp_path / 'cache'}", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    run.env = env  # type: ignore[attr-defined]
    yield run
