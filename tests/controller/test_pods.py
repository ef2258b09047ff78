"""Which pods a Service selects, as the operator reads it every step of every pair: from the API
server's watch cache (resourceVersion=0), so that the read does not cost a pass over every
pod of the namespace in etcd; only running pods count, as kube-proxy routes only to them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from kubernetes_asyncio import client

from pairwarden.controller import pods


def _pod(name: str, phase: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "labels": {"app": "vm"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-05T12:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}}


class PodLister:
    """An API server that answers a pod list and remembers each request's query."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.queries: list[dict[str, str]] = []

    async def list_pods(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        return web.json_response(
            {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": self.items}
        )


@pytest.fixture
async def lister() -> AsyncIterator[tuple[PodLister, client.ApiClient]]:
    fake = PodLister(
        [
            _pod("vm-secondary", "Running"),
            _pod("vm-primary", "Running"),
            _pod("vm-new", "Pending"),
            _pod("vm-old", "Running", deleting=True),
        ]
    )
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{namespace}/pods", fake.list_pods)
    server = TestServer(app)
    await server.start_server()
    api = client.ApiClient(client.Configuration(host=str(server.make_url("")).rstrip("/")))
    try:
        yield fake, api
    finally:
        await api.close()
        await server.close()


async def test_the_selection_is_read_from_the_watch_cache(
    lister: tuple[PodLister, client.ApiClient],
) -> None:
    fake, api = lister
    found = await pods.selected(api, "ns", {"pairwarden.io/pair": "vm", "app": "vm"})
    (query,) = fake.queries
    assert query["resourceVersion"] == "0"  # the watch cache, not a quorum read from etcd
    assert query["labelSelector"] == "app=vm,pairwarden.io/pair=vm"
    # running and not being deleted: what kube-proxy routes to, in a stable order
    assert found == ("vm-primary", "vm-secondary")


async def test_an_empty_selector_selects_nothing_without_a_request(
    lister: tuple[PodLister, client.ApiClient],
) -> None:
    fake, api = lister
    assert await pods.selected(api, "ns", {}) == ()
    assert fake.queries == []
