"""The operator's reads of member pods and the callers' Service, from the outside: a missing
object is an answer (a member gone, a Service to report), any other API error is raised
(kube.absent_as_none, shared with the agent's reads of its Lease and pair)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client as aclient

from pairwarden.controller import pods, services
from pairwarden.kube import async_api_client
from pairwarden_testbed.sandbox import Sandbox


@pytest.fixture
async def api(sandbox_only: Sandbox) -> AsyncIterator[aclient.ApiClient]:
    api = await async_api_client(str(sandbox_only.kubeconfig_path))
    yield api
    await api.close()


async def test_missing_pod_and_service_are_answers(api: aclient.ApiClient, namespace: str) -> None:
    assert await pods.ip(api, namespace, "vm-0") is None
    assert await pods.label(api, namespace, "vm-0", "vm", "primary", True) is False
    gone = await pods.resolve_member(api, namespace, "spec.primary", "vm-0", None)
    assert gone == pods.Resolution("vm-0", running=False, exists=False)
    assert await services.read_selector(api, namespace, "calls") is None


async def test_other_errors_are_raised(
    api: aclient.ApiClient, namespace: str, sandbox_only: Sandbox
) -> None:
    sandbox_only.inject_fault("get", "pods", namespace=namespace, status=403, count=1)
    with pytest.raises(aclient.ApiException) as refused:
        await pods.ip(api, namespace, "vm-0")
    assert refused.value.status == 403
    sandbox_only.inject_fault("get", "services", namespace=namespace, status=500, count=1)
    with pytest.raises(aclient.ApiException) as failed:
        await services.read_selector(api, namespace, "calls")
    assert failed.value.status == 500
