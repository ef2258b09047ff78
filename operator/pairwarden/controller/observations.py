"""What the operator has seen of each member, stamped with the operator's own clock.

A renewal is observed when a member Lease's `spec.renewTime` changes (only agents write it),
and the time recorded is when the operator saw it, never the time the agent wrote: clocks skew.
The first sighting of a Lease also counts as a renewal, so an operator restart gives every
member a full window instead of failing over on stale memories.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from pairwarden.api.models import Transition
from pairwarden.clock import Clock, SystemClock
from pairwarden.controller.leases import parse_move
from pairwarden.controller.pods import PodSighting
from pairwarden.kube import refused
from pairwarden.protocol import (
    ANNOTATION_ACTIVE_MEMBER,
    LABEL_MEMBER,
    LABEL_PAIR,
    MEMBERS,
    HeartbeatSizing,
    Member,
    MemberReport,
    active_lease_name,
    other,
)


@dataclass
class MemberSighting:
    last_seen: float  # operator monotonic seconds of the last observed renewal
    renew_time: str
    holder: str
    report: MemberReport
    deleted: bool = False
    # Its silence was confirmed by a read (reconcile.confirm_silences): judged lost.
    lost: bool = False
    # When it renewed after it was judged lost, until a second renewal is seen: the engine
    # does not yet count it as heard (engine.silent).
    back_since: float | None = None
    resource_version: str = ""  # of the Lease as last recorded: an older event is stale
    # The first renewal of the other member observed after a shared lull this member was
    # silent across (PairBook.heard_renewal): it is judged no earlier than `back_within`
    # after that (`after_lull`). Cleared by its own next sighting.
    lull_ended: float | None = None


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


def unheard(error: BaseException) -> bool:
    """Whether a failed request says the operator is not hearing the API server (its side
    failed, or nothing came back), rather than that the request was wrong: 5xx, 429, a
    timeout, a refused or broken connection. A 4xx is an answer."""
    status = getattr(error, "status", None)
    if isinstance(status, int) and status > 0:
        return refused(status)
    return isinstance(error, (TimeoutError, OSError, aiohttp.ClientError))


DEAF_EPISODES_KEPT = 256  # closed episodes remembered; older ones credit nothing (conservative)
STALL_FLOOR = 0.5  # no pair's patience is shorter (HeartbeatSizing.request_timeout)


@dataclass
class Hearing:
    """The operator's own hearing of the API server, on its own clock, and the one rule built
    on it: a member's silence counts only over time in which the operator could have heard
    its renewals (`silence_counted_from`).

    The operator judges a member lost when it has not observed a renewal for W. Not observing
    is evidence of the member's silence only while the operator itself is hearing the API:
    while its requests fail, its member-Lease watch is broken and relisting, or the API server
    does not answer, it would not observe a renewal that happened, and a member silent in that
    time may be renewing as ever (an operator cut off alone), or may be unable to renew for
    the same outage (an API server down for everyone) with no fault of its own. So each
    failure opens a *deaf episode*, from the last success before it (nothing proves hearing
    after that) to the first success after it; silence inside an episode is not counted.

    What counts as a success (`heard`): a listing, a watch event or bookmark of the member
    Leases, a confirming read of one, a reconciliation whose requests all succeeded. A failure
    (`missed`): an API error of the server's side (5xx, 429), a timeout, a refused or broken
    connection, a watch ended by an error or 410 Gone. A watch that lags without failing is
    not caught here: the controller confirms every HeartbeatLost verdict by a fresh read of
    the member's Lease before the engine may act on it (reconcile.confirm_silences)."""

    last_heard: float | None = None  # monotonic: the last success
    deaf_since: float | None = None  # the open episode's start, while failures go on
    episodes: list[tuple[float, float]] = field(default_factory=list)  # closed: (start, end)
    # Requests answered late (`waited`): (last success before, sent, answered).
    stalls: list[tuple[float, float, float]] = field(default_factory=list)

    def heard(self, now: float) -> None:
        if self.deaf_since is not None:
            self._close(self.deaf_since, now)
            self.deaf_since = None
        self.last_heard = now

    def missed(self, now: float) -> None:
        if self.deaf_since is None:
            self.deaf_since = self.last_heard if self.last_heard is not None else now

    def waited(self, since: float | None, sent: float, answered: float) -> None:
        """A request sent at `sent` was answered at `answered`; `since` was the last success
        before it was sent. A server that holds requests shows no error, only late answers:
        etcd paused, kube-apiserver holds every request (the members' renewals too, which
        their agents give up on) and answers them all when it resumes; kube-apiserver
        paused, nothing answers. An answer later than a pair's `patience` (the time a
        renewal may take, `HeartbeatSizing.request_timeout`) is, for that pair, a failure
        then a success: deaf from `since`, as a timeout would have been
        (`deaf_between`). Without it, a step held through an 18 s pause of etcd or of
        kube-apiserver resumed counting every second of it as the holder's silence, and a
        read sent once the server was back confirmed it (the renewTime from before the
        pause): a needless move (epoch 1 -> 2) and 1 to 5 calls lost."""
        if answered - sent > STALL_FLOOR:
            self.stalls.append((sent if since is None else min(since, sent), sent, answered))
            del self.stalls[:-DEAF_EPISODES_KEPT]

    @property
    def deaf(self) -> bool:
        return self.deaf_since is not None

    def _close(self, start: float, end: float) -> None:
        if self.episodes and start <= self.episodes[-1][1]:  # overlapping: merge
            start = min(start, self.episodes[-1][0])
            self.episodes.pop()
        self.episodes.append((start, end))
        del self.episodes[:-DEAF_EPISODES_KEPT]

    def deaf_between(self, start: float, now: float, patience: float = math.inf) -> float:
        """Seconds of [start, now] inside deaf episodes (the open one runs to `now`) or
        requests answered later than `patience` (`waited`)."""
        spans = [*self.episodes]
        if self.deaf_since is not None:
            spans.append((self.deaf_since, now))
        spans += [(since, end) for since, sent, end in self.stalls if end - sent > patience]
        return covered(spans, start, now)

    def silence_counted_from(
        self, last_seen: float, now: float, patience: float = math.inf
    ) -> float:
        """The instant from which a member last seen at `last_seen` counts as silent: its
        sighting moved later by the deaf time since. Judged against W exactly as a sighting
        (engine.judge), so a member crashed while the operator hears is lost at W as ever,
        one crashed during an outage of the operator's API at W of hearing time, and nobody
        at the moment the operator hears again after an outage of any length."""
        return last_seen + self.deaf_between(last_seen, now, patience)


def covered(spans: Iterable[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] inside at least one of `spans` (which may overlap)."""
    total, reach = 0.0, start
    for begin, finish in sorted(spans):
        begin, finish = max(begin, reach), min(finish, end)
        if finish > begin:
            total += finish - begin
            reach = finish
    return total


@dataclass
class PairBook:
    members: dict[str, MemberSighting] = field(default_factory=dict)
    active: ActiveSighting | None = None  # the `<pair>-active` Lease: who holds the role
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    woken_at: float | None = None  # an urgent report or a passed deadline: reaction starts here
    licence_deadline: datetime | None = None  # the secondary's, as the engine last judged it
    sizing: HeartbeatSizing | None = None  # the pair's, set by the reconciler at each step
    pods: dict[str, PodSighting] = field(default_factory=dict)  # per member (podwatch)
    listening: Hearing = field(default_factory=Hearing)  # the operator's, shared by every pair
    last_renewal_heard: float | None = None  # of either member, by the watch (heard_renewal)

    @property
    def window(self) -> float | None:
        """W: silence longer than this is loss (None before the pair's first step)."""
        return None if self.sizing is None else self.sizing.window

    @property
    def patience(self) -> float:
        """How long a request may take (HeartbeatSizing.request_timeout): an answer later
        than this was a stall, not hearing time (Hearing.waited)."""
        return math.inf if self.sizing is None else self.sizing.request_timeout

    def counted_last_seen(self, member: str, now: float) -> float | None:
        """The member's last sighting as the engine judges it: moved later by the time the
        operator was deaf since (Hearing.silence_counted_from), and to no earlier than a
        shared lull allows (`after_lull`); None when never seen."""
        seen = self.members.get(member)
        if seen is None or seen.deleted:
            return None
        counted = self.listening.silence_counted_from(seen.last_seen, now, self.patience)
        return after_lull(counted, seen.lull_ended, self.sizing)

    def heard_renewal(self, member: Member, now: float) -> None:
        """The watch showed a renewal of `member` (its own, or the relay it carries). When it
        is the first after a shared lull (`ends_lull`), the other member, silent across the
        lull but not lost before it, is judged no earlier than `back_within` from now.

        An outage of the API server for everyone (or a server too starved to take renewals)
        silences both members, while the holder keeps answering on its peer's word (the
        failsafe). When the server answers again, one of them renews first, and the other
        may still be in its retry pause: judged at that instant, it looked lost although it
        had been silent for the outage alone. `make chaos` found three such moves in 400
        schedules (an outage of up to 2 W that the idle operator never noticed: secondary ->
        primary, then primary -> None). A member that really died during the lull is failed
        over `back_within` after it at the latest. Once per silence: only the first lull
        since the member's last sighting counts, so no run of lulls holds a verdict for
        ever. Confirming reads do not end lulls (they are not the watch's stream: a read
        that found a renewal the lagging watch had not delivered looked like the end of one,
        and a crash was held past its bound)."""
        began, self.last_renewal_heard = self.last_renewal_heard, now
        peer = self.members.get(other(member))
        self._grace_after_lull([peer] if peer is not None else [], began, now)

    def read_in_lull(self, now: float) -> None:
        """A confirming read succeeded at `now` while the pair is in a shared lull (no
        renewal of either member heard for longer than HeartbeatSizing.lull): the server
        answers now, perhaps only since a moment ago, so every member silent across the lull
        gets `back_within` from now, once per silence, as from a renewal that ends one
        (`heard_renewal`). The operator idle through an outage for everyone wakes at its
        deadline for the holder, maybe just after the server came back and before either
        member's retry pause ended: it read both Leases, found both silent, and revoked the
        holder (`primary -> None`, then `FirstToStart` back to it: `make chaos`, 1 in 15
        replays of seed 674697). Both really down, the revoke comes `back_within` later."""
        self._grace_after_lull(list(self.members.values()), self.last_renewal_heard, now)

    def _grace_after_lull(
        self, candidates: list[MemberSighting], began: float | None, now: float
    ) -> None:
        """When `now` ends a lull that began at `began` (`ends_lull`), each of `candidates`
        silent across it (`silent_across`) is judged no earlier than `back_within` from now."""
        if self.sizing is None or began is None or not ends_lull(began, now, self.sizing):
            return
        for seen in candidates:
            if silent_across(seen, began, self.sizing.window):
                seen.lull_ended = now

    def confirmed_silent(self, member: str) -> None:
        """A read showed no renewal since the last sighting: the member is judged lost, and
        its next renewal is a return (`rejoined`)."""
        seen = self.members.get(member)
        if seen is not None:
            seen.lost = True

    def silent_beyond(self, window: float, now: float) -> list[Member]:
        """Members the engine would judge HeartbeatLost now: seen once, silent for longer
        than `window` of the operator's hearing time. Each verdict is confirmed by a fresh
        read before it is acted on."""
        return [
            member
            for member in MEMBERS
            if (since := self.counted_last_seen(member, now)) is not None and now - since > window
        ]

    def see_relay(self, member: str, at: float, now: float) -> bool:
        """The other member's renewal relayed that `member` said hello over the peer link at
        `at` (`relayed_sighting`): a sighting of `member` as good as a renewal of its own
        Lease, when later than the last one (docs/protocol.md, "The standby's heartbeat
        rides the holder's renewal"). Its report stays the one its Lease carries. True when
        the pair should look now: the member is back after a silence longer than W, or heard
        the second time since it was judged lost."""
        seen = self.members.get(member)
        if seen is None or seen.deleted or at <= seen.last_seen:
            return False
        returned = self.window is not None and (
            at - self.listening.silence_counted_from(seen.last_seen, now, self.patience)
            > self.window
        )
        was_back = seen.back_since
        seen.back_since = rejoined(seen, True, now)
        seen.lost = False
        seen.last_seen = at
        seen.lull_ended = None
        urgent = returned or (was_back is not None and seen.back_since is None)
        if urgent:
            self.nudge(now)
        return urgent

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


def ends_lull(began: float, now: float, sizing: HeartbeatSizing) -> bool:
    """Whether a renewal observed at `now`, the last of either member having been observed
    at `began`, ends the pair's shared lull (HeartbeatSizing.lull)."""
    return now - began > sizing.lull


def silent_across(peer: MemberSighting, began: float, window: float) -> bool:
    """Whether a member was silent across a lull that began at `began` without having been
    lost before it: not heard since, not already silent for a window then, not judged lost,
    and not already given a lull's grace since its last sighting (once per silence)."""
    return (
        not peer.deleted
        and not peer.lost
        and peer.lull_ended is None
        and peer.last_seen <= began
        and began - peer.last_seen <= window
    )


def after_lull(counted: float, lull_ended: float | None, sizing: HeartbeatSizing | None) -> float:
    """A member's sighting as judged (`counted`), moved so that its window does not run out
    before `back_within` after the end of a lull it was silent across: the time a live
    member needs to renew once the API server answers again (HeartbeatSizing.back_within)."""
    if lull_ended is None or sizing is None:
        return counted
    return max(counted, lull_ended + sizing.back_within - sizing.window)


def later_version(version: str, before: MemberSighting) -> bool:
    """Whether a member Lease at `version` may be newer than the one recorded: where both are
    integers (etcd's revisions, the sandbox's) their order is the order of writes; otherwise
    (opaque, or unknown) it may be."""
    try:
        return int(version) > int(before.resource_version)
    except ValueError:
        return True


def relays_standby(relaying: str, holder: str | None) -> bool:
    """Whether a renewal of `relaying` may carry its peer's heartbeat: only the holder's, for
    its standby. A holder is judged by its own renewals alone, since its fence counts from
    them. A member granted the role while cut from the API server never hears its grant,
    still thinks itself the standby and says hello to the old holder, whose own renewals
    then kept the new holder "alive": the simulator found it silent for 47 s (W = 30 s)
    with nobody answering, after a manual failover onto a member cut off that moment."""
    return holder is not None and relaying == holder


def relayed_sighting(observed_at: float, heard_ms: int | None) -> float | None:
    """When a member's relayed hello was heard, on the operator's clock: the relaying write
    observed at `observed_at`, less the age it carries (`pairwarden.io/peer-heard`). Never
    earlier than the truth: the write was observed after it was made."""
    return None if heard_ms is None else observed_at - heard_ms / 1000


def rejoined(before: MemberSighting | None, renewed: bool, now: float) -> float | None:
    """A member's `back_since` after a sighting: set by a renewal after its silence was
    confirmed (it was judged lost), cleared by the next renewal (heard twice: it is back),
    kept otherwise. A renewal the confirming read itself finds (the watch lagged) is no
    return, nor is the first sighting of a member (an operator start judges nobody)."""
    if before is None or before.deleted:
        return None
    if not renewed:
        return before.back_since
    return now if before.lost else None


class ObservationBook:
    """Sightings per (namespace, pair, member), and a wake-up for each pair's reconciler."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], PairBook] = {}
        self._clock: Clock = SystemClock()
        self._listed: set[str | None] = set()  # namespaces (None: all) listed at least once
        self.listening = Hearing()  # the operator's own hearing of the API server

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
        return self._pairs.setdefault((namespace, pair), PairBook(listening=self.listening))

    def pairs_in(self, namespace: str | None) -> list[tuple[tuple[str, str], PairBook]]:
        """Every pair of `namespace` (None: of every namespace), keyed (namespace, pair)."""
        return [(key, b) for key, b in self._pairs.items() if namespace in (None, key[0])]

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

    def record_lease(
        self, lease: dict[str, Any], event_type: str | None, now: float, watched: bool = True
    ) -> bool:
        """Take one watch event of a member Lease (or a listing's item; `watched` False: a
        confirming read's, which ends no lull); True when the pair should reconcile now."""
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
        version = str(meta.get("resourceVersion") or "")
        if before is not None and not before.deleted and not later_version(version, before):
            # A lagging watch delivers what a confirming read already showed: not news.
            return False
        renewed = before is None or before.deleted or renew_time != before.renew_time
        # A renewal after more than a window of silence is a member coming back (a healed
        # partition, a restarted node): as urgent as any report, though it may read the same.
        # Silence as the engine counts it: the operator's own deafness is not the member's.
        returned = (
            before is not None
            and book.window is not None
            and now - book.listening.silence_counted_from(before.last_seen, now, book.patience)
            > book.window
        )
        sighting = MemberSighting(
            last_seen=now if renewed or before is None else before.last_seen,
            renew_time=renew_time,
            holder=str(spec.get("holderIdentity") or ""),
            report=report,
            lost=before is not None and not before.deleted and before.lost and not renewed,
            back_since=rejoined(before, renewed, now),
            resource_version=version,
            lull_ended=None if renewed or before is None else before.lull_ended,
        )
        book.members[member] = sighting
        holder = book.active.member if book.active is not None else None
        relayed = (
            relayed_sighting(now, report.peer_heard_ms)
            if renewed and relays_standby(member, holder)
            else None
        )
        relay_urgent = relayed is not None and book.see_relay(other(member), relayed, now)
        if renewed and watched:
            book.heard_renewal(member, now)
        # Heard the second time since a loss: eligible again, which the engine must see now
        # (the renewal may report nothing new; a healed member showed serviceUp false and
        # could not be failed over to until the next resync).
        back = before is not None and before.back_since is not None and sighting.back_since is None
        urgent = (
            relay_urgent
            or before is None
            or before.deleted
            or returned
            or back
            or report.urgent_change(before.report)
        )
        # New data on a member may make a copy due (replication.seconds_until_due sleeps
        # until then): not urgent for the agent, but the pair looks at once.
        new_data = before is not None and report.data_version != before.report.data_version
        if urgent or new_data:
            book.nudge(now)
        return urgent
