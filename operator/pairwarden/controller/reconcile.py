"""One reconciliation of one pair: observe, ask the engine, apply its actions in a safe order.

Order matters for callers: the active Lease (the fencing token) is written first, so no agent
is routed calls before it is told it may answer; then the Service selector (one atomic flip);
then pod labels (for people); then status and Events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from pairwarden.api.models import (
    FailoverPairSpec,
    FailoverPairStatus,
    SpecError,
    member_from_wire,
    parse_spec,
    parse_status,
    wire_member,
)
from pairwarden.clock import Clock
from pairwarden.controller import (
    dispatch,
    events,
    leases,
    metrics,
    netpol,
    pods,
    rbac,
    replication,
    requests,
    secrets,
    services,
    status,
)
from pairwarden.controller.jobs import JobIndex
from pairwarden.controller.observations import (
    ObservationBook,
    PairBook,
    active_sighting,
)
from pairwarden.controller.status import Written
from pairwarden.engine import decide, status_patch
from pairwarden.engine.conditions import spec_valid, stamp
from pairwarden.engine.schedule import (
    RESYNC_SECONDS,
    LookInputs,
    next_look,
    resync_phase,
    still_quiet,
    timers,
)
from pairwarden.engine.types import (
    LeaseView,
    MemberObservation,
    Now,
    Observed,
    RoutingView,
)
from pairwarden.protocol import MEMBERS, Member, other

log = logging.getLogger(__name__)

INVALID_SPEC_RETRY = 300.0
HOUSEKEEPING = RESYNC_SECONDS  # the longest a pair's reconciler sleeps: the resync period


@dataclass
class Runtime:
    api: client.ApiClient
    book: ObservationBook
    clock: Clock
    replication: replication.ReplicationSettings = field(
        default_factory=replication.ReplicationSettings
    )
    jobs: JobIndex | None = None  # the replication Jobs' watch; None: list from the API
    policies: netpol.Policies | None = None  # per-pair NetworkPolicies; None: not made


@dataclass
class PairMemory:
    """Per-pair state that lives only in this process: the status as last decided, the one
    we last wrote (the watch may not have delivered it yet) and whether the Leases exist."""

    status: FailoverPairStatus | None = None  # the engine's memory: the last decision
    written: Written | None = None  # our last status write (what the server holds)
    leases_ready: bool = False
    spec: tuple[int | None, FailoverPairSpec] | None = None  # parsed spec by generation
    exported: FailoverPairStatus | None = None  # what the metrics last showed
    timers_at: float | None = None  # monotonic: the earliest due time that is not a member's
    checked_at: float = 0.0  # monotonic: when the last step judged the members
    replication: replication.ReplicationMemory = field(
        default_factory=replication.ReplicationMemory
    )


@dataclass(frozen=True)
class Seen:
    """One step's reads besides the member Leases: the member pods and the Service."""

    pods: dict[Member, pods.Resolution]
    routing: RoutingView


async def step(rt: Runtime, body: Any, memory: PairMemory) -> float:
    """Reconcile once; return how many seconds may pass before the next look is needed."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if not rt.book.hearing(namespace):
        # No member can be judged before its Lease was listed: the listing wakes the pair.
        log.info("%s/%s: waiting for the first listing of the member Leases", namespace, name)
        return HOUSEKEEPING
    try:
        spec = _parsed_spec(body, memory)
    except SpecError as error:
        await _reject_spec(rt, body, memory, error)
        return INVALID_SPEC_RETRY
    sizing = spec.heartbeat.sizing
    book = rt.book.pair(namespace, name)
    if not memory.leases_ready or book.active is None:
        active = await leases.ensure_leases(
            rt.api, namespace, name, sizing.lease_duration_seconds, _owner(body)
        )
        book.see_active(active_sighting(active))
        await rbac.ensure_agent_rbac(rt.api, namespace, name, _owner(body))
        await secrets.ensure_peer_key(rt.api, namespace, name, _owner(body))
        memory.leases_ready = True
    if rt.policies is not None:  # at most once per netpol.RECHECK_SECONDS
        await rt.policies.ensure(rt.api, namespace, name, spec.service, _owner(body))

    stored = parse_status(body.get("status"))
    previous = memory.status or stored
    annotations = dict(meta.get("annotations") or {})
    wanted = requests.pending(annotations, meta.get("resourceVersion"), previous.last_request)
    if wanted.stamp is not None:  # acted on once stamped: the stamp's own event wakes us
        await requests.stamp(rt.api, namespace, name, meta["resourceVersion"], wanted.stamp)
    # W, the patience of a request (Hearing.waited) and the lull (PairBook.heard_renewal).
    book.sizing = sizing
    # One instant for the step: the engine judges silence at the instant the verdicts were
    # confirmed, never later (`confirm_silences`).
    now = Now(rt.clock.monotonic(), rt.clock.wall())
    await confirm_silences(rt, namespace, name, book, sizing.window, now.monotonic)
    seen = await _read_world(rt, namespace, spec, book)
    pod_names: dict[Member, str | None] = {m: seen.pods[m].name for m in MEMBERS}
    assert book.active is not None
    observed = Observed(
        status=previous,
        primary=_member(book, "primary", seen.pods["primary"], now.monotonic),
        secondary=_member(book, "secondary", seen.pods["secondary"], now.monotonic),
        request=wanted.request,
        generation=meta.get("generation"),
        lease=LeaseView(
            book.active.holder, book.active.epoch, book.active.move, book.active.member
        ),
        routing=seen.routing,
        service=spec.service,
        pair=name,
    )
    decision = decide(spec, observed, now)
    if decision.actions:
        log.info("%s/%s: %s", namespace, name, decision.reason)

    for write in dispatch.writes(decision, expected_epoch=book.active.epoch):
        await _apply(rt, body, spec, write, pod_names, book)
        if isinstance(write, dispatch.WriteActiveLease):
            # The role moved, whatever fails next: the next step builds on this decision
            # (its transition, its handoff), not on a status that predates the Lease write.
            memory.status = decision.status
    final = _with_spec_valid(decision.status, None, now, meta.get("generation"))
    holder = member_from_wire(final.active_member)
    source, target = (
        (observed.member(holder).report, observed.member(other(holder)).report)
        if holder is not None
        else (None, None)
    )
    step = replication.PairStep(
        body=body,
        spec=spec,
        status=final,
        pod_names=pod_names,
        both_up=decision.replicate,
        owner=_owner(body),
        now=now.wall,
        version=replication.copy_key(source, target),
    )
    final, finished = await replication.tick(
        rt.api, rt.replication, memory.replication, step, rt.jobs
    )
    if finished is not None and not finished.succeeded:
        events.warning(body, "ReplicationFailed", f"{finished.name}: {finished.message}")
    version = str(meta.get("resourceVersion") or "")
    await _write_status(rt, body, spec, status.base(stored, version, memory.written), final, memory)
    if requests.consumable(annotations, final.last_request):
        await requests.consume(rt.api, namespace, name, annotations)
    _export(namespace, name, final, book, memory)
    due_in = (
        replication.seconds_until_due(spec, final, now.wall, step.version)
        if memory.replication.running is None and decision.replicate and not spec.paused
        else None
    )
    look = LookInputs(
        spec=spec,
        status=final,
        now=now,
        replication_due_in=due_in,
        policy_due_in=rt.policies.due_in(namespace, name) if rt.policies else None,
        resync_phase=resync_phase(namespace, name),
    )
    memory.timers_at, memory.checked_at = now.monotonic + timers(look), now.monotonic
    return next_look(look, _last_seen(book, now.monotonic))


async def confirm_silences(
    rt: Runtime, namespace: str, pair: str, book: PairBook, window: float, now: float
) -> None:
    """Confirm each HeartbeatLost verdict at `now` by a fresh read before the engine may act
    on it. The watch may lag, or have been closed and not yet relisted, without any error the
    operator saw: a member silent to the watch may have renewed. Its Lease read now, a
    renewTime other than the last sighting's is a renewal observed now; the same one confirms
    the silence. A read that fails raises, and the step is retried: an unconfirmed verdict
    never moves a role (and the failure opens a deaf episode, observations.Hearing); so does
    a read answered later than a renewal may take (`Hearing.waited`, as every request of the
    operator's: `client.report_waits`): the server stalled, and what it shows is no proof of
    silence. The detection of a real crash grows by one read.

    `now` is the instant the step's engine judges at, taken before this: a member judged
    there is one confirmed here. The engine once judged at the end of the step's reads, so a
    member a window minus a moment silent was not read, was past its window a moment later,
    and was failed over unconfirmed (with the operator's watch 9 s behind: HeartbeatLost,
    epoch 1 -> 2, though its agent renewed every 2 s).

    A standby's heartbeat may ride the holder's renewal (docs/protocol.md, "The standby's
    heartbeat rides the holder's renewal"), so a member still silent after its own Lease is
    read is confirmed only after the other member's Lease is read too: a relayed hello the
    watch has not delivered is a sighting as good as a renewal.

    A read that succeeds while neither member has been heard for a lull tells that the
    server answers now: members silent across the lull get time to renew from then
    (`PairBook.read_in_lull`, docs/protocol.md rule 4)."""
    for member in book.silent_beyond(window, now):
        for read in (member, other(member)):
            try:
                lease = await leases.read_member(rt.api, namespace, pair, read)
            except client.ApiException as error:
                if error.status != 404:  # gone: nobody renews it, the silence stands
                    raise
                continue
            book.listening.heard(rt.clock.monotonic())
            book.read_in_lull(rt.clock.monotonic())
            rt.book.record_lease(lease, None, rt.clock.monotonic(), watched=False)
            if member not in book.silent_beyond(window, now):
                break
        else:
            book.confirmed_silent(member)


async def _read_world(rt: Runtime, namespace: str, spec: FailoverPairSpec, book: PairBook) -> Seen:
    """The member pods (each must resolve to one running pod) and the Service as it is now:
    read every step, so a foreign write or a restored backup is seen within a resync. A
    member pod the pod watch holds running is taken from it instead (`pods.watched`).

    The two pods and the Service are read at once (one round trip, not three): a step woken by
    a crash the kubelet reported decides after them, and on a loaded real node each read took
    15-30 ms, a third of the operator's part of the failover (issue 26)."""

    def resolve(member: Member) -> Awaitable[pods.Resolution]:
        ref = getattr(spec.members, member)
        known = pods.watched(book.pods.get(member), ref.pod_name) if ref.pod_name else None
        if known is not None:
            return _now(known)
        selector = ref.selector.match_labels if ref.selector else None
        return pods.resolve_member(
            rt.api, namespace, f"spec.members.{member}", ref.pod_name, selector
        )

    primary, secondary, selector = await asyncio.gather(
        resolve("primary"),
        resolve("secondary"),
        services.read_selector(rt.api, namespace, spec.service),
    )
    found: dict[Member, pods.Resolution] = {"primary": primary, "secondary": secondary}
    if selector is None:
        return Seen(found, RoutingView(exists=False))
    selected = await pods.selected(rt.api, namespace, selector)
    return Seen(found, RoutingView(exists=True, selector=selector, selected=selected))


async def _now(resolution: pods.Resolution) -> pods.Resolution:
    return resolution


def _with_spec_valid(
    final: FailoverPairStatus, problem: str | None, now: Now, generation: int | None
) -> FailoverPairStatus:
    """Say whether the spec parses (the controller's one condition; the engine builds the
    others)."""
    conditions = stamp(final.conditions, [spec_valid(problem)], now.wall, generation)
    return final.model_copy(update={"conditions": conditions})


def _parsed_spec(body: Any, memory: PairMemory) -> FailoverPairSpec:
    """Parse the spec once per generation: the API server bumps it on every spec change."""
    generation = body["metadata"].get("generation")
    if memory.spec is None or memory.spec[0] != generation or generation is None:
        memory.spec = (generation, parse_spec(dict(body.get("spec") or {})))
    return memory.spec[1]


def _member(book: PairBook, member: Member, pod: pods.Resolution, now: float) -> MemberObservation:
    seen = book.members.get(member)
    alive = seen is not None and not seen.deleted
    watched = book.pods.get(member)
    return MemberObservation(
        pod_name=pod.name,
        pod_running=pod.running,
        last_seen=book.counted_last_seen(member, now),
        renewal_seen=seen.last_seen if seen is not None and alive else None,
        rejoining=seen is not None and alive and seen.back_since is not None,
        report=seen.report if seen is not None and alive else MemberObservation().report,
        pod_problem=pod.problem,
        pod_exists=pod.exists,
        labels=pod.labels if pod.name else None,
        container_deaths=(
            watched.container_deaths()
            if watched is not None and pod.name and watched.name == pod.name
            else ()
        ),
        pod_ip=pod.ip if pod.name else None,
    )


async def _apply(
    rt: Runtime,
    body: Any,
    spec: FailoverPairSpec,
    write: dispatch.Write,
    pod_names: dict[Member, str | None],
    book: PairBook,
) -> None:
    """Carry one write of `dispatch.writes` to the API, the Event recorder and the metrics."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    if isinstance(write, dispatch.WriteActiveLease):
        member = write.member
        written = await leases.write_active(
            rt.api,
            namespace,
            name,
            holder=(pod_names[member] or "") if member else "",
            contact=book.members[member].report.call_contact if member in book.members else "",
            member=wire_member(member),
            epoch=write.epoch,
            expected_epoch=write.expected_epoch,
            now=rt.clock.wall(),
            move=write.move,
        )
        book.see_active(active_sighting(written))  # the watch may bring it later
    elif isinstance(write, dispatch.RouteService):
        # False: the Service does not exist; the engine reports that (Ready=ServiceMissing).
        await services.point_at(rt.api, namespace, spec.service, name, write.member)
    elif isinstance(write, dispatch.RoleMoved):
        reaction = rt.clock.monotonic() - (book.woken_at or rt.clock.monotonic())
        metrics.REACTION.labels(write.cause.value).observe(max(0.0, reaction))
        metrics.FAILOVERS.labels(namespace, name, write.cause.value, wire_member(write.to)).inc()
        _event(body, write.event, write.cause.value, write.message)
    elif isinstance(write, dispatch.LabelPods):
        for each in MEMBERS:
            pod = pod_names[each]
            if pod:
                await pods.label(rt.api, namespace, pod, name, each, active=each == write.active)
    else:
        _event(body, write.type, write.reason, write.message)


def _event(body: Any, kind: dispatch.EventType, reason: str, message: str) -> None:
    (events.normal if kind == "Normal" else events.warning)(body, reason, message)


async def _write_status(
    rt: Runtime,
    body: Any,
    spec: FailoverPairSpec,
    base: FailoverPairStatus,
    final: FailoverPairStatus,
    memory: PairMemory,
) -> None:
    meta = body["metadata"]
    memory.status = final
    delta = status_patch(base, final, spec)
    if delta is None:
        return
    written = await status.patch(rt.api, meta["namespace"], meta["name"], delta)
    version = str(((written or {}).get("metadata") or {}).get("resourceVersion") or "")
    memory.written = Written(final, version)


async def _reject_spec(rt: Runtime, body: Any, memory: PairMemory, error: SpecError) -> None:
    meta = body["metadata"]
    current = parse_status(body.get("status"))
    old = next((c for c in current.conditions if c.type == "SpecValid"), None)
    message = str(error)[:1000]
    if old and old.status == "False" and old.message == message:
        return
    events.warning(body, "InvalidSpec", message)
    now = Now(rt.clock.monotonic(), rt.clock.wall())
    updated = _with_spec_valid(current, message, now, meta.get("generation"))
    await status.patch(
        rt.api, meta["namespace"], meta["name"], {"conditions": updated.to_wire()["conditions"]}
    )
    memory.status = None


def _owner(body: Any) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _export(
    namespace: str, name: str, final: FailoverPairStatus, book: PairBook, memory: PairMemory
) -> None:
    """Metrics that follow the status: set only when the status changed."""
    if final == memory.exported:
        return
    memory.exported = final
    metrics.EPOCH.labels(namespace, name).set(final.epoch)
    for member in MEMBERS:
        metrics.ACTIVE.labels(namespace, name, member).set(
            1 if final.active_member == member else 0
        )
    for condition in final.conditions:
        metrics.CONDITION.labels(namespace, name, condition.type).set(condition.status == "True")
    book.licence_deadline = final.licensing.secondary_deadline


def idle_for(memory: PairMemory, book: PairBook, now: float) -> float | None:
    """After a timed wake-up with no report in between: seconds the pair may sleep on, or None
    when something is due (then run the step); the rule is engine.schedule.still_quiet."""
    return still_quiet(memory.timers_at, book.window, _last_seen(book, now), memory.checked_at, now)


def _last_seen(book: PairBook, now: float) -> list[float]:
    """Each member's sighting as judged (deaf time credited): its loss deadline is W later."""
    return [t for m in book.members if (t := book.counted_last_seen(m, now)) is not None]
