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


async def test_a_step_reads_both_pods_and_the_service_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step woken by a crash decides after these reads: they go out together, one round trip
    rather than three (issue 26), and each answer lands where it belongs."""
    import asyncio

    from pairwarden.api.models import parse_spec
    from pairwarden.clock import ManualClock
    from pairwarden.controller import reconcile
    from pairwarden.controller.observations import ObservationBook

    in_flight, most = 0, 0
    release = asyncio.Event()

    async def read(answer: object) -> object:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if most == 3:
            release.set()
        await asyncio.wait_for(release.wait(), 5)  # a step that reads one at a time: never 3
        in_flight -= 1
        return answer

    def resolve(api: object, ns: str, path: str, name: str | None, sel: object) -> object:
        return read(pods.Resolution(name, running=True))

    async def selected(api: object, ns: str, selector: object) -> tuple[str, ...]:
        return ("a",)

    monkeypatch.setattr(pods, "resolve_member", resolve)
    monkeypatch.setattr(pods, "selected", selected)
    monkeypatch.setattr(services, "read_selector", lambda api, ns, name: read({"m": "primary"}))
    spec = parse_spec(
        {"members": {"primary": {"podName": "a"}, "secondary": {"podName": "b"}}, "service": "c"}
    )
    rt = reconcile.Runtime(api=None, book=ObservationBook(), clock=ManualClock())  # type: ignore[arg-type]
    seen = await reconcile._read_world(rt, "voice", spec)
    assert most == 3
    assert {m: r.name for m, r in seen.pods.items()} == {"primary": "a", "secondary": "b"}
    assert seen.routing.selector == {"m": "primary"} and seen.routing.selected == ("a",)
