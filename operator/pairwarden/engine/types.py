"""What the engine reads (observations, the clock reading) and what it answers (actions).

All frozen dataclasses: the engine is a function, these are its arguments and its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pairwarden.api.models import ActiveMember, FailoverPairStatus
from pairwarden.protocol import Member, MemberReport


class Cause(StrEnum):
    """Why the holder changed (or why a request was refused); names Events and metric labels."""

    MANUAL_FAILOVER = "ManualFailover"
    MANUAL_FAILBACK = "ManualFailback"
    HEARTBEAT_LOST = "HeartbeatLost"  # no renewal observed for more than W
    SERVICE_STOPPED = "ServiceStopped"  # the voicemail process reports down
    AGENT_STOPPED = "AgentStopped"  # clean agent stop (SIGTERM)
    POD_GONE = "PodGone"  # pod deleted or not running: the reference's power loss / turned off
    INACTIVE_CALL = "InactiveCall"  # a call arrived on the inactive member
    EXCESSIVE_CPU = "ExcessiveCpu"
    SCHEDULED_FAILBACK = "ScheduledFailback"
    FIRST_TO_START = "FirstToStart"  # nobody held the role: the first eligible member takes it
    PARTITION_HEALED = "PartitionHealed"  # both found answering: one is told to stop
    LICENSING_EXPIRED = "LicensingExpired"


# Changes the pair makes by choice, not because the holder cannot serve: held when flapping.
DISCRETIONARY: frozenset[Cause] = frozenset(
    {Cause.EXCESSIVE_CPU, Cause.INACTIVE_CALL, Cause.SCHEDULED_FAILBACK}
)


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
    last_seen: float | None = None  # operator monotonic time of the last observed renewal
    report: MemberReport = field(default_factory=MemberReport)


@dataclass(frozen=True)
class ManualRequest:
    """The `pairwarden.io/request` annotation: processed once per id."""

    id: str
    action: str  # "failover" | "failback"; anything else is refused


@dataclass(frozen=True)
class Observed:
    """Everything the engine may know: the previous status (its only memory) and the present."""

    status: FailoverPairStatus
    primary: MemberObservation
    secondary: MemberObservation
    request: ManualRequest | None = None
    generation: int | None = None

    def member(self, name: Member) -> MemberObservation:
        return self.primary if name == "primary" else self.secondary


# ---------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Activate:
    """Write the active Lease naming `member` with `epoch`, then route the Service to it."""

    member: Member
    epoch: int
    cause: Cause
    previous: ActiveMember


@dataclass(frozen=True)
class Deactivate:
    """Write the active Lease naming nobody with `epoch`: no member may answer."""

    epoch: int
    cause: Cause
    previous: ActiveMember


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
class UpdateStatus:
    """Patch the status subresource with this status."""

    status: FailoverPairStatus


Action = Activate | Deactivate | Warn | AckRequest | UpdateStatus


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...]
    status: FailoverPairStatus

    @property
    def role_change(self) -> Activate | Deactivate | None:
        for action in self.actions:
            if isinstance(action, Activate | Deactivate):
                return action
        return None
