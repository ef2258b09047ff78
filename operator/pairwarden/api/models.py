"""The FailoverPair API: one set of pydantic models is the source of the CRD schema (see
`pairwarden.api.crd`) and of the operator's own validation (`parse_spec`).

camelCase on the wire, snake_case in Python. Every cross-field rule exists twice on purpose:
as a pydantic validator here and as a CEL rule (`x-kubernetes-validations`) that the API server
evaluates; tests/api proves both agree on the examples.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from pairwarden.protocol import (
    DEFAULT_CPU_DURATION_SECONDS,
    DEFAULT_CPU_THRESHOLD_PERCENT,
    DEFAULT_INTERVAL_MS,
    DEFAULT_MAX_SECONDS_SINCE_CONTACT,
    DEFAULT_MISSED_BEFORE_FAILOVER,
    DEFAULT_NEVER_CONTACTED_GRACE_SECONDS,
    DEFAULT_RENEWALS_PER_WINDOW,
    DEFAULT_SETTINGS_FILE,
    REPLICATED_DIRECTORIES,
    HeartbeatSizing,
    Member,
)

KIND = "FailoverPair"
SINGULAR = "failoverpair"
SHORT_NAMES = ["fp"]
CATEGORIES = ["pairwarden"]

# The reference's replicated directories ("Cisco Unity Files").
DEFAULT_DIRECTORIES: tuple[str, ...] = REPLICATED_DIRECTORIES
HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Label keys and values as Kubernetes defines them (apimachinery validation.IsQualifiedName and
# IsValidLabelValue): an optional DNS-subdomain prefix and a slash, then a name of at most 63.
LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?" + LABEL_NAME + "$"
)
LABEL_VALUE_PATTERN = r"^(" + LABEL_NAME + ")?$"
# A replicated directory: relative, no NUL, no empty, "." or ".." component, not the
# replication's own state directory (replication.paths.STATE_DIR).
STATE_DIR = ".pairwarden-replication"
DIRECTORY_PATTERN = r"^[^/\x00][^\x00]*$"
DIRECTORY_FORBIDDEN = r"(^|/)[.]{1,2}(/|$)|//"  # no backslash: these go into CEL literals
DIRECTORY_RESERVED = r"^[.]pairwarden-replication(/|$)"
# Ten years: the longest clock the API accepts, far inside datetime's range (no overflow).
MAX_SECONDS = 315_360_000


def _rules(*rules: tuple[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


class _Wire(BaseModel):
    """Spec objects: camelCase aliases, unknown fields rejected (a typo is an error)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,  # a field's docstring is its description in the CRD
    )


class _StatusWire(BaseModel):
    """Status objects: camelCase aliases; unknown fields from newer operators are ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,  # a field's docstring is its description in the CRD
    )


# ---------------------------------------------------------------------------------- spec


class LabelSelector(_Wire):
    match_labels: Annotated[
        dict[str, Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]],
        Field(min_length=1, max_length=32),
    ] = Field(
        description="Labels the member's single pod carries.",
        json_schema_extra=_rules(
            (
                f"self.all(k, size(k) <= 317 && k.matches('{LABEL_KEY_PATTERN}'))",
                "label keys must be qualified names ([prefix/]name, name at most 63)",
            )
        ),
    )

    @field_validator("match_labels")
    @classmethod
    def _label_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if len(key) > 317 or re.fullmatch(LABEL_KEY_PATTERN, key) is None:
                raise ValueError(f"invalid label key {key!r}: must be [prefix/]name")
            prefix, _, name = key.rpartition("/")
            if len(prefix) > 253 or len(name) > 63:
                raise ValueError(f"invalid label key {key!r}: prefix <= 253, name <= 63")
        return value


class MemberRef(_Wire):
    """Names one member's pod, by name or by a selector that must match exactly one pod."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            ("has(self.podName) != has(self.selector)", "exactly one of podName or selector")
        )
    )
    pod_name: (
        Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)] | None
    ) = Field(default=None, description="Name of the member pod.")
    selector: LabelSelector | None = Field(
        default=None, description="Selects the member pod by labels (exactly one pod)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> MemberRef:
        if (self.pod_name is None) == (self.selector is None):
            raise ValueError("exactly one of podName or selector")
        return self


class Members(_Wire):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!(has(self.primary.podName) && has(self.secondary.podName)"
                " && self.primary.podName == self.secondary.podName)",
                "secondary.podName must differ from primary.podName",
            ),
            (
                "!(has(self.primary.selector) && has(self.secondary.selector)"
                " && self.primary.selector == self.secondary.selector)",
                "secondary.selector must differ from primary.selector",
            ),
        )
    )
    primary: MemberRef = Field(description="The member that is active under normal conditions.")
    secondary: MemberRef = Field(description="The standby member; subject to licensing clocks.")

    @model_validator(mode="after")
    def _distinct(self) -> Members:
        p, s = self.primary, self.secondary
        if p.pod_name is not None and p.pod_name == s.pod_name:
            raise ValueError("secondary.podName must differ from primary.podName")
        if p.selector is not None and p.selector == s.selector:
            raise ValueError("secondary.selector must differ from primary.selector")
        return self


class HeartbeatSpec(_Wire):
    """Keep-alive settings: the reference's Interval (ms) and Missed Events Before Failover."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "self.renewalsPerWindow <= self.missedBeforeFailover",
                "renewalsPerWindow must not exceed missedBeforeFailover",
            )
        )
    )
    interval_ms: int = Field(
        default=DEFAULT_INTERVAL_MS, ge=100, le=60000, description="Keep-alive interval."
    )
    missed_before_failover: int = Field(
        default=DEFAULT_MISSED_BEFORE_FAILOVER,
        ge=1,
        le=1000,
        description="Missed keep-alives before a member is lost.",
    )
    renewals_per_window: int = Field(
        default=DEFAULT_RENEWALS_PER_WINDOW,
        ge=1,
        le=1000,
        description="Lease renewals per detection window (docs/protocol.md); "
        "equal to missedBeforeFailover gives the reference's exact keep-alive semantics.",
    )

    @model_validator(mode="after")
    def _renewals(self) -> HeartbeatSpec:
        if self.renewals_per_window > self.missed_before_failover:
            raise ValueError("renewalsPerWindow must not exceed missedBeforeFailover")
        return self

    @property
    def sizing(self) -> HeartbeatSizing:
        """W and R, computed in one place (`protocol.HeartbeatSizing`, which the agent uses
        without the models)."""
        return HeartbeatSizing.from_spec(
            self.interval_ms, self.missed_before_failover, self.renewals_per_window
        )

    @property
    def window_seconds(self) -> float:
        """W: observed silence after which a member is lost."""
        return self.sizing.window

    @property
    def renew_period_seconds(self) -> float:
        """R: seconds between an agent's renewals."""
        return self.sizing.renew_period


class FailbackType(StrEnum):
    MANUAL = "Manual"
    SCHEDULED = "Scheduled"


# Kubernetes CEL reads IANA zones for timestamp accessors. An unknown name is an evaluation
# error, not false, and CEL cannot catch it, so the rule's fieldPath is never used; the API
# server then words the refusal "<field>: Invalid value: ...: <error> evaluating rule:
# <message>", at the node that carries the rule. The rule sits on timeZone itself, so that
# node is the field: `spec.failback.window.timeZone: ... unknown time zone Mars/Olympus_Mons
# evaluating rule: timeZone must be an IANA time zone name (...)`.
TIME_ZONE_RULE: dict[str, JsonValue] = {
    "rule": "timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0",
    "message": "timeZone must be an IANA time zone name (such as Europe/Berlin or UTC)",
}


class FailbackWindow(_Wire):
    """Scheduled Failback Start/End, in the pair's time zone; end before start wraps midnight."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.start != self.end", "message": "window end must differ from start"},
            ]
        }
    )
    start: str = Field(pattern=HHMM_PATTERN, description="HH:MM, local to timeZone.")
    end: str = Field(pattern=HHMM_PATTERN, description="HH:MM, local to timeZone.")
    time_zone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        description="IANA time zone name.",
        json_schema_extra={"x-kubernetes-validations": [TIME_ZONE_RULE]},
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"must be an IANA time zone name (such as Europe/Berlin or UTC), not {value!r}"
            ) from exc
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> FailbackWindow:
        if self.start == self.end:
            raise ValueError("window end must differ from start")
        return self

    def contains(self, instant: datetime) -> bool:
        """True when `instant` (aware) falls in [start, end) on the pair's local clock."""
        local = instant.astimezone(ZoneInfo(self.time_zone)).time().replace(tzinfo=None)
        start, end = _hhmm(self.start), _hhmm(self.end)
        if start < end:
            return start <= local < end
        return local >= start or local < end

    def opened_at(self, instant: datetime) -> datetime:
        """When the window last opened at or before `instant` (aware): the start of the
        occurrence that contains it, if one does. A manual failover made after this moment was
        made inside the open window, and scheduled failback leaves it alone until the next
        opening."""
        zone = ZoneInfo(self.time_zone)
        local = instant.astimezone(zone)
        opened = datetime.combine(local.date(), _hhmm(self.start), zone)
        if opened > local:
            opened -= timedelta(days=1)
        return opened

    def next_opening(self, instant: datetime) -> datetime:
        """The window's first opening after `instant` (aware), on the pair's local clock: when
        a scheduled failback can next become due without anything else changing."""
        return self.opened_at(instant) + timedelta(days=1)


def _hhmm(text: str) -> time:
    match = re.fullmatch(r"(\d\d):(\d\d)", text)
    if match is None:
        raise ValueError(f"not HH:MM: {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


class FailbackSpec(_Wire):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "self.type == 'Scheduled' ? has(self.window) : !has(self.window)",
                "window is required when type is Scheduled and not allowed when Manual",
            )
        )
    )
    type: FailbackType = Field(
        default=FailbackType.MANUAL, description="Manual: only on request. Scheduled: in window."
    )
    window: FailbackWindow | None = Field(
        default=None, description="When a Scheduled failback may happen."
    )

    @model_validator(mode="after")
    def _window_iff_scheduled(self) -> FailbackSpec:
        if (self.type == FailbackType.SCHEDULED) != (self.window is not None):
            raise ValueError(
                "window is required when type is Scheduled and not allowed when Manual"
            )
        return self


class ExcessiveCpuSpec(_Wire):
    enabled: bool = Field(default=True, description="Excessive CPU on the active causes failover.")
    threshold_percent: int = Field(
        default=DEFAULT_CPU_THRESHOLD_PERCENT, ge=1, le=100, description="CPU percent of the pod."
    )
    duration_seconds: int = Field(
        default=DEFAULT_CPU_DURATION_SECONDS,
        ge=1,
        le=86400,
        description="How long CPU stays above the threshold.",
    )


class FlapDampingSpec(_Wire):
    max_transitions: int = Field(
        default=4, ge=1, le=1000, description="Role changes allowed per period before holding."
    )
    period_seconds: int = Field(default=3600, ge=60, le=604800, description="Sliding period.")


class ReplicationSpec(_Wire):
    file_interval_seconds: int = Field(
        default=60, ge=1, le=86400, description="The reference's File Replication Interval."
    )
    database_interval_seconds: int = Field(
        default=60, ge=1, le=86400, description="Database snapshot copy interval."
    )
    directories: list[
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=255,
                pattern=DIRECTORY_PATTERN,
                json_schema_extra=_rules(
                    (
                        f"!self.matches('{DIRECTORY_FORBIDDEN}')",
                        "a directory has no empty, '.' or '..' component",
                    ),
                    (
                        f"!self.matches('{DIRECTORY_RESERVED}')",
                        f"{STATE_DIR} is reserved for replication's own state",
                    ),
                ),
            ),
        ]
    ] = Field(
        default=list(DEFAULT_DIRECTORIES),
        max_length=64,
        description="Directories replicated from the active to the inactive member "
        "(relative to the data directory).",
        json_schema_extra=_rules(
            ("self.all(d, self.exists_one(e, e == d))", "directories must be unique")
        ),
    )

    @field_validator("directories")
    @classmethod
    def _safe_directories(cls, value: list[str]) -> list[str]:
        for index, directory in enumerate(value):
            where = f"directories[{index}] {directory!r}"
            if re.fullmatch(DIRECTORY_PATTERN, directory, re.DOTALL) is None:
                raise ValueError(f"{where}: must be relative and contain no NUL")
            if re.search(DIRECTORY_FORBIDDEN, directory):
                raise ValueError(f"{where}: no empty, '.' or '..' component")
            if re.search(DIRECTORY_RESERVED, directory):
                raise ValueError(f"{where}: {STATE_DIR} is reserved")
            if directory in value[:index]:
                raise ValueError(f"{where}: listed twice")
        return value


class MemberSettingsSpec(_Wire):
    """Where each member keeps the settings that are never replicated (the reference's "Data
    That Is Not Replicated"); the agents digest them so the operator can name any drift."""

    files: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=lambda: [DEFAULT_SETTINGS_FILE],
        max_length=16,
        description="Files, relative to the agent's --data-dir (or absolute): a JSON object's "
        "keys are settings (dotted when nested); any other file is one setting.",
    )
    command: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        default_factory=list,
        max_length=32,
        description="A command the agent runs (argv, 5 s limit) whose output is settings too: "
        "a JSON object's keys, or the whole output as the setting `command`.",
    )


class LicensingSpec(_Wire):
    never_contacted_grace_seconds: int = Field(
        default=DEFAULT_NEVER_CONTACTED_GRACE_SECONDS,
        ge=0,
        le=MAX_SECONDS,
        description="Secondary stops this long after start if never in contact.",
    )
    max_seconds_since_contact: int = Field(
        default=DEFAULT_MAX_SECONDS_SINCE_CONTACT,
        ge=0,
        le=MAX_SECONDS,
        description="Secondary stops this long after its last contact.",
    )


class FailoverPairSpec(_Wire):
    members: Members
    """The two members, each naming one pod (podName, or a selector matching one)."""
    service: str = Field(
        min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN, description="Callers' Service."
    )
    heartbeat: HeartbeatSpec = Field(default_factory=HeartbeatSpec)
    """Keep-alive settings: the detection window W = intervalMs x missedBeforeFailover."""
    force_failover_on_inactive_call: bool = Field(
        default=False,
        description="Fail over when a call arrives on the inactive member (else a Warning only).",
    )
    failback: FailbackSpec = Field(default_factory=FailbackSpec)
    """When the role returns to the primary: Manual, or Scheduled in a daily window."""
    excessive_cpu: ExcessiveCpuSpec = Field(default_factory=ExcessiveCpuSpec)
    """Fail over when the active member's CPU stays above a threshold."""
    flap_damping: FlapDampingSpec = Field(default_factory=FlapDampingSpec)
    """Hold discretionary role changes after too many within a period."""
    replication: ReplicationSpec = Field(default_factory=ReplicationSpec)
    """File and database replication from the active member to the standby."""
    licensing: LicensingSpec = Field(default_factory=LicensingSpec)
    """The secondary's licensing clocks (it stops when it cannot reach the primary)."""
    member_settings: MemberSettingsSpec = Field(default_factory=MemberSettingsSpec)
    """Per-member settings compared between members to report drift (not replicated)."""
    paused: bool = Field(
        default=False,
        description="Manual mode: no automatic failover and no replication; requests honoured.",
    )


# -------------------------------------------------------------------------------- status

ActiveMember = Literal["primary", "secondary", "none"]
"""A member as the status and its transitions spell it: "none" is nobody. Only on the wire;
inside, nobody is None (`wire_member`, `member_from_wire` convert)."""


def wire_member(member: Member | None) -> ActiveMember:
    return member if member is not None else "none"


def member_from_wire(value: str | None) -> Member | None:
    return "primary" if value == "primary" else "secondary" if value == "secondary" else None


class Phase(StrEnum):
    PENDING = "Pending"
    HANDING_OVER = "HandingOver"  # the old holder is revoked; the new one waits for its ack
    HEALTHY = "Healthy"
    FAILED_OVER = "FailedOver"
    DEGRADED = "Degraded"
    NO_ACTIVE = "NoActive"
    HELD = "Held"
    PAUSED = "Paused"


class MemberStatus(_StatusWire):
    pod_name: str | None = None
    """The pod the member resolved to at the last look."""
    last_heartbeat_seen: datetime | None = None
    """When the operator last observed the member's Lease renewed (its own clock)."""
    service_up: bool = False
    """The member's voicemail service reports up."""
    cpu_percent: int = 0
    """The member pod's CPU, as its agent reports it."""
    cpu_excessive: bool = False
    """Above spec.excessiveCpu.thresholdPercent for its duration."""
    calls_in_progress: int = 0
    """Calls the member is handling now."""
    answering: bool = False
    """The member reports it answers calls (only the holder should)."""
    started: datetime | None = None
    """When the member's voicemail process started (first started is first active)."""
    primary_contact: datetime | None = None
    """Secondary only: when it last reached the primary (licensing)."""
    # The engine's memory of the member's inactive-call counter: it acts on an increase only.
    inactive_calls_seen: int = 0
    """Calls that arrived while the member was inactive, as last acted on."""
    epoch: int = 0
    """The active Lease epoch the member last acknowledged."""


class MemberStatuses(_StatusWire):
    primary: MemberStatus = Field(default_factory=MemberStatus)
    """The primary member as last observed."""
    secondary: MemberStatus = Field(default_factory=MemberStatus)
    """The secondary member as last observed."""


class Transition(_StatusWire):
    time: datetime
    """When the role changed."""
    from_: ActiveMember = Field(alias="from")
    """The member that held the role (none: nobody)."""
    to: ActiveMember
    """The member that holds it after the change (none: revoked, nobody yet)."""
    cause: str
    """Why (HeartbeatLost, ServiceStopped, ManualFailover, ScheduledFailback, ...)."""
    epoch: int = 0
    """The active Lease epoch after the change (the fencing token)."""
    duration_seconds: float | None = Field(
        default=None, description="Seconds from losing the old holder to naming the new one."
    )


class ReplicationStatus(_StatusWire):
    last_run: datetime | None = None
    """When the last replication Job ran."""
    last_success: datetime | None = None
    """When a replication Job last succeeded."""
    files: int = 0
    """Files copied by the last successful run."""
    bytes: int = 0
    """Bytes copied by the last successful run."""
    lag_seconds: float | None = None
    """Seconds since the standby last held the active member's data."""
    message: str | None = None
    """The last run's outcome in words."""
    data_version: str | None = Field(
        default=None,
        description="What the last successful Job copied: the active member's data version "
        "onto the standby as it last started; while both are unchanged no Job is needed.",
    )
    epoch: int | None = Field(
        default=None,
        description="The pair's epoch when the last finished Job started: a Job from an older "
        "epoch copied in the direction before the last role change.",
    )


class Handoff(_StatusWire):
    """A revoke-first move in progress (never two answering): `from` was revoked at `epoch`."""

    from_: Literal["primary", "secondary"] = Field(alias="from")
    """The member revoked."""
    to: Literal["primary", "secondary"]
    """The member granted once the revoked one stops answering or its grant expires."""
    cause: str
    """Why the role moves."""
    epoch: int = Field(ge=0)
    """The active Lease epoch of the revoke."""
    since: datetime
    """When the revoke was written."""


class LicensingStatus(_StatusWire):
    secondary_deadline: datetime | None = None
    """When the secondary stops answering unless it reaches the primary."""
    reason: str | None = None
    """Which clock sets the deadline."""


class DriftStatus(_StatusWire):
    in_sync: bool = True
    """The per-member settings match between members."""
    differing_settings: list[str] = Field(default_factory=list)
    """The names of the settings that differ."""


class RequestStatus(_StatusWire):
    id: str
    """The request's id (the pairwarden.io/request-id annotation)."""
    action: str
    """failover or failback."""
    outcome: str
    """Done, Refused or Superseded."""
    message: str | None = None
    """Why, in words."""
    time: datetime
    """When the operator answered."""


class Condition(_StatusWire):
    type: str
    """Ready, Active, MembersResolved, FailbackScheduled, ... (docs/api.md lists them)."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """One CamelCase word for programs."""
    message: str = ""
    """What a person reads: why, naming the object or field."""
    last_transition_time: datetime
    """When status last changed."""
    observed_generation: int | None = None
    """The spec generation the condition was judged from."""


class FailoverPairStatus(_StatusWire):
    active_member: ActiveMember = "none"
    """The member holding the active Lease: primary, secondary or none."""
    phase: Phase = Phase.PENDING
    """Pending, HandingOver, Healthy, FailedOver, Degraded, NoActive, Held, Paused."""
    epoch: int = 0
    """The active Lease's epoch, the fencing token: +1 per revoke and per grant."""
    members: MemberStatuses = Field(default_factory=MemberStatuses)
    """Each member as last observed."""
    last_transition: Transition | None = None
    """The last role change."""
    transitions: list[Transition] = Field(default_factory=list, max_length=64)
    """The last role changes, oldest first (kubectl pairwarden history)."""
    replication: ReplicationStatus | None = None
    """The last replication runs."""
    licensing: LicensingStatus = Field(default_factory=LicensingStatus)
    """The secondary's licensing deadline and why."""
    drift: DriftStatus = Field(default_factory=DriftStatus)
    """Whether the per-member settings differ between members."""
    last_request: RequestStatus | None = None
    """The answer to the last manual failover or failback request."""
    # Monotonic-free memory for the "both lost" gap: when the pair was left without a holder.
    no_active_since: datetime | None = None
    """Since when no member holds the role (both lost)."""
    handoff: Handoff | None = None
    # Since when the holder, healthy by its heartbeat, reports it is not answering: after a
    # window of that the engine fails over (NotAnswering).
    holder_silent_since: datetime | None = None
    """Since when the holder, alive by its heartbeat, reports not answering."""
    observed_generation: int | None = None
    """The spec generation last reconciled."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready and the other conditions (docs/api.md)."""

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class FailoverPair(_StatusWire):
    api_version: str = "pairwarden.io/v1alpha1"
    kind: Literal["FailoverPair"] = "FailoverPair"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: FailoverPairSpec
    status: FailoverPairStatus | None = None


# ------------------------------------------------------------------------------ parsing


class SpecError(ValueError):
    """An invalid spec; the message names each offending field as the API server would."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_spec(data: dict[str, Any]) -> FailoverPairSpec:
    """Validate a FailoverPair `spec` (camelCase dict) or raise SpecError naming the field."""
    try:
        return FailoverPairSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError([_describe(err) for err in exc.errors()]) from exc


def parse_status(data: dict[str, Any] | None) -> FailoverPairStatus:
    """Read a stored status; an unreadable one starts fresh (the engine re-derives the rest)."""
    try:
        return FailoverPairStatus.model_validate(data or {})
    except ValidationError:
        return FailoverPairStatus()


def _describe(err: Any) -> str:
    path = ".".join(str(p) for p in ("spec", *err["loc"]))
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{path}: {message}"
