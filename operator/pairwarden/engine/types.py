"""What the engine reads (observations, the clock reading) and what it answers (actions).

All frozen dataclasses: the engine is a function, these are its arguments and its result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pairwarden.api.models import FailoverPairStatus, Transition
from pairwarden.protocol import Member, MemberReport


class Cause(StrEnum):
    """Why the holder changed (or why a request was refused); names Events and metric labels."""

    MANUAL_FAILOVER = "ManualFailover"
    MANUAL_FAILBACK = "ManualFailback"
    HEARTBEAT_LOST = "HeartbeatLost"  # no renewal observed for more than W
    SERVICE_STOPPED = "ServiceStopped"  # the voicemail process reports down
    AGENT_STOPPED = "AgentStopped"  # clean agent stop (SIGTERM)
    POD_GONE = "PodGone"  # pod deleted or not running: the reference's power loss / turned off
    # every container of the pod seen terminated by the kubelet since the member's last
    # renewal (engine.crashed), or its processes' sockets seen closed by the other member's
    # probe (engine.probed_gone): the reference's "service stops/crashes"
    POD_CRASHED = "PodCrashed"
    POD_UNRESOLVED = "PodUnresolved"  # the member's podName/selector names no single pod
    NOT_ANSWERING = "NotAnswering"  # healthy by its heartbeat, yet not answering at the epoch
    INACTIVE_CALL = "InactiveCall"  # a call arrived on the inactive member
    EXCESSIVE_CPU = "ExcessiveCpu"
    SCHEDULED_FAILBACK = "ScheduledFailback"
    FIRST_TO_START = "FirstToStart"  # nobody held the role: the first eligible member takes it
    PARTITION_HEALED = "PartitionHealed"  # both found answering: one is told to stop
    LICENSING_EXPIRED = "LicensingExpired"
    LEASE_REPAIRED = "LeaseRepaired"  # the active Lease named a pod that is no member's


class CauseKind(StrEnum):
    """The one classification of causes: what each may do and how it is announced."""

    FAULT = "Fault"  # the holder cannot serve (or the record is wrong): at once, never held
    DISCRETIONARY = "Discretionary"  # by choice: held when flapping, revokes before it grants
    REQUESTED = "Requested"  # a person asked: never held, revokes before it grants
    ROUTINE = "Routine"  # the pair's normal course (first start)


CAUSE_KINDS: dict[Cause, CauseKind] = {
    Cause.MANUAL_FAILOVER: CauseKind.REQUESTED,
    Cause.MANUAL_FAILBACK: CauseKind.REQUESTED,
    Cause.HEARTBEAT_LOST: CauseKind.FAULT,
    Cause.SERVICE_STOPPED: CauseKind.FAULT,
    Cause.AGENT_STOPPED: CauseKind.FAULT,
    Cause.POD_GONE: CauseKind.FAULT,
    Cause.POD_CRASHED: CauseKind.FAULT,
    Cause.POD_UNRESOLVED: CauseKind.FAULT,
    Cause.NOT_ANSWERING: CauseKind.FAULT,
    Cause.INACTIVE_CALL: CauseKind.DISCRETIONARY,
    Cause.EXCESSIVE_CPU: CauseKind.DISCRETIONARY,
    Cause.SCHEDULED_FAILBACK: CauseKind.DISCRETIONARY,
    Cause.FIRST_TO_START: CauseKind.ROUTINE,
    Cause.PARTITION_HEALED: CauseKind.FAULT,
    Cause.LICENSING_EXPIRED: CauseKind.FAULT,
    Cause.LEASE_REPAIRED: CauseKind.FAULT,
}

# Changes the pair makes by choice, not because the holder cannot serve: held when flapping.
DISCRETIONARY: frozenset[Cause] = frozenset(
    c for c, k in CAUSE_KINDS.items() if k == CauseKind.DISCRETIONARY
)
# Moves away from a holder that can still serve: the old holder is revoked first and the new
# one granted only once the old one stopped answering (never two answering).
REVOKE_FIRST: frozenset[Cause] = frozenset(
    c for c, k in CAUSE_KINDS.items() if k in (CauseKind.DISCRETIONARY, CauseKind.REQUESTED)
)
# Announced as Normal Events (an operator's choice or a person's request); faults Warn.
ROUTINE: frozenset[Cause] = frozenset(
    c for c, k in CAUSE_KINDS.items() if k in (CauseKind.ROUTINE, CauseKind.REQUESTED)
) | {Cause.SCHEDULED_FAILBACK}


def is_routine(cause: Cause) -> bool:
    """True when a role change with this cause is a Normal Event, False for a Warning."""
    return cause in ROUTINE


@dataclass(frozen=True)
class Now:
    """One reading of the injected clock: monotonic for windows, wall (UTC) for calendars."""

    monotonic: float
    wall: datetime


@dataclass(frozen=True)
class MemberObservation:
    """One member as the operator sees it (docs/protocol.md)."""

    pod_name: str | None = None
    pod_running: bool = True
    # Operator monotonic time from which its silence counts: its last observed renewal,
    # moved later by the operator's own deaf time since (controller.observations.Hearing).
    last_seen: float | None = None
    # When that renewal was observed, without the deaf credit (None: at last_seen). Deaths
    # of its containers are compared with it (engine.crashed).
    renewal_seen: float | None = None
    # Back after a silence longer than the window and heard only once since: not yet
    # eligible (engine.judge). The operator's observation book sets and clears it.
    rejoining: bool = False
    report: MemberReport = field(default_factory=MemberReport)
    # Why the member's podName/selector names no single running pod (None: it names one).
    pod_problem: str | None = None
    # False when the pod named by podName does not exist at all (not merely not running).
    pod_exists: bool = True
    # The pod's labels as read (None: not read): the Service selects on them.
    labels: Mapping[str, str] | None = None
    # One entry per container of the pod, as the pod watch last saw it: the operator's
    # monotonic time at which that container was last seen terminated or restarted by the
    # kubelet (None: never since the operator started). Empty: the pod is not watched.
    container_deaths: tuple[float | None, ...] = ()
    # The pod's IP as read (None: not read, or none yet): a claim of the other member's
    # probe counts only for the address it probed (engine.probed_gone).
    pod_ip: str | None = None


@dataclass(frozen=True)
class LeaseView:
    """The `<pair>-active` Lease as read: the one record of who is active. The agents obey
    `holder` (a pod name, "" for nobody) and ignore an epoch lower than one they hold."""

    holder: str
    epoch: int
    # The move that put it there, as the operator wrote it in the same request (None: none
    # written, or unreadable). It stands only for this holder and epoch: a foreign write
    # leaves an older one behind, which then names another epoch or holder.
    move: Transition | None = None
    # The member it names (`pairwarden.io/member`), written with `holder` in one request by
    # leases.write_active: who held the role when that member's pod is gone ("": not written).
    member: str = ""


@dataclass(frozen=True)
class RoutingView:
    """The callers' Service as read, and the running pods its whole selector matches."""

    exists: bool = True
    selector: Mapping[str, str] = field(default_factory=dict)
    selected: tuple[str, ...] = ()


@dataclass(frozen=True)
class ManualRequest:
    """The `pairwarden.io/request` annotation: processed once per id."""

    id: str
    action: str  # "failover" | "failback"; anything else is refused


@dataclass(frozen=True)
class Observed:
    """Everything the engine may know: the previous status (its memory for clocks and
    history), the active Lease (the truth of who is active), the Service and the members.

    `lease` None means not read (the status' holder is taken); `routing` None means the
    Service was not read (Ready then rests on the holder's report alone)."""

    status: FailoverPairStatus
    primary: MemberObservation
    secondary: MemberObservation
    request: ManualRequest | None = None
    generation: int | None = None
    lease: LeaseView | None = None
    routing: RoutingView | None = None
    service: str = ""  # the Service's name, for messages
    pair: str = ""  # the pair's name: the value of its pods' and selector's pair label

    def member(self, name: Member) -> MemberObservation:
        return self.primary if name == "primary" else self.secondary


# ---------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Activate:
    """Write the active Lease naming `member` with `epoch` (only from `expected_epoch`, the
    epoch read), then route the Service and label the pods for it."""

    member: Member
    epoch: int
    cause: Cause
    previous: Member | None
    # The epoch read (the write's optimistic check); None: the status' epoch (no Lease read).
    # Not part of the action's identity: equal moves compare equal whatever was read.
    expected_epoch: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Deactivate:
    """Write the active Lease naming nobody with `epoch`: no member may answer. Also the
    first half of a revoke-first move (the status' `handoff` says who is granted next)."""

    epoch: int
    cause: Cause
    previous: Member | None
    expected_epoch: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Route:
    """Repair what is derived from the Lease: point the Service at `member` (None: nobody)
    and label the member pods, because what was read differs (`reason` says how)."""

    member: Member | None
    reason: str


@dataclass(frozen=True)
class Warn:
    """A Warning Event on the FailoverPair."""

    reason: str
    message: str


@dataclass(frozen=True)
class AckRequest:
    """Record the outcome of a manual request (Accepted, AlreadyActive, Refused)."""

    id: str
    action: str
    outcome: str
    message: str


@dataclass(frozen=True)
class RecordMove:
    """Announce a move the status missed: the active Lease carries it (its operator was
    stopped between the Lease write and the status write), so its Event was never posted."""

    transition: Transition


Action = Activate | Deactivate | Route | Warn | AckRequest | RecordMove


@dataclass(frozen=True)
class Decision:
    """The engine's answer. `reason` is one line for the log saying why this step did what it
    did (or nothing); `replicate` says whether both members serve, so replication may run."""

    actions: tuple[Action, ...]
    status: FailoverPairStatus
    reason: str = ""
    replicate: bool = False

    @property
    def role_change(self) -> Activate | Deactivate | None:
        for action in self.actions:
            if isinstance(action, Activate | Deactivate):
                return action
        return None
