"""The agent's API adapter against the sandbox: update-only renewals with 409 retry, a
missing Lease, the pair spec, and a Lease watch that resumes after errors and 410 Gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client, config

from pairwarden.agent.kubeio import KubernetesIO, LeaseMissing, LeaseView
from pairwarden.kube import async_api_client
from pairwarden_testbed.waiting import eventually_async

sandbox_mod = pytest.importorskip("pairwarden_testbed.sandbox")
NS = "voice"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    with sandbox_mod.Sandbox() as sb:
        api = config.new_client_from_config(config_file=str(sb.kubeconfig_path))
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
        api.close()
        yield sb


@pytest.fixture
def leases(sandbox: Any) -> Iterator[client.CoordinationV1Api]:
    api = config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
    yield client.CoordinationV1Api(api)
    api.close()


@pytest.fixture
async def kube(sandbox: Any) -> AsyncIterator[KubernetesIO]:
    io = KubernetesIO(await async_api_client(str(sandbox.kubeconfig_path)), NS, "vm")
    yield io
    await io.close()


def now() -> datetime:
    return datetime.now(UTC)


async def test_renew_updates_only_and_retries_a_conflict(
    kube: KubernetesIO, leases: client.CoordinationV1Api
) -> None:
    with pytest.raises(LeaseMissing):
        await kube.renew("k1", "pod-a", {}, 30, now())
    leases.create_namespaced_lease(NS, {"metadata": {"name": "k1"}, "spec": {}})
    first = await kube.renew("k1", "pod-a", {"pairwarden.io/service": "up"}, 30, now())
    assert first.holder == "pod-a" and first.annotations["pairwarden.io/service"] == "up"
    # Someone else writes in between: the cached object is stale, the update gets 409.
    other = leases.read_namespaced_lease("k1", NS)
    other.metadata.labels = {"touched": "yes"}
    leases.replace_namespaced_lease("k1", NS, other)
    second = await kube.renew("k1", "", {"pairwarden.io/agent": "stopping"}, 30, now())
    assert second.holder == "" and second.annotations["pairwarden.io/service"] == "up"
    after = leases.read_namespaced_lease("k1", NS)
    assert after.metadata.labels == {"touched": "yes"}
    assert after.metadata.annotations["pairwarden.io/agent"] == "stopping"


async def test_pair_spec_absent_is_none(kube: KubernetesIO) -> None:
    assert await kube.get_pair_spec() is None


async def test_watch_resumes_after_errors_and_410(
    kube: KubernetesIO, leases: client.CoordinationV1Api, sandbox: Any
) -> None:
    kube.watch_timeout = 1  # streams end every second, so resumes happen during the test
    calls: list[str] = []
    real_list = kube._leases.list_namespaced_lease

    def counting_list(*args: Any, **kwargs: Any) -> Any:
        calls.append("watch" if kwargs.get("watch") else "list")
        return real_list(*args, **kwargs)

    kube._leases.list_namespaced_lease = counting_list  # type: ignore[method-assign]
    leases.create_namespaced_lease(NS, {"metadata": {"name": "k2"}, "spec": {}})
    seen: asyncio.Queue[LeaseView | None] = asyncio.Queue()

    async def consume() -> None:
        async for view in kube.watch_lease("k2"):
            await seen.put(view)

    async def holder_becomes(name: str) -> None:
        async with asyncio.timeout(10):
            while True:
                view = await seen.get()
                if view is not None and view.holder == name:
                    return

    task = asyncio.create_task(consume())
    try:
        initial = await asyncio.wait_for(seen.get(), 5)
        assert initial is not None and initial.name == "k2"

        def set_holder(name: str) -> None:
            lease = leases.read_namespaced_lease("k2", NS)
            lease.spec.holder_identity = name
            leases.replace_namespaced_lease("k2", NS, lease)

        set_holder("a")
        await holder_becomes("a")
        sandbox.inject_fault(verb="watch", resource="leases", status=500, count=1)
        # The stream ends (timeout), the resume fails once (500), then works.
        await eventually_async(lambda: calls.count("watch") >= 3)
        set_holder("b")
        await holder_becomes("b")
        # Writes this watch does not see, then compaction: its resourceVersion is now too old
        # to resume from, so the next resume gets 410 and the watcher relists.
        leases.create_namespaced_lease(NS, {"metadata": {"name": "k3"}, "spec": {}})
        sandbox.compact()
        await eventually_async(lambda: calls.count("list") >= 2)
        set_holder("c")
        await holder_becomes("c")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
