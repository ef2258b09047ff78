"""One reconciliation of one pair: observe, ask the engine, apply its actions in a safe order.

Order matters for callers: `dispatch.writes` puts the active Lease (the fencing token) first,
so no agent is routed calls before it is told it may answer; then the Service selector (one
atomic flip); then pod labels (for people); the status comes last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes_asyncio import client

from pairwarden.api.models import (
    Condition,
    FailoverPairSpec,
    FailoverPairStatus,
    SpecError,
    parse_spec,
    parse_status,
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
    services,
    status,
)
from pairwarden.controller.jobs import JobIndex
from pairwarden.controller.observations import ObservationBook, PairBook
from pairwarden.engine import decide
from pairwarden.engine.types import (
    MemberObservation,
    Now,
    Observed,
    UpdateStatus,
)
from pairwarden.protocol import (
    MEMBERS,
    HeartbeatSizing,
    Member,
)

# Status fields that change with every renewal: written only along with a real change, so the
# operator adds no steady-state writes to the agents' heartbeat budget.
VOLATILE_MEMBER_FIELDS = ("lastHeartbeatSeen", "cpuPercent", "callsInProgress")
INVALID_SPEC_RETRY = 300.0
HOUSEKEEPING = 30.0  # the longest a pair's reconciler sleeps with nothing due
REPLICATION_RETRY = 5.0  # the interval passed, but no Job started (no change, or no pod IP)


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
    """Per-pair state that lives only in this process: the status we last wrote (the watch may
    not have delivered it yet) and whether the Leases exist."""

    status: FailoverPairStatus | None = None
    leases_ready: bool = False
    spec: tuple[int | None, FailoverPairSpec] | None = None  # parsed spec by generation
    exported: FailoverPairStatus | None = None  # what the metrics last showed
    window: float | None = None  # W, as of the last step
    timers_at: float | None = None  # monotonic: the earliest due time that is not a member's
    checked_at: float = 0.0  # monotonic: when the last step judged the members
    replication: replication.ReplicationMemory = field(
        default_factory=replication.ReplicationMemory
    )


async def step(rt: Runtime, body: Any, memory: PairMemory) -> float:
    """Reconcile once; return how many seconds may pass before the next look is needed."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        spec = _parsed_spec(body, memory)
    except SpecError as error:
        await _reject_spec(rt, body, memory, error)
        return INVALID_SPEC_RETRY
    sizing = HeartbeatSizing(spec.heartbeat.window_seconds, spec.heartbeat.renew_period_seconds)
    if not memory.leases_ready:
        await leases.ensure_leases(
            rt.api, namespace, name, sizing.lease_duration_seconds, _owner(body)
        )
        await rbac.ensure_agent_rbac(rt.api, namespace, name, _owner(body))
        memory.leases_ready = True
    if rt.policies is not None:  # at most once per netpol.RECHECK_SECONDS
        await rt.policies.ensure(rt.api, namespace, name, spec.service, _owner(body))

    book = rt.book.pair(namespace, name)
    previous = memory.status or parse_status(body.get("status"))
    pod_names = {m: await _pod_of(rt, namespace, spec, m) for m in MEMBERS}
    annotations = dict(meta.get("annotations") or {})
    wanted = requests.pending(annotations, meta.get("resourceVersion"))
    if wanted.stamp is not None:  # acted on once stamped: the stamp's own event wakes us
        await requests.stamp(rt.api, namespace, name, meta["resourceVersion"], wanted.stamp)
    observed = Observed(
        status=previous,
        primary=_member(book, "primary", pod_names["primary"]),
        secondary=_member(book, "secondary", pod_names["secondary"]),
        request=wanted.request,
        generation=meta.get("generation"),
    )
    now = Now(rt.clock.monotonic(), rt.clock.wall())
    decision = decide(spec, observed, now)

    for write in dispatch.writes(decision, expected_epoch=previous.epoch):
        await _apply(rt, body, spec, write, pod_names, book)
    final = decision.status
    for action in decision.actions:
        if isinstance(action, UpdateStatus):
            final = action.status
    final = _spec_valid(final, now, meta.get("generation"))
    both_up = all(_serving(observed.member(m), sizing, now) for m in MEMBERS)
    source = observed.member(final.active_member) if final.active_member != "none" else None
    final, finished = await replication.tick(
        rt.api, rt.replication, memory.replication, body, spec, final, pod_names, both_up,
        _owner(body), now.wall, source.report.data_version if source else "", rt.jobs,
    )  # fmt: skip
    if finished is not None and not finished.succeeded:
        events.warning(body, "ReplicationFailed", f"{finished.name}: {finished.message}")
    await _write_status(rt, namespace, name, spec, previous, final, memory)
    if requests.consumable(annotations, final.last_request.id if final.last_request else None):
        await requests.consume(rt.api, namespace, name, annotations)
    _export(namespace, name, final, book, memory)
    return _next_look(spec, sizing, book, final, memory, both_up, now)


def _serving(member: MemberObservation, sizing: HeartbeatSizing, now: Now) -> bool:
    """Alive by its heartbeat, its agent running and its voicemail process up."""
    fresh = member.last_seen is not None and now.monotonic - member.last_seen <= sizing.window
    return (
        bool(member.pod_name)
        and fresh
        and member.report.agent_running
        and (member.report.service_up)
    )


def _spec_valid(final: FailoverPairStatus, now: Now, generation: int | None) -> FailoverPairStatus:
    """Say so once the spec parses (and again after it was invalid)."""
    old = next((c for c in final.conditions if c.type == "SpecValid"), None)
    if old is not None and old.status == "True":
        return final
    valid = Condition(
        type="SpecValid",
        status="True",
        reason="Valid",
        message="the spec passed the operator's validation",
        last_transition_time=now.wall,
        observed_generation=generation,
    )
    kept = [c for c in final.conditions if c.type != "SpecValid"]
    return final.model_copy(update={"conditions": [*kept, valid]})


def _parsed_spec(body: Any, memory: PairMemory) -> FailoverPairSpec:
    """Parse the spec once per generation: the API server bumps it on every spec change."""
    generation = body["metadata"].get("generation")
    if memory.spec is None or memory.spec[0] != generation or generation is None:
        memory.spec = (generation, parse_spec(dict(body.get("spec") or {})))
    return memory.spec[1]


async def _pod_of(
    rt: Runtime, namespace: str, spec: FailoverPairSpec, member: Member
) -> str | None:
    ref = getattr(spec.members, member)
    selector = ref.selector.match_labels if ref.selector else None
    return await pods.resolve(rt.api, namespace, ref.pod_name, selector)


def _member(book: PairBook, member: Member, pod_name: str | None) -> MemberObservation:
    seen = book.members.get(member)
    if seen is None or seen.deleted:
        return MemberObservation(pod_name=pod_name, pod_running=pod_name is not None)
    return MemberObservation(
        pod_name=pod_name,
        pod_running=pod_name is not None,
        last_seen=seen.last_seen,
        report=seen.report,
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
        await leases.write_active(
            rt.api,
            namespace,
            name,
            holder=(pod_names[member] or "") if member else "",
            contact=book.members[member].report.call_contact if member in book.members else "",
            member=member or "none",
            epoch=write.epoch,
            expected_epoch=write.expected_epoch,
            now=rt.clock.wall(),
        )
    elif isinstance(write, dispatch.RouteService):
        await services.point_at(rt.api, namespace, spec.service, name, write.member)
    elif isinstance(write, dispatch.RoleMoved):
        reaction = rt.clock.monotonic() - (book.woken_at or rt.clock.monotonic())
        metrics.REACTION.labels(write.cause.value).observe(max(0.0, reaction))
        metrics.FAILOVERS.labels(namespace, name, write.cause.value, write.to).inc()
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


def _routine_only(before: dict[str, Any], after: dict[str, Any], spec: FailoverPairSpec) -> bool:
    """True when all that changed is what moves with every renewal: heartbeat times, CPU and
    calls, and the secondary's last contact with the primary (with its licensing deadline)
    moving forward by less than a hundredth of the contact limit (14.4 h of the default 60
    days). Writing those would add one status write per renewal to the heartbeat budget, which
    the agents' renewals use up on their own; the engine reads the live values from the member
    Leases, the secondary's agent keeps its contact on disk, and the stored contact only backs
    both up. Stale by up to the tolerance, it errs early: the licence deadline derived from it
    comes sooner, never later."""
    tolerance = spec.licensing.max_seconds_since_contact / 100

    def moved(path: tuple[str, ...]) -> bool:
        old, new = _dig(before, path), _dig(after, path)
        if old is None or new is None:
            return old is not new
        shift = (_instant(new) - _instant(old)).total_seconds()
        return not 0 <= shift < tolerance

    def strip(status: dict[str, Any]) -> dict[str, Any]:
        members = {
            m: {
                k: v
                for k, v in (status.get("members") or {}).get(m, {}).items()
                if k not in VOLATILE_MEMBER_FIELDS and k != "primaryContact"
            }
            for m in MEMBERS
        }
        licensing = {
            k: v for k, v in (status.get("licensing") or {}).items() if k != "secondaryDeadline"
        }
        return {**status, "members": members, "licensing": licensing}

    if strip(before) != strip(after):
        return False
    return not moved(("members", "secondary", "primaryContact")) and not moved(
        ("licensing", "secondaryDeadline")
    )


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        data = (data or {}).get(key) or {}
    return data or None


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


async def _write_status(
    rt: Runtime,
    namespace: str,
    name: str,
    spec: FailoverPairSpec,
    previous: FailoverPairStatus,
    final: FailoverPairStatus,
    memory: PairMemory,
) -> None:
    if final == previous:
        return
    before, after = previous.to_wire(), final.to_wire()
    if memory.status is not None and _routine_only(before, after, spec):
        return
    delta = status.changed(before, after)
    for key in before.keys() - after.keys():
        delta[key] = None  # merge-patch deletes what the engine dropped
    await status.patch(rt.api, namespace, name, delta)
    memory.status = final


async def _reject_spec(rt: Runtime, body: Any, memory: PairMemory, error: SpecError) -> None:
    meta = body["metadata"]
    current = parse_status(body.get("status"))
    condition = Condition(
        type="SpecValid",
        status="False",
        reason="InvalidSpec",
        message=str(error)[:1000],
        last_transition_time=rt.clock.wall(),
        observed_generation=meta.get("generation"),
    )
    kept = [c for c in current.conditions if c.type != "SpecValid"]
    old = next((c for c in current.conditions if c.type == "SpecValid"), None)
    if old and old.status == "False" and old.message == condition.message:
        return
    events.warning(body, "InvalidSpec", str(error)[:1000])
    updated = current.model_copy(update={"conditions": [*kept, condition]})
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


def still_quiet(memory: PairMemory, book: PairBook, now: float) -> float | None:
    """After a timed wake-up with no report in between: seconds until the next thing could be
    due, or None when something is (then run the step). A member that renewed meanwhile has
    moved its own deadline, so most wake-ups cost a few comparisons, not a reconciliation."""
    if memory.window is None or memory.timers_at is None:
        return None
    soonest = min([memory.timers_at, *_unjudged(book, memory.window, memory.checked_at)])
    return soonest - now if soonest > now else None


def _unjudged(book: PairBook, window: float, checked_at: float) -> list[float]:
    """Members' loss deadlines that fall after the last step: those already past were judged
    then (a dead member must not keep its pair's reconciler spinning)."""
    deadlines = (s.last_seen + window + 0.01 for s in book.members.values() if not s.deleted)
    return [d for d in deadlines if d > checked_at]


def _next_look(
    spec: FailoverPairSpec,
    sizing: HeartbeatSizing,
    book: PairBook,
    final: FailoverPairStatus,
    memory: PairMemory,
    both_up: bool,
    now: Now,
) -> float:
    """Sleep until the next moment something could be due, never on a fixed tick: a member's
    window running out, the licence deadline, a replication Job, a new pair's settle time.
    Reports that matter wake the reconciler early (observations.PairBook.nudge)."""
    timers = _timers(spec, sizing, final, memory, both_up, now)
    memory.window, memory.timers_at = sizing.window, now.monotonic + timers
    book.window = sizing.window
    memory.checked_at = now.monotonic
    pending = _unjudged(book, sizing.window, now.monotonic)
    return max(0.01, min([timers, *(d - now.monotonic for d in pending)]))


def _timers(
    spec: FailoverPairSpec,
    sizing: HeartbeatSizing,
    final: FailoverPairStatus,
    memory: PairMemory,
    both_up: bool,
    now: Now,
) -> float:
    """Seconds until the earliest due time that does not move with heartbeats."""
    waits = [HOUSEKEEPING]
    deadline = final.licensing.secondary_deadline
    if deadline is not None and final.active_member == "secondary":
        waits.append((deadline - now.wall).total_seconds() + 0.01)
    if final.epoch == 0 or any(
        c.type == "SplitBrainSuspected" and c.status == "True" for c in final.conditions
    ):
        waits.append(sizing.renew_period)
    if memory.replication.running is None and both_up and not spec.paused:
        due_in = replication.seconds_until_due(spec, final, now.wall)
        # Due with unchanged data, or due yet not started: look again later, not in a loop.
        waits.append(due_in if due_in > 0 else REPLICATION_RETRY)
    return max(0.01, min(waits))
