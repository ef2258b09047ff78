"""What the operator's adapters share about the API client (made by `pairwarden.kube`; kopf
keeps its own for watching): patch content types, plain dicts, error statuses."""

from __future__ import annotations

from typing import Any, Protocol

from kubernetes_asyncio import client

from pairwarden.clock import Clock
from pairwarden.kube import watching

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def to_dict(api: client.ApiClient, obj: Any) -> dict[str, Any]:
    """Models from kubernetes_asyncio as the plain dicts the rest of the code speaks."""
    result: dict[str, Any] = api.sanitize_for_serialization(obj)
    return result


def status_of(error: Exception) -> int:
    return int(getattr(error, "status", 0) or 0)


class Listener(Protocol):
    """What `report_waits` tells (observations.Hearing)."""

    last_heard: float | None

    def waited(self, since: float | None, sent: float, answered: float) -> None: ...


def report_waits(api: client.ApiClient, clock: Clock, listener: Listener) -> None:
    """Every request `api` sends but a watch reports, once answered, the last success before it
    was sent, when it was sent and when answered (`Listener.waited`): a server that holds
    requests (etcd paused) raises nothing, it only answers late. A watch's response is its
    stream, open for minutes by design."""
    rest = api.rest_client
    send = rest.request

    async def request(*args: Any, **kwargs: Any) -> Any:
        if watching(kwargs):
            return await send(*args, **kwargs)
        since, sent = listener.last_heard, clock.monotonic()
        response = await send(*args, **kwargs)
        listener.waited(since, sent, clock.monotonic())
        return response

    rest.request = request
