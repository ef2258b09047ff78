"""What the operator has seen of each member, stamped with the operator's own clock.

A renewal is observed when a member Lease's `spec.renewTime` changes (only agents write it),
and the time recorded is when the operator saw it, never the time the agent wrote: clocks skew.
The first sighting of a Lease also counts as a renewal, so an operator restart gives every
member a full window instead of failing over on stale memories.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pairwarden.api.models import Transition
from pairwarden.clock import Clock, SystemClock
from pairwarden.controller.leases import parse_move
from pairwarden.controller.pods import PodSighting
from pairwarden.protocol import (
    ANNOTATION_ACTIVE_MEMBER,
    LABEL_MEMBER,
    LABEL_PAIR,
    MEMBERS,
    MemberReport,
    active_lease_name,
)


@dataclass
class MemberSighting:
    last_seen: float  # operator monotonic seconds of the last observed renewal
    renew_time: str
    holder: str
    report: MemberReport
    deleted: bool = False


@dataclass(frozen=True)
class ActiveSighting:
    """The active Lease as last seen (watched, or as our own write returned it)."""

    holder: str
    epoch: int
    resource_version: str
    move: Transition | None = None  # the move it records (leases.write_active)
    member: str = ""  # the member it names (pairwarden.io/member), written with the holder


def newer(candidate: ActiveSighting, known: ActiveSighting | None) -> bool:
    """A watch event may arrive after our own write's response: keep the later version.
    resourceVersions are opaque, but where both are integers (etcd's revisions, the sandbox's)
    their order is the order of writes; otherwise take the candidate."""
    if known is None:
        return True
    try:
        return int(candidate.resource_version) >= int(known.resource_version)
    except ValueError:
        return True


def active_sighting(lease: dict[str, Any]) -> ActiveSighting:
    spec = lease.get("spec") or {}
    meta = lease.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return ActiveSighting(
        holder=str(spec.get("holderIdentity") or ""),
        epoch=int(spec.get("leaseTransitions") or 0),
        resource_version=str(meta.get("resourceVersion") or ""),
        move=parse_move(annotations),
        member=str(annotations.get(ANNOTATION_ACTIVE_MEMBER) or ""),
    )


@dataclass
class PairBook:
    members: dict[str, MemberSighting] = field(default_factory=dict)
    active: ActiveSighting | None = None  # the `<pair>-active` Lease: who holds the role
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    woken_at: float | None = None  # an urgent report or a passed deadline: reaction starts here
    licence_deadline: datetime | None = None  # the secondary's, as the engine last judged it
    window: float | None = None  # W, set by the reconciler: silence longer than this is loss
    pods: dict[str, PodSighting] = field(default_factory=dict)  # per member (podwatch)

    def see_active(self, sighting: ActiveSighting) -> bool:
        """Take a sighting of the active Lease; True when it changed what we knew."""
        if not newer(sighting, self.active):
            return False
        changed = self.active is None or (sighting.holder, sighting.epoch) != (
            self.active.holder,
            self.active.epoch,
        )
        self.active = sighting
        return changed

    def nudge(self, now: float) -> None:
        if not self.wake.is_set():
            self.woken_at = now
        self.wake.set()


class ObservationBook:
    """Sightings per (namespace, pair, member), and a wake-up for each pair's reconciler."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], PairBook] = {}
        self._clock: Clock = SystemClock()
        self._listed: set[str | None] = set()  # namespaces (None: all) listed at least once

    def listed(self, namespace: str | None, now: float) -> None:
        """The member Leases of `namespace` (None: every namespace) were listed and recorded.
        The first listing wakes the pairs there: they waited for it (`hearing`)."""
        if namespace in self._listed:
            return
        self._listed.add(namespace)
        for (where, _), book in list(self._pairs.items()):
            if namespace is None or where == namespace:
                book.nudge(now)

    def hearing(self, namespace: str) -> bool:
        """Whether the member Leases of `namespace` have been listed since this process
        started. Before that every member is unseen, and judging it would find each one
        silent: a restarted operator failed the holder over (HeartbeatLost, then none ->
        FirstToStart: two epochs) whenever its first look came before the first listing."""
        return None in self._listed or namespace in self._listed

    def pair(self, namespace: str, pair: str) -> PairBook:
        return self._pairs.setdefault((namespace, pair), PairBook())

    def forget(self, namespace: str, pair: str) -> None:
        self._pairs.pop((namespace, pair), None)

    def bind_clock(self, clock: Clock) -> None:
        """The clock the scrape-time metrics read (metrics.Clocks)."""
        self._clock = clock

    def heartbeat_ages(self) -> Iterable[tuple[str, str, str, float]]:
        now = self._clock.monotonic()
        for (namespace, pair), book in list(self._pairs.items()):
            for member, seen in list(book.members.items()):
                if not seen.deleted:
                    yield namespace, pair, member, now - seen.last_seen

    def licence_left(self) -> Iterable[tuple[str, str, float]]:
        now = self._clock.wall()
        for (namespace, pair), book in list(self._pairs.items()):
            if book.licence_deadline is not None:
                yield namespace, pair, (book.licence_deadline - now).total_seconds()

    def record_lease(self, lease: dict[str, Any], event_type: str | None, now: float) -> bool:
        """Take one watch event of a member Lease; True when the pair should reconcile now."""
        meta = lease.get("metadata") or {}
        labels = meta.get("labels") or {}
        pair, member = labels.get(LABEL_PAIR), labels.get(LABEL_MEMBER)
        if pair and member is None and meta.get("name") == active_lease_name(pair):
            # Someone moved the active Lease (or our own write came back): look at once.
            book = self.pair(meta.get("namespace", ""), pair)
            if event_type != "DELETED" and book.see_active(active_sighting(lease)):
                book.nudge(now)
            return False
        if not pair or member not in MEMBERS:
            return False
        book = self.pair(meta.get("namespace", ""), pair)
        spec = lease.get("spec") or {}
        renew_time = str(spec.get("renewTime") or "")
        report = MemberReport.from_annotations(meta.get("annotations"))
        before = book.members.get(member)
        if event_type == "DELETED":
            if before is not None:
                before.deleted = True
            book.nudge(now)
            return True
        if not renew_time:  # created by the operator, never renewed by an agent yet
            return False
        renewed = before is None or before.deleted or renew_time != before.renew_time
        sighting = MemberSighting(
            last_seen=now if renewed or before is None else before.last_seen,
            renew_time=renew_time,
            holder=str(spec.get("holderIdentity") or ""),
            report=report,
        )
        book.members[member] = sighting
        # A renewal after more than a window of silence is a member coming back (a healed
        # partition, a restarted node): as urgent as any report, though it may read the same.
        returned = (
            before is not None and book.window is not None and now - before.last_seen > book.window
        )
        urgent = before is None or before.deleted or returned or report.urgent_change(before.report)
        # New data on a member may make a copy due (replication.seconds_until_due sleeps
        # until then): not urgent for the agent, but the pair looks at once.
        new_data = before is not None and report.data_version != before.report.data_version
        if urgent or new_data:
            book.nudge(now)
        return urgent
