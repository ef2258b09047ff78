"""The member Leases' heartbeat stream, watched directly rather than through kopf.

Heartbeats are the operator's hottest input: two events per pair per renewal period, 400 a
second at 2,000 pairs. Each event is one JSON parse and a stamp in the observation book. A
re-listed Lease (after 410 Gone or an error) counts as freshly seen only if its renewTime
moved. The stream is also the operator's hearing (observations.Hearing): its events, bookmarks
and listings are successes, its errors open a deaf episode.
"""

from __future__ import annotations

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
    lister = watching.scoped(
        leases.list_lease_for_all_namespaces,
        leases.list_namespaced_lease,
        namespace,
        label_selector=LABEL_PAIR,
    )

    def take(lease: dict[str, Any], kind: str | None) -> None:
        book.listening.heard(clock.monotonic())
        book.record_lease(lease, kind, clock.monotonic())

    def listed() -> None:
        book.listening.heard(clock.monotonic())  # an empty listing is heard too
        book.listed(namespace, clock.monotonic())

    signals = watching.Signals(
        alive=lambda: book.listening.heard(clock.monotonic()),
        trouble=lambda: book.listening.missed(clock.monotonic()),
    )
    what = f"member Lease ({namespace or 'all'})"
    await watching.follow_each(lister, take, what, listed=listed, signals=signals)
