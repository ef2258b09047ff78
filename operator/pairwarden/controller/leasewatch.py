"""The member Leases' heartbeat stream, watched directly rather than through kopf.

Heartbeats are the operator's hottest input: two events per pair per renewal period, 400 a
second at 2,000 pairs. Each event is one JSON parse and a stamp in the observation book. A
re-listed Lease (after 410 Gone or an error) counts as freshly seen only if its renewTime
moved. The stream is also the operator's hearing (observations.Hearing): its events, bookmarks
and listings are successes, its errors open a deaf episode.
"""

from __future__ import annotations

import functools
from typing import Any

from kubernetes_asyncio import client

from pairwarden import watching
from pairwarden.clock import Clock
from pairwarden.controller.observations import ObservationBook
from pairwarden.protocol import LABEL_PAIR


async def watch(
    api: client.ApiClient, namespace: str | None, book: ObservationBook, clock: Clock
) -> None:
    """Run until cancelled; `namespace` None watches every namespace."""
    leases = client.CoordinationV1Api(api)
    lister = (
        functools.partial(leases.list_lease_for_all_namespaces, label_selector=LABEL_PAIR)
        if namespace is None
        else functools.partial(leases.list_namespaced_lease, namespace, label_selector=LABEL_PAIR)
    )

    def listed(items: list[dict[str, Any]]) -> None:
        book.listening.heard(clock.monotonic())
        for lease in items:
            book.record_lease(lease, None, clock.monotonic())
        book.listed(namespace, clock.monotonic())

    def changed(kind: str, lease: dict[str, Any]) -> None:
        book.listening.heard(clock.monotonic())
        book.record_lease(lease, kind, clock.monotonic())

    signals = watching.Signals(
        alive=lambda: book.listening.heard(clock.monotonic()),
        trouble=lambda: book.listening.missed(clock.monotonic()),
    )
    await watching.follow(lister, listed, changed, f"member Lease ({namespace or 'all'})", signals)
