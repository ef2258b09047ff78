"""The member Leases' heartbeat stream, watched directly rather than through kopf.

Heartbeats are the operator's hottest input: two events per pair per renewal period, 400 a
second at 2,000 pairs. kopf gives every event its own per-object worker, handler dispatch and
logging; here one streaming watch per namespace parses each line and stamps the observation
book, and nothing else. List, then watch from the list's resourceVersion; on 410 Gone or any
error, list again (a re-listed Lease counts as freshly seen only if its renewTime moved).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from kubernetes_asyncio import client

from pairwarden.clock import Clock
from pairwarden.controller.observations import ObservationBook
from pairwarden.protocol import LABEL_PAIR

log = logging.getLogger(__name__)
WATCH_SECONDS = 300
RETRY_SECONDS = 1.0


async def watch(
    api: client.ApiClient, namespace: str | None, book: ObservationBook, clock: Clock
) -> None:
    """Run until cancelled; `namespace` None watches every namespace."""
    leases = client.CoordinationV1Api(api)
    version: str | None = None
    while True:
        try:
            if version is None:
                version = await _list(leases, namespace, book, clock)
            version = await _stream(leases, namespace, book, clock, version)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the watch must outlive any API trouble
            log.warning("member Lease watch (%s): %r; listing again", namespace or "all", error)
            version = None
            await asyncio.sleep(RETRY_SECONDS)


async def _list(
    leases: client.CoordinationV1Api, namespace: str | None, book: ObservationBook, clock: Clock
) -> str:
    response = await _call(leases, namespace, watch=False)
    listed = json.loads(await response.read())
    for lease in listed.get("items") or []:
        book.record_lease(lease, None, clock.monotonic())
    return str(listed["metadata"]["resourceVersion"])


async def _stream(
    leases: client.CoordinationV1Api,
    namespace: str | None,
    book: ObservationBook,
    clock: Clock,
    version: str,
) -> str | None:
    """Follow the watch until the server closes it; the version to resume from, or None."""
    response = await _call(leases, namespace, watch=True, resource_version=version)
    async with response:
        async for line in response.content:
            if not line.strip():
                continue
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                return None  # 410 Gone (or worse): list again
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            if kind != "BOOKMARK":
                book.record_lease(obj, kind, clock.monotonic())
    return version


async def _call(leases: client.CoordinationV1Api, namespace: str | None, **query: Any) -> Any:
    options = dict(
        label_selector=LABEL_PAIR,
        _preload_content=False,
        timeout_seconds=WATCH_SECONDS,
        allow_watch_bookmarks=True,
        **query,
    )
    if namespace is None:
        return await leases.list_lease_for_all_namespaces(**options)
    return await leases.list_namespaced_lease(namespace, **options)
