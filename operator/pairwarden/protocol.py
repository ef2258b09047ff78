"""Names and encodings shared by the agent and the operator (see docs/protocol.md).

One module, so the writer (agent) and the reader (operator) of a member Lease cannot drift
apart: both go through `MemberReport.to_annotations` / `MemberReport.from_annotations`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass
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
# On a replication Job: the replicate command's report (JSON), written by the Job itself.
REPORT_ANNOTATION = PREFIX + "replication-report"


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
        cls, interval_ms: int = 1000, missed: int = 30, renewals_per_window: int = 3
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
    }
    # A change in any of these is written at once, not held until the next renewal.
    URGENT = ("agent_running", "service_up", "answering", "cpu_excessive", "inactive_calls")

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
