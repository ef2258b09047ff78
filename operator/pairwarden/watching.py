"""List, then watch from the list's resourceVersion, for as long as the caller wants: the one
informer loop of the operator (member Leases, replication Jobs), the agent (the active Lease)
and the test rig.

kopf gives every event a per-object worker, handler dispatch and logging. For hot or plentiful
resources an index is all that is needed, so one streaming watch parses each line and hands it
over, and nothing else. On 410 Gone the watch lists again at once, and the listing replaces
what the caller held (deletions missed in the gap disappear). On any other error it lists again
after a pause from `RETRY`: growing, capped and jittered, so a thousand agents cut off together
do not come back to the API server in one instant.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
WATCH_SECONDS = 300

Lister = Callable[..., Awaitable[Any]]
"""A kubernetes_asyncio list call with its namespace and selectors already bound."""


@dataclass(frozen=True)
class Backoff:
    """Pauses after consecutive failures: first, doubling up to cap, each drawn from
    [(1 - jitter) x, x]. Pure: `pause(failures, draw)` with `draw` in [0, 1)."""

    first: float = 0.2
    cap: float = 5.0
    jitter: float = 0.5

    def pause(self, failures: int, draw: float) -> float:
        ceiling = min(self.cap, self.first * 2 ** max(0, failures - 1))
        return float(ceiling * (1 - self.jitter * draw))


RETRY = Backoff()


@dataclass(frozen=True)
class Endless:
    """`backoff`'s pauses for failures 1, 2, 3, ... without end, afresh on every iteration:
    what kopf's `settings.networking.error_backoffs` takes. kopf retries a request once per
    value and gives up when they run out; on its re-list of a watched resource, giving up
    stops the whole operator. With endless pauses it keeps retrying, as this module's own
    watches do: a slow API server delays the operator, it does not end it."""

    backoff: Backoff

    def __iter__(self) -> Iterator[float]:
        return (self.backoff.pause(n, random.random()) for n in itertools.count(1))


@dataclass(frozen=True)
class Listed:
    """A fresh listing: everything there is now."""

    items: list[dict[str, Any]]


@dataclass(frozen=True)
class Changed:
    """One ADDED, MODIFIED or DELETED event since the listing."""

    kind: str
    obj: dict[str, Any]


class _Relist(Exception):
    """The server ended the watch with 410 Gone: list again now."""


class WatchError(Exception):
    """The server ended the watch with another ERROR event: list again after a pause."""


@dataclass(frozen=True)
class Signals:
    """What a caller that judges by this watch must know besides its events: `alive()` on a
    bookmark (the stream works, with nothing to say), `trouble()` whenever the watch ended by
    an error or 410 Gone (events may have been missed until the next listing)."""

    alive: Callable[[], None] = lambda: None
    trouble: Callable[[], None] = lambda: None


QUIET = Signals()


async def list_then_watch(
    lister: Lister,
    what: str,
    watch_seconds: int = WATCH_SECONDS,
    retry: Backoff = RETRY,
    signals: Signals = QUIET,
) -> AsyncIterator[Listed | Changed]:
    """Forever (until the consumer stops): a `Listed` after every listing, a `Changed` for
    every event in between. `watch_seconds` is the server-side length of one watch request."""
    version: str | None = None
    failures = 0
    while True:
        try:
            if version is None:
                listed, version = await _list(lister, watch_seconds)
                failures = 0
                yield listed
            async for event, resume_from in _stream(lister, version, watch_seconds):
                version = resume_from
                if event is None:
                    signals.alive()
                else:
                    yield event
        except asyncio.CancelledError:
            raise
        except _Relist:
            signals.trouble()
            version = None
        except Exception as error:  # the watch must outlive any API trouble
            signals.trouble()
            if getattr(error, "status", None) == 410:
                version = None
                continue
            failures += 1
            pause = retry.pause(failures, random.random())
            log.warning("%s watch: %r; listing again in %.1f s", what, error, pause)
            version = None
            await asyncio.sleep(pause)


async def follow(
    lister: Lister,
    listed: Callable[[list[dict[str, Any]]], None],
    changed: Callable[[str, dict[str, Any]], None],
    what: str,
    signals: Signals = QUIET,
) -> None:
    """`list_then_watch` with callbacks, until cancelled: `listed(items)` after every listing,
    `changed(type, object)` for every event in between."""
    async for event in list_then_watch(lister, what, signals=signals):
        if isinstance(event, Listed):
            listed(event.items)
        else:
            changed(event.kind, event.obj)


def scoped(every: Lister, one: Lister, namespace: str | None, **query: Any) -> Lister:
    """The list call of one namespace (`one`, bound to it) or, for None, of all (`every`)."""
    if namespace is None:
        return functools.partial(every, **query)
    return functools.partial(one, namespace, **query)


async def follow_each(
    lister: Lister,
    take: Callable[[dict[str, Any], str | None], object],
    what: str,
    listed: Callable[[], None] | None = None,
    signals: Signals = QUIET,
) -> None:
    """`follow` for an index of objects: `take(object, event type)` for every event, and for
    every item of a listing with the type None (then `listed()`, once the listing is taken)."""

    def every(items: list[dict[str, Any]]) -> None:
        for item in items:
            take(item, None)
        if listed is not None:
            listed()

    def one(kind: str, obj: dict[str, Any]) -> None:
        take(obj, kind)

    await follow(lister, every, one, what, signals)


async def _list(lister: Lister, watch_seconds: int) -> tuple[Listed, str]:
    response = await _call(lister, watch_seconds, watch=False)
    body = json.loads(await response.read())
    return Listed(body.get("items") or []), str(body["metadata"]["resourceVersion"])


async def _stream(
    lister: Lister, version: str, watch_seconds: int
) -> AsyncIterator[tuple[Changed | None, str]]:
    """Follow one watch request until the server closes it: each event with the version to
    resume from after it (None for a bookmark)."""
    response = await _call(lister, watch_seconds, watch=True, resource_version=version)
    async with response:
        async for line in response.content:
            if not line.strip():
                continue
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                message = obj.get("message") or "watch ended by the server"
                raise _Relist(message) if obj.get("code") == 410 else WatchError(message)
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            yield (None if kind == "BOOKMARK" else Changed(str(kind), obj)), version


async def _call(lister: Lister, watch_seconds: int, **query: Any) -> Any:
    return await lister(
        _preload_content=False,
        _request_timeout=watch_seconds + 10,  # a silent, broken connection ends too
        timeout_seconds=watch_seconds,
        allow_watch_bookmarks=True,
        **query,
    )
