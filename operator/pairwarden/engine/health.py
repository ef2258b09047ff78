"""Each member's health at `now`, judged from what the operator observed: alive (heard within
W, its pod running), its service up, licensed. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pairwarden.api.models import (
    FailoverPairSpec,
    FailoverPairStatus,
)
from pairwarden.engine.types import (
    REVOKE_FIRST,
    Cause,
    MemberObservation,
    Now,
    Observed,
)
from pairwarden.protocol import (
    MEMBERS,
    Member,
    other,
)

# Failures after which a member cannot be answering: its grant ran out (it fences itself
# within W - R/2 of its last renewal; the operator waits W) or its pod is not running. A move
# away from it needs no revoke first.
CANNOT_ANSWER = frozenset({Cause.HEARTBEAT_LOST, Cause.POD_GONE, Cause.POD_CRASHED})


@dataclass(frozen=True)
class MemberHealth:
    """The engine's judgement of one member at `now`."""

    name: Member
    failure: Cause | None  # why it cannot serve, or None when it can
    licensed: bool
    licence_reason: str
    observation: MemberObservation
    # HeartbeatLost only because it is heard once since a loss (engine.silent): it renewed
    # within the window, but must be heard twice before it may take the role.
    returning: bool = False

    @property
    def eligible(self) -> bool:
        """May be made active: alive, service up, licensed."""
        return self.failure is None and self.licensed

    @property
    def cpu_excessive(self) -> bool:
        return self.observation.report.cpu_excessive

    @property
    def answering(self) -> bool:
        return self.failure is None and self.observation.report.answering


def silent(spec: FailoverPairSpec, seen: MemberObservation, now: Now) -> bool:
    """HeartbeatLost: no renewal observed for longer than W (of the operator's hearing time,
    controller/observations.Hearing), or back after such a silence and heard only once
    since. A member whose heartbeat was lost is eligible again only once it has been heard
    twice: a single renewal after a loss may be one that was late (held in a cut network, a
    lagging watch) from a member still cut off. On a real node a member cut from the API
    server was judged HeartbeatLost, one late renewal of its was seen two seconds later, and
    when the new holder's voicemail went down a second after that, the role went back to the
    cut member (none -> primary, FirstToStart), which then fenced itself: nobody answered."""
    return past_window(spec, seen, now) or seen.rejoining


def past_window(spec: FailoverPairSpec, seen: MemberObservation, now: Now) -> bool:
    """No renewal observed for longer than W (or never)."""
    return seen.last_seen is None or now.monotonic - seen.last_seen > spec.heartbeat.window_seconds


def judge(
    spec: FailoverPairSpec,
    status: FailoverPairStatus,
    name: Member,
    seen: MemberObservation,
    now: Now,
    problem: str | None = None,
    gone: bool = False,
) -> MemberHealth:
    """Whether a member can serve, and if not, the cause to name. `gone`: the other member's
    probe proved this member's processes gone at the current epoch (`probed_gone`)."""
    report = seen.report
    failure: Cause | None = None
    returning = False
    if problem is not None or seen.pod_problem is not None:
        failure = Cause.POD_UNRESOLVED
    elif not seen.pod_running:
        failure = Cause.POD_GONE
    elif gone or crashed(seen):
        failure = Cause.POD_CRASHED
    elif not report.agent_running:
        failure = Cause.AGENT_STOPPED
    elif silent(spec, seen, now):
        failure = Cause.HEARTBEAT_LOST
        returning = seen.rejoining and not past_window(spec, seen, now)
    elif not report.service_up:
        failure = Cause.SERVICE_STOPPED
    licensed, reason = True, ""
    if name == "secondary":
        deadline, reason = licence_deadline(spec, status, seen)
        licensed = deadline is None or now.wall < deadline
    return MemberHealth(name, failure, licensed, reason, seen, returning)


def crashed(seen: MemberObservation) -> bool:
    """Whether the member's pod crashed and has not shown life since: the kubelet reported
    every one of its containers terminated (or restarted) after the member's last renewal the
    operator observed. The node knows within about a second; the window W would wait for
    silence, while the kubelet restarts the containers and callers are lost meanwhile.

    Every container, not any: the voicemail process alone dying is the agent's to report
    (ServiceStopped, at once), and the agent alone dying leaves the voicemail process
    answering until its last order runs out, so moving then would make two answer. With both
    dead nobody answers and nobody reports. A container merely not Ready is no death.

    A renewal observed after the deaths ends it: the restarted agent is back, and is judged by
    its report again (it hears the active Lease moved and rejoins as standby). The renewal as
    observed (`renewal_seen`), not the sighting its silence counts from: the operator's own
    deaf time moves that one later and later (in a 5xx storm, nearly to now), so deaths seen
    by the pod watch at once fell before it and the crash went unnoticed."""
    deaths = seen.container_deaths
    if not deaths:
        return False
    last = seen.renewal_seen if seen.renewal_seen is not None else seen.last_seen
    return all(died is not None and (last is None or died > last) for died in deaths)


def probed_gone(observed: Observed, holder: Member | None, epoch: int) -> bool:
    """Whether the standby's probe proved the holder's processes gone (PodCrashed, at once):
    its report claims (protocol.PeerGone) that at this very epoch the holder's pod, by name
    and by the address the operator reads for it, refused the agent's peer port and had its
    SIP port unreachable, after both had answered (docs/protocol.md, "Proof of death from the
    kernel"). The kubelet says the same a second or more later (`crashed`).

    A claim is final for its epoch: the move it causes (to the standby, or to nobody when the
    standby cannot serve) raises the epoch, after which it names an old one and counts for
    nothing. A renewal of the holder does not void it, unlike the kubelet's report: the
    holder's restarted agent that finds such a claim against it does not answer at that
    epoch (agent.core.decide_answer), so waiting for the move is the only way forward. A
    claim about another pod (a pod of the same name recreated, the address reused), or for
    an epoch not the Lease's (a standby behind, a claim left from an earlier move), or
    without an address the operator read, counts for nothing."""
    if holder is None:
        return False
    seen, claim = observed.member(holder), observed.member(other(holder)).report.peer_gone
    return (
        claim is not None
        and claim.epoch == epoch
        and seen.pod_name is not None
        and claim.pod == seen.pod_name
        and seen.pod_ip is not None
        and claim.address == seen.pod_ip
    )


def remembered_contact(status: FailoverPairStatus, seen: MemberObservation) -> datetime | None:
    """The later of the reported and the remembered primary contact: an agent restart
    must not make the secondary forget that it once reached the primary."""
    reported, remembered = seen.report.primary_contact, status.members.secondary.primary_contact
    if reported is None or remembered is None:
        return reported or remembered
    return max(reported, remembered)


def licence_deadline(
    spec: FailoverPairSpec, status: FailoverPairStatus, seen: MemberObservation
) -> tuple[datetime | None, str]:
    """When the secondary's licensing clock runs out (reference "Licensing Restrictions")."""
    contact = remembered_contact(status, seen)
    if contact is not None:
        limit = spec.licensing.max_seconds_since_contact
        return _later(contact, limit), f"{limit}s after last contact with the primary"
    started = seen.report.started or status.members.secondary.started
    if started is not None:
        grace = spec.licensing.never_contacted_grace_seconds
        return _later(started, grace), f"{grace}s after start, primary never contacted"
    return None, "start time not reported yet"


def _later(instant: datetime, seconds: float) -> datetime:
    """`instant` plus `seconds`, saturating at the end of the calendar: a time read from a
    report or a status (anyone may write one) must not overflow the engine's arithmetic."""
    try:
        return instant + timedelta(seconds=seconds)
    except OverflowError:
        return datetime.max.replace(tzinfo=instant.tzinfo)


def member_problems(observed: Observed) -> dict[Member, str]:
    """Why a member names no single running pod of its own: the controller says when its
    podName/selector matches none or several; two members naming one pod is caught here."""
    problems: dict[Member, str] = {
        m: p for m in MEMBERS if (p := observed.member(m).pod_problem) is not None
    }
    first, second = observed.primary.pod_name, observed.secondary.pod_name
    if first is not None and first == second:
        problems["secondary"] = (
            f"spec.members.secondary resolves to {second}, the pod of spec.members.primary"
        )
    return problems


def missing_pods(observed: Observed, problems: Mapping[Member, str]) -> dict[Member, str]:
    """Members whose spec is sound but whose pod is absent or not running, named for the
    MembersResolved condition: a pod being replaced for a moment, or a podName or selector
    that matches nothing (a typo, the pods not created yet, another namespace)."""
    missing: dict[Member, str] = {}
    for member in MEMBERS:
        seen = observed.member(member)
        if member in problems or seen.pod_problem is not None:
            continue
        if seen.pod_name is None:
            missing[member] = f"spec.members.{member}.selector matches no running pod"
        elif not seen.pod_exists:
            missing[member] = f"spec.members.{member}: pod {seen.pod_name} does not exist"
        elif not seen.pod_running:
            missing[member] = f"spec.members.{member}: pod {seen.pod_name} is not running"
    return missing


def may_answer(old: MemberHealth, cause: Cause) -> bool:
    """Whether a move away from `old` must revoke it first: a discretionary or requested move
    from a holder that may still be answering."""
    return cause in REVOKE_FIRST and (old.failure is None or old.failure not in CANNOT_ANSWER)
