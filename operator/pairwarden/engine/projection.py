"""The status the engine projects for people and for its own next call: members, phase,
conditions, routing repairs and the one status write (`status_patch`). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pairwarden.api.models import (
    DriftStatus,
    FailoverPairSpec,
    FailoverPairStatus,
    LicensingStatus,
    MemberStatus,
    MemberStatuses,
    Phase,
    RequestStatus,
    Transition,
    member_from_wire,
    wire_member,
)
from pairwarden.engine.conditions import (
    READY_PROBLEMS,
    Check,
    ReadyInputs,
    failsafe,
    failsafe_event,
    find,
    members_resolved,
    ready,
    stamp,
)
from pairwarden.engine.handoff import Move
from pairwarden.engine.health import (
    MemberHealth,
    licence_deadline,
    missing_pods,
    remembered_contact,
)
from pairwarden.engine.rules import Choice, is_held, kept_in_silence, scheduled_failback_due
from pairwarden.engine.schedule import failback_outlook
from pairwarden.engine.types import (
    Action,
    Activate,
    Deactivate,
    Now,
    Observed,
    Route,
    Warn,
)
from pairwarden.protocol import (
    LABEL_MEMBER,
    LABEL_PAIR,
    MEMBERS,
    PREFIX,
    Member,
    MemberReport,
    member_labels,
    other,
)


def routing_repair(
    observed: Observed, holder: Member | None, actions: list[Action]
) -> Route | None:
    """Service selector and pod labels follow the Lease; repair them when they differ (a flip
    cut short, a foreign write). A role change this step routes anyway. A new pair (nobody
    ever held the role: epoch 0) has unlabelled pods and the user's selector: routing it to
    nobody is its first routing, not a repair, and no Warning for a healthy start."""
    routing = observed.routing
    if routing is None or any(isinstance(a, Activate | Deactivate) for a in actions):
        return None
    wrong: list[str] = []
    if routing.exists:
        routed = routing.selector.get(LABEL_MEMBER)
        if routed != wire_member(holder) or routing.selector.get(LABEL_PAIR) != observed.pair:
            wrong.append(f"Service {observed.service} selects {routed or 'no member'}")
    for name in MEMBERS:
        seen = observed.member(name)
        if seen.labels is None or seen.pod_name is None:
            continue
        wanted = member_labels(observed.pair, name, active=name == holder)
        if any(seen.labels.get(k) != v for k, v in wanted.items()):
            wrong.append(f"pod {seen.pod_name} is labelled {_shown(seen.labels, wanted)}")
    if not wrong:
        return None
    first = observed.lease is not None and observed.lease.epoch == 0
    route = Route(
        holder,
        f"{'routed' if first else 'repaired routing'} to {wire_member(holder)}: "
        + ", ".join(wrong),
    )
    actions.append(route)
    if not first:
        actions.append(Warn("RoutingRepaired", route.reason))
    return route


def _shown(labels: Mapping[str, str], wanted: Mapping[str, str]) -> str:
    return ",".join(f"{k.removeprefix(PREFIX)}={labels.get(k, '')}" for k in wanted)


def problem_events(status: FailoverPairStatus, checks: list[Check]) -> list[Warn]:
    """One Warning Event when a condition takes a reason a person must act on."""
    return [
        Warn(check.reason, check.message)
        for check in checks
        if _needs_person(check)
        and getattr(find(status, check.type), "reason", None) != check.reason
    ]


def _needs_person(check: Check) -> bool:
    if check.type == "Ready":
        return check.reason in READY_PROBLEMS
    return check.type == "MembersResolved" and not check.status


def status_patch(
    stored: FailoverPairStatus, final: FailoverPairStatus, spec: FailoverPairSpec
) -> dict[str, Any] | None:
    """The one status write: the merge patch taking the `stored` status to `final`, only its
    top-level fields that differ (small writes) and null for each field `final` dropped; None
    when the change is not worth a write (`worth_writing`). The controller sends it, the
    simulator applies it."""
    if not worth_writing(stored, final, spec):
        return None
    before, after = stored.to_wire(), final.to_wire()
    patch: dict[str, Any] = {k: v for k, v in after.items() if before.get(k) != v}
    patch.update(dict.fromkeys(before.keys() - after.keys()))
    return patch


def worth_writing(
    before: FailoverPairStatus, after: FailoverPairStatus, spec: FailoverPairSpec
) -> bool:
    """The one status-write filter. Not worth a write: what moves with every renewal
    (heartbeat times, CPU, calls in progress), nor the secondary's last contact with the
    primary (with its licensing deadline) moving forward by less than a hundredth of the
    contact limit (14.4 h of the default 60 days). Writing those would add one status write
    per renewal to the heartbeat budget; the engine reads the live values from the member
    Leases and the secondary's agent keeps its contact on disk. Stale by up to the tolerance,
    the stored contact errs early: the deadline derived from it comes sooner, never later."""
    if before == after:
        return False
    tolerance = spec.licensing.max_seconds_since_contact / 100

    def moved(old: datetime | None, new: datetime | None) -> bool:
        if old is None or new is None:
            return old is not new
        return not 0 <= (new - old).total_seconds() < tolerance

    if moved(before.members.secondary.primary_contact, after.members.secondary.primary_contact):
        return True
    if moved(before.licensing.secondary_deadline, after.licensing.secondary_deadline):
        return True
    return _material(before) != _material(after)


VOLATILE_MEMBER_FIELDS = {"last_heartbeat_seen", "cpu_percent", "calls_in_progress"}


def _material(status: FailoverPairStatus) -> object:
    """The status less what moves with every renewal (compared with a tolerance apart)."""
    volatile = {
        "primary": VOLATILE_MEMBER_FIELDS,
        "secondary": {*VOLATILE_MEMBER_FIELDS, "primary_contact"},
    }
    return status.model_dump(exclude={"members": volatile, "licensing": {"secondary_deadline"}})


def project_status(
    spec: FailoverPairSpec,
    observed: Observed,
    now: Now,
    health: dict[Member, MemberHealth],
    *,
    holder: Member | None,
    epoch: int,
    transitions: list[Transition],
    last_transition: Transition | None,
    last_request: RequestStatus | None,
    no_active_since: datetime | None,
    split_brain: bool,
) -> FailoverPairStatus:
    status = observed.status
    members = MemberStatuses(
        primary=_member_status(status.members.primary, health["primary"], status, now),
        secondary=_member_status(status.members.secondary, health["secondary"], status, now),
    )
    deadline, reason = licence_deadline(spec, status, observed.secondary)
    differing = settings_drift(observed.primary.report, observed.secondary.report)
    return status.model_copy(
        update={
            "active_member": wire_member(holder),
            "epoch": epoch,
            "members": members,
            "transitions": transitions,
            "last_transition": last_transition,
            "last_request": last_request,
            "no_active_since": no_active_since,
            "licensing": LicensingStatus(secondary_deadline=deadline, reason=reason or None),
            "drift": DriftStatus(in_sync=not differing, differing_settings=differing),
            "observed_generation": observed.generation,
        }
    )


def _member_status(
    before: MemberStatus, member: MemberHealth, status: FailoverPairStatus, now: Now
) -> MemberStatus:
    seen = member.observation
    report = seen.report
    if seen.last_seen is None:
        return before.model_copy(update={"pod_name": seen.pod_name or before.pod_name})
    last_seen_wall = now.wall - timedelta(seconds=max(0.0, now.monotonic - seen.last_seen))
    inactive_seen = report.inactive_calls if member.failure is None else before.inactive_calls_seen
    return MemberStatus(
        pod_name=seen.pod_name or before.pod_name,
        last_heartbeat_seen=last_seen_wall.replace(microsecond=0),
        service_up=report.service_up and member.failure is None,
        cpu_percent=report.cpu_percent,
        cpu_excessive=report.cpu_excessive,
        calls_in_progress=report.calls_in_progress,
        answering=member.answering,
        started=report.started or before.started,
        primary_contact=(remembered_contact(status, seen) if member.name == "secondary" else None),
        inactive_calls_seen=inactive_seen,
        epoch=report.epoch,
    )


def phase_of(
    spec: FailoverPairSpec,
    holder: Member | None,
    health: dict[Member, MemberHealth],
    held: bool,
    handing_over: bool,
    ready: bool = True,
) -> Phase:
    """The one-word summary. Healthy and FailedOver promise a pair that serves: never shown
    while Ready is False (a missing Service, a holder not yet answering): Degraded then, and
    the Ready condition says why."""
    if handing_over:
        return Phase.HANDING_OVER
    if spec.paused:
        return Phase.PAUSED
    if holder is None:
        if all(h.observation.last_seen is None for h in health.values()):
            return Phase.PENDING
        return Phase.NO_ACTIVE
    if held:
        return Phase.HELD
    if not health[other(holder)].eligible or not health[holder].eligible:
        return Phase.DEGRADED
    if not ready:
        return Phase.DEGRADED
    return Phase.FAILED_OVER if holder == "secondary" else Phase.HEALTHY


def status_checks(
    spec: FailoverPairSpec,
    observed: Observed,
    status: FailoverPairStatus,
    health: dict[Member, MemberHealth],
    held: bool,
    split_since: datetime | None,
    problems: dict[Member, str],
    now: Now,
) -> list[Check]:
    holder = member_from_wire(status.active_member)
    member = health[holder] if holder is not None else None
    failure: str | None = None
    if member is not None and not member.eligible:
        failure = member.failure.value if member.failure else member.licence_reason
    if holder is not None and member is not None:
        standby = health[other(holder)]
        if kept_in_silence(member, standby) and member.returning:
            failure = f"{failure}: heard once again since, so it keeps the role"
        elif kept_in_silence(member, standby):
            why = standby.failure.value if standby.failure else standby.licence_reason
            failure = (
                f"{failure}, and {standby.name} cannot take the role ({why}): it stays with "
                f"{holder} until one of them can serve"
            )
    readiness = ready(
        ReadyInputs(
            holder=holder,
            epoch=status.epoch,
            holder_failure=failure,
            holder_seen=member.observation if member else None,
            routing=observed.routing,
            service=observed.service,
            handoff_to=status.handoff.to if status.handoff else None,
        )
    )
    licensed = health["secondary"].licensed
    return [
        readiness,
        Check(
            "Active",
            holder is not None,
            "Holder" if holder is not None else "NoHolder",
            f"active member: {holder}",
        ),
        Check(
            "SplitBrainSuspected",
            split_since is not None,
            "BothAnswering" if split_since is not None else "OneAnswering",
            "both members report answering calls"
            if split_since is not None
            else "at most one member answers",
        ),
        Check(
            "FlappingHeld",
            held,
            "TooManyTransitions" if held else "WithinBudget",
            f"{spec.flap_damping.max_transitions} role changes within "
            f"{spec.flap_damping.period_seconds}s: discretionary changes held"
            if held
            else "role changes within budget",
        ),
        Check(
            "LicensingOK",
            licensed,
            "Licensed" if licensed else "LicensingExpired",
            status.licensing.reason or "",
        ),
        Check(
            "InSync",
            status.drift.in_sync,
            "Same" if status.drift.in_sync else "Drift",
            "per-member settings match"
            if status.drift.in_sync
            else "per-member settings differ: " + ", ".join(status.drift.differing_settings),
        ),
        members_resolved(problems, missing_pods(observed, problems)),
        failsafe({m: observed.member(m).report for m in MEMBERS}),
        failback_outlook(
            spec, status, now, scheduled_failback_due(spec, status.last_transition, now)
        ),
    ]


def settings_drift(primary: MemberReport, secondary: MemberReport) -> list[str]:
    """The never-replicated settings that differ between the members (reference: "Data That
    Is Not Replicated"); [] while they match or either member has not reported them yet."""
    return primary.settings_differing_from(secondary) or []


def drift_warning(before: FailoverPairStatus, after: FailoverPairStatus) -> Warn | None:
    """One Warning when drift appears or the differing settings change, naming them."""
    names = after.drift.differing_settings
    if not names or names == before.drift.differing_settings:
        return None
    return Warn("SettingsDrift", "per-member settings differ between members: " + ", ".join(names))


@dataclass(frozen=True)
class Projection:
    """The status a call leaves, the Events it raises, and the Ready condition's message
    (the reason of a call that changes nothing)."""

    status: FailoverPairStatus
    actions: tuple[Action, ...]
    ready: str


def project(
    spec: FailoverPairSpec,
    observed: Observed,
    health: dict[Member, MemberHealth],
    problems: dict[Member, str],
    choice: Choice,
    move: Move,
    now: Now,
) -> Projection:
    """The new status from the move (members, history, conditions, phase), and the Events
    its changes deserve: settings drift, problems a person must fix, the failsafe."""
    status = observed.status
    new_status = project_status(
        spec,
        observed,
        now,
        health,
        holder=move.holder,
        epoch=move.epoch,
        transitions=move.transitions,
        last_transition=move.last_transition,
        last_request=choice.last_request,
        no_active_since=move.no_active_since,
        split_brain=choice.split_since is not None,
    ).model_copy(update={"handoff": move.handoff})
    held = is_held(spec, new_status, now)
    split_since = choice.split_since
    checks = status_checks(spec, observed, new_status, health, held, split_since, problems, now)
    conditions = stamp(
        status.conditions,
        checks,
        now.wall,
        observed.generation,
        since={"SplitBrainSuspected": split_since} if split_since is not None else None,
    )
    ready = next(c for c in checks if c.type == "Ready")
    silent = ready.reason == "HolderNotAnswering"
    phase = phase_of(spec, move.holder, health, held, move.handoff is not None, ready.status)
    new_status = new_status.model_copy(
        update={
            "phase": phase,
            "conditions": conditions,
            "holder_silent_since": (status.holder_silent_since or now.wall) if silent else None,
        }
    )
    reports = {m: observed.member(m).report for m in MEMBERS}
    events = [
        drift_warning(status, new_status),
        *problem_events(status, checks),
        failsafe_event(find(status, "Failsafe"), reports),
    ]
    return Projection(new_status, tuple(e for e in events if e is not None), ready.message)
