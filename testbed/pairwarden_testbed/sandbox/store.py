"""Objects by resource and namespace, the global resourceVersion counter, a bounded event
history per resource for watch resume, and the watchers to fan events out to.

A write costs O(watchers of that resource in that namespace or cluster-wide), never
O(all objects): lists and watches are indexed by resource, then namespace.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .persist import SqliteBackend
from .selectors import Selector

Key = tuple[str, str]
Obj = dict[str, Any]


@dataclass
class Event:
    """One change. `old` lets selector-filtered watchers turn MODIFIED into ADDED/DELETED."""

    type: str
    obj: Obj
    rv: int
    old: Obj | None = None
    _lines: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def line(self, kind: str, api_version: str) -> bytes:
        """The serialized watch line, built once per (type, apiVersion) for all watchers."""
        cache_key = (kind, api_version)
        cached = self._lines.get(cache_key)
        if cached is None:
            obj = self.obj
            if obj.get("apiVersion") != api_version:
                obj = {**obj, "apiVersion": api_version}
            cached = (
                json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"
            )
            self._lines[cache_key] = cached
        return cached


@dataclass(eq=False)
class Watcher:
    key: Key
    selector: Selector
    queue: asyncio.Queue[tuple[str, Event] | None] = field(default_factory=asyncio.Queue)

    def offer(self, event: Event) -> None:
        now = self.selector.matches(event.obj)
        before = event.old is not None and self.selector.matches(event.old)
        if event.type == "MODIFIED":
            if now and before:
                self.queue.put_nowait(("MODIFIED", event))
            elif now:
                self.queue.put_nowait(("ADDED", event))
            elif before:
                self.queue.put_nowait(("DELETED", event))
        elif now:
            self.queue.put_nowait((event.type, event))


def _sort_key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


class Store:
    def __init__(self, backend: SqliteBackend | None = None, history_size: int = 5000) -> None:
        self.rv = 0
        self.history_size = history_size
        self._backend = backend
        self._data: dict[Key, dict[str, dict[str, Obj]]] = {}
        self._history: dict[Key, deque[Event]] = {}
        self._floor: dict[Key, int] = {}
        self._watchers: dict[Key, dict[str | None, set[Watcher]]] = {}
        if backend is not None:
            self.rv, rows = backend.load()
            for key, obj in rows:
                meta = obj["metadata"]
                self._data.setdefault(key, {}).setdefault(meta.get("namespace", ""), {})[
                    meta["name"]
                ] = obj
        self._start_rv = self.rv

    def loaded(self) -> list[tuple[Key, Obj]]:
        return [
            (k, o) for k, by_ns in self._data.items() for ns in by_ns.values() for o in ns.values()
        ]

    def get(self, key: Key, ns: str, name: str) -> Obj | None:
        return self._data.get(key, {}).get(ns, {}).get(name)

    def objects(self, key: Key, namespace: str | None) -> list[Obj]:
        by_ns = self._data.get(key, {})
        if namespace is not None:
            return list(by_ns.get(namespace, {}).values())
        return [o for ns in by_ns.values() for o in ns.values()]

    def namespace_objects(self, namespace: str) -> list[tuple[Key, Obj]]:
        return [
            (k, o) for k, by_ns in self._data.items() for o in by_ns.get(namespace, {}).values()
        ]

    def count(self, key: Key) -> int:
        return sum(len(ns) for ns in self._data.get(key, {}).values())

    def next_rv(self) -> int:
        return self.rv + 1

    def write(self, key: Key, kind: str, obj: Obj, old: Obj | None) -> None:
        """Store `obj` (already stamped with next_rv()) durably, then publish the event."""
        rv = int(obj["metadata"]["resourceVersion"])
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        self._persist(rv, key, ns, name, None if kind == "DELETED" else obj)
        self.rv = rv
        bucket = self._data.setdefault(key, {}).setdefault(ns, {})
        if kind == "DELETED":
            bucket.pop(name, None)
        else:
            bucket[name] = obj
        self._publish(key, Event(kind, obj, rv, old))

    def _persist(self, rv: int, key: Key, ns: str, name: str, obj: Obj | None) -> None:
        if self._backend is None:
            return
        try:
            self._backend.save(rv, key, ns, name, obj)
        except Exception as exc:
            raise ApiError(500, f"storage error: {exc}") from exc

    def _publish(self, key: Key, event: Event) -> None:
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = deque()
        history.append(event)
        while len(history) > self.history_size:
            self._floor[key] = history.popleft().rv
        watchers = self._watchers.get(key)
        if not watchers:
            return
        ns = event.obj["metadata"].get("namespace", "")
        for group in (watchers.get(ns), watchers.get(None)):
            for watcher in group or ():
                watcher.offer(event)

    def drop_resource(self, key: Key) -> None:
        """Forget every object of a resource (its CRD is gone) and end its watches."""
        self._data.pop(key, None)
        self._history.pop(key, None)
        for group in self._watchers.pop(key, {}).values():
            for watcher in group:
                watcher.queue.put_nowait(None)

    def compact(self) -> None:
        """Forget all history: resuming a watch from any earlier version now gets 410."""
        for key in set(self._history) | set(self._data):
            self._history.pop(key, None)
            self._floor[key] = self.rv

    def floor(self, key: Key) -> int:
        """Resuming a watch of `key` from below this resourceVersion is too old."""
        return max(self._floor.get(key, 0), self._start_rv)

    def subscribe(
        self, key: Key, selector: Selector, since: int | None, initial_end: bool = False
    ) -> Watcher:
        """Register a watcher and queue what it must see first: the history after `since`, or
        (since None) an ADDED per current object, then optionally the initial-events-end
        bookmark. Nothing yields in between, so no event is missed or duplicated."""
        watcher = Watcher(key, selector)
        self._watchers.setdefault(key, {}).setdefault(selector.namespace, set()).add(watcher)
        if since is not None:
            for event in self._history.get(key, ()):
                if event.rv > since:
                    watcher.offer(event)
        else:
            name = selector.exact_name
            candidates = self.objects(key, selector.namespace)
            if name is not None:
                candidates = [o for o in candidates if o["metadata"]["name"] == name]
            for obj in sorted(candidates, key=_sort_key):
                watcher.offer(Event("ADDED", obj, int(obj["metadata"]["resourceVersion"])))
        if initial_end:
            watcher.queue.put_nowait(("BOOKMARK", Event("BOOKMARK", {}, self.rv)))
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        group = self._watchers.get(watcher.key, {}).get(watcher.selector.namespace)
        if group is not None:
            group.discard(watcher)

    def watcher_count(self) -> int:
        return sum(len(g) for by_ns in self._watchers.values() for g in by_ns.values())

    def end_watches(self) -> int:
        """End every open watch stream as a server does that drops its slow clients, or
        restarts: each ends cleanly and its client watches again. How many were ended."""
        ended = 0
        for by_ns in self._watchers.values():
            for group in by_ns.values():
                for watcher in group:
                    watcher.queue.put_nowait(None)
                    ended += 1
        return ended

    def close(self) -> None:
        for by_ns in self._watchers.values():
            for group in by_ns.values():
                for watcher in group:
                    watcher.queue.put_nowait(None)
        if self._backend is not None:
            self._backend.close()
