"""The operator's own watches (member Leases, replication Jobs): list, then watch from the
list's resourceVersion, for as long as the operator runs.

kopf gives every event a per-object worker, handler dispatch and logging. For the hot or
plentiful resources the operator only needs an index, so one streaming watch per namespace
parses each line and hands it over, and nothing else. On 410 Gone or any error the watch lists
again, and the listing replaces what the index held (deletions missed in the gap disappear).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)
WATCH_SECONDS = 300
RETRY_SECONDS = 1.0

Lister = Callable[..., Awaitable[Any]]
"""A kubernetes_asyncio list call with its namespace and label selector already bound."""
Listed = Callable[[list[dict[str, Any]]], None]
Changed = Callable[[str, dict[str, Any]], None]


async def follow(lister: Lister, listed: Listed, changed: Changed, what: str) -> None:
    """Run until cancelled: `listed(items)` after every listing, `changed(type, object)` for
    every ADDED, MODIFIED or DELETED event in between."""
    version: str | None = None
    while True:
        try:
            if version is None:
                version = await _list(lister, listed)
            version = await _stream(lister, changed, version)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the watch must outlive any API trouble
            log.warning("%s watch: %r; listing again", what, error)
            version = None
            await asyncio.sleep(RETRY_SECONDS)


async def _list(lister: Lister, listed: Listed) -> str:
    response = await _call(lister, watch=False)
    body = json.loads(await response.read())
    listed(body.get("items") or [])
    return str(body["metadata"]["resourceVersion"])


async def _stream(lister: Lister, changed: Changed, version: str) -> str | None:
    """Follow the watch until the server closes it; the version to resume from, or None."""
    response = await _call(lister, watch=True, resource_version=version)
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
                changed(str(kind), obj)
    return version


async def _call(lister: Lister, **query: Any) -> Any:
    return await lister(
        _preload_content=False,
        timeout_seconds=WATCH_SECONDS,
        allow_watch_bookmarks=True,
        **query,
    )
