"""The member pods as the kubelet reports them, watched directly (as the member Leases are).

A crash the node sees is news at once: when the kubelet reports the containers of a member's
pod terminated or restarted, the pair is woken and the engine judges it (engine.crashed),
instead of waiting out the window W while the kubelet restarts them and callers are lost.
Only pods the operator labelled as members are watched (`pairwarden.io/member`): a handful of
status changes per pod over its life, nothing per renewal.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from pairwarden import watching
from pairwarden.clock import Clock
from pairwarden.controller.observations import ObservationBook
from pairwarden.controller.pods import sight_pod
from pairwarden.protocol import LABEL_MEMBER, LABEL_PAIR, MEMBERS


def record_pod(
    book: ObservationBook, pod: dict[str, Any], event_type: str | None, now: float
) -> bool:
    """Take one watch event (or listed item) of a member pod; True when its pair was woken."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    pair, member = labels.get(LABEL_PAIR), labels.get(LABEL_MEMBER)
    if not pair or member not in MEMBERS:
        return False
    pairs = book.pair(str(meta.get("namespace") or ""), pair)
    sighting, news = sight_pod(pairs.pods.get(member), pod, now, event_type == "DELETED")
    pairs.pods[member] = sighting
    if news:
        pairs.nudge(now)
    return news


async def watch(
    api: client.ApiClient, namespace: str | None, book: ObservationBook, clock: Clock
) -> None:
    """Run until cancelled; `namespace` None watches every namespace."""
    core = client.CoreV1Api(api)
    lister = watching.scoped(
        core.list_pod_for_all_namespaces,
        core.list_namespaced_pod,
        namespace,
        label_selector=LABEL_MEMBER,
    )
    listing: set[tuple[str, str, str]] = set()

    def take(pod: dict[str, Any], kind: str | None) -> None:
        record_pod(book, pod, kind, clock.monotonic())
        if kind is None:  # an item of a listing
            listing.add(member_key(pod))

    def listed() -> None:
        forget_unlisted(book, namespace, listing)
        listing.clear()

    await watching.follow_each(lister, take, f"member pod ({namespace or 'all'})", listed=listed)


def member_key(pod: dict[str, Any]) -> tuple[str, str, str]:
    """(namespace, pair, member) by the pod's labels."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    return (
        str(meta.get("namespace") or ""),
        str(labels.get(LABEL_PAIR)),
        str(labels.get(LABEL_MEMBER)),
    )


def forget_unlisted(
    book: ObservationBook, namespace: str | None, listing: set[tuple[str, str, str]]
) -> None:
    """After a listing of `namespace` (None: every namespace): forget the member pods it did
    not hold. A relist (after 410 Gone, or an error) replaces what was held, and a pod
    deleted in the gap sends no event: held as running, a step would take it from the
    watch (pods.watched) instead of reading it gone."""
    for (where, pair), pairs in book.pairs_in(namespace):
        for member in list(pairs.pods):
            if (where, pair, member) not in listing:
                del pairs.pods[member]
