"""Every condition the FailoverPair status carries, built in one place from the engine's view.

`Ready` means what a caller needs: the Service selects exactly one pod, that pod is the active
Lease holder's, and the holder's agent reports answering at the Lease's epoch. When it is not,
its reason names the first check that fails (`READY_PROBLEMS`), so a person reads why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pairwarden.api.models import Condition, FailoverPairStatus
from pairwarden.engine.types import MemberObservation, RoutingView, Warn
from pairwarden.protocol import LABEL_MEMBER, MEMBERS, Member, MemberReport

# Ready=False reasons a person must fix (the engine cannot): announced by one Warning Event
# when the condition takes that reason, not again while it keeps it.
READY_PROBLEMS = frozenset({"ServiceMissing", "SeveralPodsSelected"})


@dataclass(frozen=True)
class Check:
    """One condition's verdict before it is stamped with times."""

    type: str
    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class ReadyInputs:
    """What Ready is judged from: the truth (holder, epoch), the holder's state and the
    Service as read."""

    holder: Member | None
    epoch: int
    holder_failure: str | None  # why the holder cannot serve, None when it can
    holder_seen: MemberObservation | None
    routing: RoutingView | None  # None: the Service was not read
    service: str
    handoff_to: Member | None = None


def ready(inputs: ReadyInputs) -> Check:
    """Ready: a call through the Service is answered by the Lease holder, nothing less."""
    holder, seen, routing, svc = inputs.holder, inputs.holder_seen, inputs.routing, inputs.service
    if holder is None or seen is None:
        if inputs.handoff_to is not None:
            return Check(
                "Ready",
                False,
                "HandingOver",
                f"the old holder is revoked; {inputs.handoff_to} is granted once it stops "
                "answering or its grant expires",
            )
        return Check("Ready", False, "NoHolder", "no member holds the active Lease")
    if inputs.holder_failure is not None:
        return Check(
            "Ready", False, "HolderCannotServe", f"{holder} cannot serve: {inputs.holder_failure}"
        )
    pod = seen.pod_name or "?"
    if routing is not None:
        if not routing.exists:
            return Check("Ready", False, "ServiceMissing", f"Service {svc} does not exist")
        routed = routing.selector.get(LABEL_MEMBER)
        if routed != holder:
            selects = f"member {routed}" if routed else "no member"
            return Check(
                "Ready",
                False,
                "ServiceNotRouted",
                f"Service {svc} selects {selects}, not the Lease holder {holder}",
            )
        if len(routing.selected) > 1:
            return Check(
                "Ready",
                False,
                "SeveralPodsSelected",
                f"Service {svc} selects {len(routing.selected)} running pods "
                f"({', '.join(routing.selected[:5])}): it must select {pod} alone",
            )
        if tuple(routing.selected) != (pod,):
            found = routing.selected[0] if routing.selected else "no running pod"
            return Check(
                "Ready",
                False,
                "HolderPodNotSelected",
                f"Service {svc} selects {found}, not the holder's pod {pod}",
            )
    report = seen.report
    if not report.answering:
        return Check(
            "Ready",
            False,
            "HolderNotAnswering",
            f"{holder} ({pod}) reports it is not answering calls (active Lease epoch "
            f"{inputs.epoch})",
        )
    if report.epoch != inputs.epoch:
        return Check(
            "Ready",
            False,
            "HolderBehindEpoch",
            f"{holder} ({pod}) answers at epoch {report.epoch}; the active Lease is at epoch "
            f"{inputs.epoch}",
        )
    where = f" through Service {svc}" if routing is not None else ""
    return Check(
        "Ready", True, "Serving", f"{holder} ({pod}) answers{where} at epoch {inputs.epoch}"
    )


def members_resolved(
    problems: Mapping[Member, str], missing: Mapping[Member, str] | None = None
) -> Check:
    """Each member names exactly one running pod of its own. `problems`: the spec names none
    or several (PodUnresolved); `missing`: the pod it names is absent or not running
    (PodMissing: a pod being replaced, or a name or selector that matches nothing)."""
    if problems:
        return Check("MembersResolved", False, "PodUnresolved", "; ".join(problems.values()))
    if missing:
        return Check("MembersResolved", False, "PodMissing", "; ".join(missing.values()))
    return Check("MembersResolved", True, "OnePodEach", "each member names one running pod")


def failsafe(reports: Mapping[Member, MemberReport]) -> Check:
    """Failsafe (docs/protocol.md): a member answered past its fence deadline on its peer's
    promise because it could not renew (the API server away from it). True while a member
    reports an episode not ended; once over, False naming the last one, kept until the
    agent reports another (or restarts)."""
    latest = _latest_episode(reports)
    if latest is None:
        return Check("Failsafe", False, "NotInEffect", "every member answers on its own renewals")
    member, report = latest
    key = failsafe_key(member, report)
    if report.failsafe_ended is None or report.failsafe_since is None:
        return Check("Failsafe", True, "InEffect", f"{key}, the API server away from it")
    seconds = (report.failsafe_ended - report.failsafe_since).total_seconds()
    return Check(
        "Failsafe",
        False,
        "Ended",
        f"{key} to {_time(report.failsafe_ended)} ({seconds:.1f} s), the API server away from it",
    )


def failsafe_event(
    previous: Condition | None, reports: Mapping[Member, MemberReport]
) -> Warn | None:
    """One Warning Event per episode: when the condition first names it, in effect or (for an
    operator that was away as well) already ended."""
    latest = _latest_episode(reports)
    if latest is None:
        return None
    if previous is not None and previous.message.startswith(failsafe_key(*latest)):
        return None
    return Warn("Failsafe", failsafe(reports).message)


def failsafe_key(member: Member, report: MemberReport) -> str:
    """How the Failsafe message begins: it names the episode."""
    return f"{member} answered on its peer's promise from {_time(report.failsafe_since)}"


def _latest_episode(reports: Mapping[Member, MemberReport]) -> tuple[Member, MemberReport] | None:
    episodes = [(r.failsafe_since, m, r) for m in MEMBERS if (r := reports[m]).failsafe_since]
    if not episodes:
        return None
    _, member, report = max(episodes, key=lambda e: e[0] or datetime.min)
    return member, report


def _time(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else "?"


def stamp(
    previous: list[Condition],
    checks: list[Check],
    now: datetime,
    generation: int | None,
    since: Mapping[str, datetime] | None = None,
) -> list[Condition]:
    """The new conditions: a check keeps its transition time while its status holds; those
    not checked (SpecValid, written by the controller) are kept as they were."""
    result = {c.type: c for c in previous}
    for check in checks:
        text = "True" if check.status else "False"
        before = result.get(check.type)
        at = before.last_transition_time if before and before.status == text else now
        if since and check.type in since:
            at = since[check.type]
        result[check.type] = Condition(
            type=check.type,
            status=text,
            reason=check.reason,
            message=check.message,
            last_transition_time=at,
            observed_generation=generation,
        )
    return list(result.values())


def find(status: FailoverPairStatus, kind: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == kind), None)


def spec_valid(message: str | None) -> Check:
    """SpecValid: None when the spec parsed, else the parser's message naming the field."""
    if message is None:
        return Check("SpecValid", True, "Valid", "the spec passed the operator's validation")
    return Check("SpecValid", False, "InvalidSpec", message[:1000])
