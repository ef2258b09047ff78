"""The member Leases' heartbeat stream, watched directly rather than through kopf.

Heartbeats are the operator's hottest input: two events per pair per renewal period, 400 a
second at 2,000 pairs. Each event is one JSON parse and a stamp in the observation book. A
re-listed Lease (after 410 Gone or an error) counts as freshly seen only if its renewTime
moved.
"""

from __future__ import annotations

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
    await watching.follow_each(
        lister,
        lambda lease, kind: book.record_lease(lease, kind, clock.monotonic()),
        f"member Lease ({namespace or 'all'})",
        listed=lambda: book.listed(namespace, clock.monotonic()),
    )
