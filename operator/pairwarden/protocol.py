"""Names and encodings shared by the agent and the operator (see docs/protocol.md).

One module, so the writer (agent) and the reader (operator) of a member Lease cannot drift
apart: both go through `MemberReport.to_annotations` / `MemberReport.from_annotations`. The
same holds for a replication Job's report: `ReplicationReport.to_message` in the Job's pod,
`ReplicationReport.from_message` in the operator.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal

Member = Literal["primary", "secondary"]
MEMBERS: tuple[Member, Member] = ("primary", "secondary")

PREFIX = "pairwarden.io/"
LABEL_PAIR = PREFIX + "pair"
LABEL_MEMBER = PREFIX + "member"
LABEL_ROLE = PREFIX + "role"
ROLE_ACTIVE = "active"
ROLE_STANDBY = "standby"

# Manual requests written by `kubectl pairwarden failover|failback` on the FailoverPair.
ANNOTATION_REQUEST = PREFIX + "request"
ANNOTATION_REQUEST_ID = PREFIX + "request-id"
# On the active Lease: which member holds it.
ANNOTATION_ACTIVE_MEMBER = PREFIX + "member"
# On the active Lease: where callers reach the holder ("host:port" of its SIP port), copied
# from the holder's own report in the same write, so the other member can redirect to it.
ANNOTATION_ACTIVE_CONTACT = PREFIX + "active-contact"
# On the active Lease: the move that put it there (status.lastTransition's JSON), in the same
# write, so a move survives an operator stopped before its status write. Operator-only.
ANNOTATION_ACTIVE_MOVE = PREFIX + "active-move"
# The kubelet keeps at most this many bytes of a container's terminationMessagePath
# (kubelet's MaxContainerTerminationMessageLength): a replication report must fit in it.
TERMINATION_MESSAGE_LIMIT = 4096


# The spec's defaults, written once: the API models' fields and the agent's defensive reading
# of a spec (agent.core.settings_from_spec, which loads no models) both take them from here.
DEFAULT_INTERVAL_MS = 1000  # the reference's keep-alive Interval
DEFAULT_MISSED_BEFORE_FAILOVER = 30  # the reference's Missed Events Before Failover
DEFAULT_RENEWALS_PER_WINDOW = 3  # Lease writes per detection window W (docs/protocol.md)
DEFAULT_CPU_THRESHOLD_PERCENT = 95
DEFAULT_CPU_DURATION_SECONDS = 60
DEFAULT_NEVER_CONTACTED_GRACE_SECONDS = 14400  # 4 h after restart (reference)
DEFAULT_MAX_SECONDS_SINCE_CONTACT = 5184000  # 60 days after last contact (reference)
DEFAULT_SETTINGS_FILE = "member-settings.json"  # the reference voicemail keeps them here


# The voicemail data layout the reference describes, shared by the voicemail process, the
# replication file API and the API's defaults: the directories Cisco Unity replicates, and
# its database (a SQLite file here).
REPLICATED_DIRECTORIES: tuple[str, ...] = (
    "Localize/DefaultConfiguration",
    "Localize/Prompts",
    "Snapshot",
    "Stream Files",
    "Support",
    "UnityMTA",
)
DATABASE_NAME = "UnityDb.sqlite"
# A role order to the voicemail process (POST /role) always carries `validForMs`, at most
# this: an order that outlives its sender would let a replay or a dead agent hold the role.
MAX_ORDER_MS = 600_000


def member_labels(pair: str, member: str, active: bool) -> dict[str, str]:
    """The labels a member pod carries: the Service selects on pair and member; the role is
    for people (`kubectl get pods -l pairwarden.io/role=active`)."""
    return {
        LABEL_PAIR: pair,
        LABEL_MEMBER: member,
        LABEL_ROLE: ROLE_ACTIVE if active else ROLE_STANDBY,
    }


def member_lease_name(pair: str, member: str) -> str:
    return f"{pair}-{member}"


def active_lease_name(pair: str) -> str:
    return f"{pair}-active"


def other(member: Member) -> Member:
    return "secondary" if member == "primary" else "primary"


@dataclass(frozen=True)
class HeartbeatSizing:
    """How often a member writes, and when silence means loss (docs/design.md, "Heartbeat cost")."""

    window: float  # W: seconds of observed silence before a member is lost
    renew_period: float  # R: seconds between renewals

    @classmethod
    def from_spec(
        cls,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        missed: int = DEFAULT_MISSED_BEFORE_FAILOVER,
        renewals_per_window: int = DEFAULT_RENEWALS_PER_WINDOW,
    ) -> HeartbeatSizing:
        window = interval_ms * missed / 1000.0
        return cls(window=window, renew_period=window / max(1, renewals_per_window))

    @property
    def lease_duration_seconds(self) -> int:
        return max(1, math.ceil(self.window))

    @property
    def fence_after(self) -> float:
        """An agent stops answering this long after *sending* its last successful renewal:
        strictly before the operator, which waits `window` after *observing* it."""
        return self.window - self.renew_period / 2

    @property
    def request_timeout(self) -> float:
        """What one request to the API server may take before it counts as lost: an agent's
        renewal that cannot finish in half a period is as good as lost (the agent gives up on
        it), and an answer the operator gets later than that came from a server that stalled
        meanwhile, when no agent's renewal could land either (controller.observations
        `Hearing.waited`)."""
        return max(0.5, min(5.0, self.renew_period / 2))

    @property
    def retry_pause_most(self) -> float:
        """The longest pause between a failed renewal and the next try (agent.core
        `next_renew_delay`): several tries fit in the fence margin R/2."""
        return self.renew_period / 2

    @property
    def back_within(self) -> float:
        """How long after the API server answers again a live member has renewed, at the
        latest: a try that was failing when it came back (a request's time), the longest
        retry pause, and the try that lands (another request's time)."""
        return self.retry_pause_most + 2 * self.request_timeout

    @property
    def lull(self) -> float:
        """A span longer than this in which the operator observed no renewal of either member
        is the pair's shared lull (controller.observations `PairBook.heard_renewal`): an
        outage of the API server for everyone, or one too starved to take renewals. Shorter
        lulls never matter: a member silent across one is past its window before `back_within`
        after it only when the lull lasted longer than `window - back_within`. Never shorter
        than 1.5 R, so the gaps between renewals of a working pair (R, give or take a
        request's time) are no lull."""
        return max(self.window - self.back_within, 1.5 * self.renew_period)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _time(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ""


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


def call_contact(text: str | None) -> str:
    """`text` if it is a `host:port` callers can be sent to (an IPv4 address, a DNS name, or a
    bracketed IPv6 address, and a port 1-65535), else "". A contact travels from one agent's
    Lease through the operator into the other member's SIP Contact header: anything else (a
    CR LF, a URI parameter, a foreign writer's junk) must never get that far."""
    host, colon, port = (text or "").rpartition(":")
    if (
        not colon
        or not (port.isascii() and port.isdigit())
        or not 0 < int(port) < 65536
        or len(port) > 5
    ):
        return ""
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return ""
        return f"{host}:{int(port)}"
    if not _HOSTNAME.fullmatch(host):
        return ""
    return f"{host}:{int(port)}"


# A relayed age longer than this is no sighting worth keeping (a day, in ms): anything larger
# in the annotation is a foreign writer's junk, read as no relay.
MAX_HEARD_MS = 86_400_000


def heard_age_ms(text: str | None) -> int | None:
    """The relayed age of `pairwarden.io/peer-heard`: whole ms, 0 to MAX_HEARD_MS; anything
    else (empty, negative, not a number, a foreign writer's junk) is None: no relay."""
    if not text or not (text.isascii() and text.isdigit()) or len(text) > 9:
        return None
    value = int(text)
    return value if value <= MAX_HEARD_MS else None


@dataclass(frozen=True)
class PeerGone:
    """The standby's claim that the holder's processes are gone (docs/protocol.md, "Proof of
    death from the kernel"): at `epoch`, the holder's pod `pod` at `address` refused the
    agent's peer port (TCP RST) and had its SIP port unreachable (ICMP), probe after probe,
    after both had answered. Only a kernel whose sockets are closed answers so; a hung or
    partitioned member answers nothing. `seen` is the standby's wall clock, for people."""

    epoch: int
    pod: str
    address: str  # the IP probed: the operator ignores a claim about another pod's address
    seen: datetime | None = None

    def encode(self) -> str:
        return f"{self.epoch} {self.pod} {self.address} {_time(self.seen)}".rstrip()


_POD_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")


def peer_gone(text: str | None) -> PeerGone | None:
    """The claim in `pairwarden.io/peer-gone` ("<epoch> <pod> <ip> [<RFC 3339>]"), or None
    when empty or not that (a foreign writer's junk is no claim: a claim moves a role)."""
    parts = (text or "").split(" ")
    if len(parts) not in (3, 4) or not (parts[0].isascii() and parts[0].isdigit()):
        return None
    if len(parts[0]) > 18 or not _POD_NAME.fullmatch(parts[1]):
        return None
    try:
        address = str(ipaddress.ip_address(parts[2]))
    except ValueError:
        return None
    seen = parse_time(parts[3]) if len(parts) == 4 else None
    return PeerGone(int(parts[0]), parts[1], address, seen)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


@dataclass(frozen=True)
class MemberReport:
    """What an agent says about its member with every renewal of the member Lease."""

    agent_running: bool = True
    service_up: bool = False
    answering: bool = False
    cpu_percent: int = 0
    cpu_excessive: bool = False
    calls_in_progress: int = 0
    inactive_calls: int = 0
    started: datetime | None = None
    primary_contact: datetime | None = None
    epoch: int = 0
    settings_digest: str = ""
    data_version: str = ""  # fingerprint of the replicated files and database (replication)
    # per-setting digests, compact JSON {name: digest}: the operator names what differs
    setting_digests: str = ""
    call_contact: str = ""  # where callers reach this member: "host:port" (protocol.call_contact)
    # Failsafe (docs/protocol.md): where the other agent reaches this one ("host:port"), and
    # the last episode of answering on the peer's promise (ended None: still in effect).
    peer_contact: str = ""
    failsafe_since: datetime | None = None
    failsafe_ended: datetime | None = None
    # The relay (docs/protocol.md, "The standby's heartbeat rides the holder's renewal"): how
    # many ms before this write the writer last heard the other member's authenticated hello
    # over the peer link; None when it heard none. The operator counts the other member as
    # seen at (this write observed - that age): one Lease write per pair per R instead of two.
    peer_heard_ms: int | None = None
    # The standby's proof that the holder's processes are gone (PeerGone), None: no claim.
    peer_gone: PeerGone | None = None

    KEYS = {
        "agent_running": PREFIX + "agent",
        "service_up": PREFIX + "service",
        "answering": PREFIX + "answering",
        "cpu_percent": PREFIX + "cpu",
        "cpu_excessive": PREFIX + "cpu-excessive",
        "calls_in_progress": PREFIX + "calls",
        "inactive_calls": PREFIX + "inactive-calls",
        "started": PREFIX + "started",
        "primary_contact": PREFIX + "primary-contact",
        "epoch": PREFIX + "epoch",
        "settings_digest": PREFIX + "settings-digest",
        "data_version": PREFIX + "data-version",
        "setting_digests": PREFIX + "setting-digests",
        "call_contact": PREFIX + "call-contact",
        "peer_contact": PREFIX + "peer-contact",
        "failsafe_since": PREFIX + "failsafe",
        "failsafe_ended": PREFIX + "failsafe-ended",
        "peer_heard_ms": PREFIX + "peer-heard",
        "peer_gone": PREFIX + "peer-gone",
    }
    # A change in any of these is written at once, not held until the next renewal, and
    # wakes the operator. Settings change rarely, so their digest costs nothing here, and
    # drift between members is then reported within a renewal, not at the next resync.
    # The epoch is the agent's acknowledgement of the active Lease: a revoke's grant waits
    # for the old holder to report not answering at the new epoch, and a holder that was
    # already not answering changes nothing else, so without it the grant waited for the
    # next renewal or the operator's timed look (a renewal period).
    URGENT = (
        "agent_running",
        "service_up",
        "answering",
        "cpu_excessive",
        "inactive_calls",
        "settings_digest",
        "epoch",
        "failsafe_since",
        "failsafe_ended",
        "peer_gone",
    )

    def to_annotations(self) -> dict[str, str]:
        k = self.KEYS
        return {
            k["agent_running"]: "running" if self.agent_running else "stopping",
            k["service_up"]: "up" if self.service_up else "down",
            k["answering"]: _flag(self.answering),
            k["cpu_percent"]: str(self.cpu_percent),
            k["cpu_excessive"]: _flag(self.cpu_excessive),
            k["calls_in_progress"]: str(self.calls_in_progress),
            k["inactive_calls"]: str(self.inactive_calls),
            k["started"]: _time(self.started),
            k["primary_contact"]: _time(self.primary_contact),
            k["epoch"]: str(self.epoch),
            k["settings_digest"]: self.settings_digest,
            k["data_version"]: self.data_version,
            k["setting_digests"]: self.setting_digests,
            k["call_contact"]: self.call_contact,
            k["peer_contact"]: self.peer_contact,
            k["failsafe_since"]: _time(self.failsafe_since),
            k["failsafe_ended"]: _time(self.failsafe_ended),
            k["peer_heard_ms"]: "" if self.peer_heard_ms is None else str(self.peer_heard_ms),
            k["peer_gone"]: self.peer_gone.encode() if self.peer_gone else "",
        }

    @classmethod
    def from_annotations(cls, annotations: dict[str, str] | None) -> MemberReport:
        a = annotations or {}
        k = cls.KEYS
        return cls(
            agent_running=a.get(k["agent_running"], "running") != "stopping",
            service_up=a.get(k["service_up"]) == "up",
            answering=a.get(k["answering"]) == "true",
            cpu_percent=_int(a.get(k["cpu_percent"])),
            cpu_excessive=a.get(k["cpu_excessive"]) == "true",
            calls_in_progress=_int(a.get(k["calls_in_progress"])),
            inactive_calls=_int(a.get(k["inactive_calls"])),
            started=parse_time(a.get(k["started"])),
            primary_contact=parse_time(a.get(k["primary_contact"])),
            epoch=_int(a.get(k["epoch"])),
            settings_digest=a.get(k["settings_digest"], ""),
            data_version=a.get(k["data_version"], ""),
            setting_digests=a.get(k["setting_digests"], ""),
            call_contact=call_contact(a.get(k["call_contact"])),
            peer_contact=call_contact(a.get(k["peer_contact"])),
            failsafe_since=parse_time(a.get(k["failsafe_since"])),
            failsafe_ended=parse_time(a.get(k["failsafe_ended"])),
            peer_heard_ms=heard_age_ms(a.get(k["peer_heard_ms"])),
            peer_gone=peer_gone(a.get(k["peer_gone"])),
        )

    def digests_by_setting(self) -> dict[str, str]:
        """The per-setting digests; {} when absent or not what an agent writes (a foreign or
        older writer), so the reader falls back to the whole digest."""
        try:
            data = json.loads(self.setting_digests) if self.setting_digests else {}
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def settings_differing_from(self, other: MemberReport) -> list[str] | None:
        """The per-member settings that differ between two reports, sorted; [] when they
        match; None when either has not reported its settings (unknown is not drift).
        Without per-setting digests (an older agent), a differing whole digest is named
        `settingsDigest`."""
        if not self.settings_digest or not other.settings_digest:
            return None
        if self.settings_digest == other.settings_digest:
            return []
        a, b = self.digests_by_setting(), other.digests_by_setting()
        names = sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))
        return names or ["settingsDigest"]

    def urgent_change(self, before: MemberReport) -> bool:
        return any(getattr(self, f) != getattr(before, f) for f in self.URGENT)


def _count(value: object) -> int:
    """A non-negative integer from a decoded report; anything else is 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class ReplicationReport:
    """What one `pairwarden replicate` run did. The run fills it in as it goes; its Job's pod
    leaves it as the container's termination message (`to_message`), and the operator reads
    it from the pod's status (`from_message`): the Job's pod has no API token, so the
    kubelet carries the report."""

    source: str
    target: str
    ok: bool = False
    files: int = 0
    bytes: int = 0
    bytes_changed: int = 0
    deleted: int = 0
    skipped: list[str] = field(default_factory=list)
    skipped_omitted: int = 0  # skipped paths left out of the message to fit the kubelet's limit
    duration_seconds: float = 0.0
    db_copied: bool = False
    db_bytes: int = 0
    db_version: str | None = None
    differing_settings: list[str] | None = None
    error: str | None = None

    def to_wire(self) -> dict[str, object]:
        return asdict(self)

    def to_message(self, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
        """One JSON line of at most `limit` UTF-8 bytes: the kubelet cuts a longer message,
        which would leave no report at all. Skipped paths go first (counted in
        `skipped_omitted`), then the differing settings, then the error is shortened."""
        wire = self.to_wire()
        kept = len(self.skipped)

        def encode() -> str:
            wire["skipped"] = self.skipped[:kept]
            wire["skipped_omitted"] = self.skipped_omitted + len(self.skipped) - kept
            return json.dumps(wire, sort_keys=True)

        line = encode()
        while len(line.encode()) > limit and kept:
            kept //= 2
            line = encode()
        for key, keep in (("differing_settings", 0), ("error", 200), ("error", 0)):
            if len(line.encode()) <= limit:
                break
            value = wire.get(key)
            wire[key] = value[:keep] if isinstance(value, str) and keep else None
            line = json.dumps(wire, sort_keys=True)
        return line

    @classmethod
    def from_wire(cls, data: object) -> ReplicationReport | None:
        """A report from decoded JSON; None unless it is one (source, target and ok are what
        every report has). Fields of the wrong type read as their defaults."""
        if not isinstance(data, dict):
            return None
        source, target, ok = data.get("source"), data.get("target"), data.get("ok")
        if not isinstance(source, str) or not isinstance(target, str) or not isinstance(ok, bool):
            return None
        skipped, differing = data.get("skipped"), data.get("differing_settings")
        duration = data.get("duration_seconds")
        return cls(
            source=source,
            target=target,
            ok=ok,
            files=_count(data.get("files")),
            bytes=_count(data.get("bytes")),
            bytes_changed=_count(data.get("bytes_changed")),
            deleted=_count(data.get("deleted")),
            skipped=[p for p in skipped if isinstance(p, str)] if isinstance(skipped, list) else [],
            skipped_omitted=_count(data.get("skipped_omitted")),
            duration_seconds=float(duration)
            if isinstance(duration, int | float) and math.isfinite(duration)
            else 0.0,
            db_copied=data.get("db_copied") is True,
            db_bytes=_count(data.get("db_bytes")),
            db_version=_text(data.get("db_version")),
            differing_settings=[s for s in differing if isinstance(s, str)]
            if isinstance(differing, list)
            else None,
            error=_text(data.get("error")),
        )

    @classmethod
    def from_message(cls, message: str | None) -> ReplicationReport | None:
        """The report in a container's termination message, or None. The last line that is a
        report wins: with `FallbackToLogsOnError` a run that wrote no file leaves the tail of
        its log, whose last stdout line is the report when the run got that far."""
        for line in reversed((message or "").splitlines()):
            try:
                report = cls.from_wire(json.loads(line))
            except (ValueError, RecursionError):
                continue
            if report is not None:
                return report
        return None
