"""Fixtures for the sandbox conformance suite; they work against a real cluster too."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from .helpers import KUBECTL, WIDGET_CRD, install_crd


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
