"""The agent's decisions, free of I/O: settings from the pair spec, the excessive-CPU judge,
the licensing clocks and the fencing rule. Every input carries its time, so tests drive
them with a ManualClock.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from pairwarden.protocol import (
    DEFAULT_CPU_DURATION_SECONDS,
    DEFAULT_CPU_THRESHOLD_PERCENT,
    DEFAULT_INTERVAL_MS,
    DEFAULT_MAX_SECONDS_SINCE_CONTACT,
    DEFAULT_MISSED_BEFORE_FAILOVER,
    DEFAULT_NEVER_CONTACTED_GRACE_SECONDS,
    DEFAULT_RENEWALS_PER_WINDOW,
    DEFAULT_SETTINGS_FILE,
    HeartbeatSizing,
    Member,
    MemberReport,
    PeerGone,
)
from pairwarden.watching import Backoff

# Force Failover: how long the standby holds the call that triggers it (ringing) while it
# becomes active. The flip takes one urgent renewal, one reconciliation and one Lease event
# (about 0.1 s idle, 1-3 s on a loaded machine); a caller hears ringback meanwhile, shorter
# than a phone system's no-answer timer. Past this the call is refused (503) as before.
HOLD_TRIGGERING_CALL = 8.0


@dataclass(frozen=True)
class PairSettings:
    sizing: HeartbeatSizing
    cpu_enabled: bool = True
    cpu_threshold: float = DEFAULT_CPU_THRESHOLD_PERCENT
    cpu_duration: float = DEFAULT_CPU_DURATION_SECONDS
    never_contacted_grace: float = DEFAULT_NEVER_CONTACTED_GRACE_SECONDS
    max_since_contact: float = DEFAULT_MAX_SECONDS_SINCE_CONTACT
    settings_files: tuple[str, ...] = (DEFAULT_SETTINGS_FILE,)  # spec.memberSettings
    settings_command: tuple[str, ...] = ()
    force_failover: bool = False  # spec.forceFailoverOnInactiveCall


def _section(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = spec.get(key)
    return value if isinstance(value, Mapping) else {}


def _number(section: Mapping[str, Any], key: str, default: float, minimum: float = 0) -> float:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        return default
    return float(value)


def settings_from_spec(spec: Mapping[str, Any] | None) -> PairSettings:
    """Read the FailoverPair spec defensively: a missing or malformed field takes its default,
    so an agent never stops renewing because of a spec it does not understand."""
    spec = spec if isinstance(spec, Mapping) else {}
    hb = _section(spec, "heartbeat")
    cpu = _section(spec, "excessiveCpu")
    lic = _section(spec, "licensing")
    member = _section(spec, "memberSettings")
    sizing = HeartbeatSizing.from_spec(
        interval_ms=int(_number(hb, "intervalMs", DEFAULT_INTERVAL_MS, minimum=1)),
        missed=int(_number(hb, "missedBeforeFailover", DEFAULT_MISSED_BEFORE_FAILOVER, minimum=1)),
        renewals_per_window=int(
            _number(hb, "renewalsPerWindow", DEFAULT_RENEWALS_PER_WINDOW, minimum=1)
        ),
    )
    return PairSettings(
        sizing=sizing,
        cpu_enabled=cpu.get("enabled") is not False,
        cpu_threshold=_number(cpu, "thresholdPercent", DEFAULT_CPU_THRESHOLD_PERCENT),
        cpu_duration=_number(cpu, "durationSeconds", DEFAULT_CPU_DURATION_SECONDS),
        never_contacted_grace=_number(
            lic, "neverContactedGraceSeconds", DEFAULT_NEVER_CONTACTED_GRACE_SECONDS
        ),
        max_since_contact=_number(lic, "maxSecondsSinceContact", DEFAULT_MAX_SECONDS_SINCE_CONTACT),
        settings_files=_strings(member, "files", (DEFAULT_SETTINGS_FILE,)),
        settings_command=_strings(member, "command", ()),
        force_failover=spec.get("forceFailoverOnInactiveCall") is True,
    )


def _strings(section: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = section.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return default
    return tuple(value)


class CpuJudge:
    """CPU is excessive once every sample for `duration` seconds was above the threshold;
    one sample at or below it clears the verdict and restarts the count."""

    def __init__(self) -> None:
        self._above_since: float | None = None

    def observe(self, percent: float | None, now: float, threshold: float, duration: float) -> bool:
        if percent is None or percent <= threshold:
            self._above_since = None
            return False
        if self._above_since is None:
            self._above_since = now
        return now - self._above_since >= duration


@dataclass(frozen=True)
class LicensingClocks:
    """The secondary's two clocks (wall time: they span restarts and days)."""

    started: datetime
    primary_contact: datetime | None = None


def licensing_expired(
    member: Member, clocks: LicensingClocks, settings: PairSettings, now: datetime
) -> str | None:
    """Why the secondary may no longer answer, or None. The primary has no restriction."""
    if member != "secondary":
        return None
    if clocks.primary_contact is None:
        if (now - clocks.started).total_seconds() >= settings.never_contacted_grace:
            return "licensing: never contacted the primary since restart"
        return None
    if (now - clocks.primary_contact).total_seconds() >= settings.max_since_contact:
        return "licensing: primary not contacted for too long"
    return None


@dataclass(frozen=True)
class FenceInputs:
    pod: str
    holder: str | None  # holderIdentity of the active Lease, None until first seen
    epoch: int
    last_renewal_sent: float | None  # monotonic time the last *successful* renewal was sent
    holder_checked: float | None  # monotonic time the holder was last confirmed by the API
    service_up: bool
    licensing: str | None  # licensing_expired(...)
    # Failsafe (docs/protocol.md): until when the peer's promise not to answer holds for this
    # member (own monotonic clock, counted from when the ask was sent), None without one;
    # until when this member promised the peer not to answer; the highest epoch the peer
    # has told us of (its word is a fencing token like the Lease's).
    peer_until: float | None = None
    promised_until: float | None = None
    peer_epoch: int = 0
    # The epoch at which the other member's probe claimed this member's processes gone
    # (its Lease's `peer-gone` naming this pod), None: no such claim read.
    claimed_gone: int | None = None


@dataclass(frozen=True)
class Verdict:
    answer: bool
    reason: str
    valid_for: float = 0.0  # how long the answer holds without another successful renewal
    failsafe: bool = False  # answering past the fence deadline on the peer's promise


# A failed renewal is retried after a pause that grows 0.25 s, 0.5 s, ... up to 5 s, jittered
# (agents cut off together do not return in one instant), and never longer than R/2, so a
# member gets several tries within its fence margin.
RENEW_RETRY = Backoff(first=0.25, cap=5.0)


def next_renew_delay(
    failures: int, sizing: HeartbeatSizing, draw: float, spent: float = 0.0
) -> float:
    """Seconds from the end of a renewal attempt to the next: after a success (`failures` 0),
    what is left of R since the attempt began (`spent`: the write, the read of the active
    Lease after it and the order it led to), so renewals are *sent* R apart whatever they
    take; else the retry pause for that many consecutive failures. `draw` in [0, 1) is the
    jitter's chance. The agent's renew loop and the simulator both wait exactly this.

    Waiting R after the attempt's end instead let each period grow by a write, a read and an
    order; at load 14 on the real node the holder's renewal then landed past the point where
    it asks its peer for a promise (`promise_wanted_below`), and a crash in the promise's
    W - R/2 left the new holder silent for 1.0-1.4 s after its grant."""
    if failures == 0:
        return max(0.0, sizing.renew_period - spent)
    return min(RENEW_RETRY.pause(failures, draw), sizing.retry_pause_most)


# The relay (docs/protocol.md, "The standby's heartbeat rides the holder's renewal"): while the
# peer link works the standby does not renew its own Lease; it says hello to the holder this
# many times per renewal period, and the holder's renewal carries when it last heard one.
HELLOS_PER_PERIOD = 5
# The standby's report fields that are not urgent (CPU, calls, the primary contact) are written
# at least this often while it relays; sooner when the licensing clock is short (a quarter of
# maxSecondsSinceContact), so the operator's copy of the contact never ages toward it.
REPORT_REFRESH = 600.0


def hello_period(sizing: HeartbeatSizing) -> float:
    """How often the standby says hello to the holder (also each hello's timeout)."""
    return sizing.renew_period / HELLOS_PER_PERIOD


def relay_limit(sizing: HeartbeatSizing) -> float:
    """How old the operator's sighting of the standby may grow, as the standby reckons it,
    before it renews its own Lease: R between the holder's renewals, a hello period before
    the hello the last one relayed was heard, a hello period before the acknowledgement that
    tells the standby so, and R/4 for the holder's own request latency. In a healthy pair the
    sighting never gets that old, so the standby never writes."""
    return sizing.renew_period * 1.25 + 2 * hello_period(sizing)


def relay_fits(sizing: HeartbeatSizing) -> bool:
    """Whether the relay is used at this sizing: the standby's worst gap (`relay_limit`, then
    its own renewal's request) stays R/4 inside W, so it is never judged lost while alive.
    True at the default sizing and whenever renewalsPerWindow >= 3 and W >= 2 s; otherwise
    both members renew their own Leases every R, as without a peer link."""
    worst = relay_limit(sizing) + sizing.request_timeout
    return worst <= sizing.window - sizing.renew_period / 4


@dataclass(frozen=True)
class RelayInputs:
    """What the standby knows when it decides whether to write its own Lease (monotonic
    times on its own clock; None: never)."""

    pod: str
    holder: str | None  # holderIdentity of the active Lease as last seen
    linked: bool  # a peer key and the holder's peer contact are known
    last_own_sent: float | None  # its own last successful renewal, sent
    api_heard: float | None  # its last successful request to the API server, sent
    # The operator has seen it (relayed in a successful renewal of the holder) no earlier than
    # this: the hello's send time less the ages the holder's acknowledgement gave.
    relayed_at: float | None
    hello_failed_since: float | None  # the first of the hellos failing in a row, None: acked
    urgent: bool  # a starred field of its report differs from what its Lease carries
    report_changed: bool  # any other field does
    report_refresh: float = REPORT_REFRESH


def own_renewal_due(inputs: RelayInputs, sizing: HeartbeatSizing, now: float) -> tuple[float, str]:
    """When this member must next write its own Lease, and why (docs/protocol.md, "The
    standby's heartbeat rides the holder's renewal"). At once after an urgent change (a
    starred field, as ever). Every R, as without the relay, unless it is the standby of a
    working relay; then only when the relay cannot be trusted: its own requests to the API
    server failing (it must not look alive to the operator while it could not act on a
    grant), the hello failing (the holder may be gone: be seen by the operator at once), or
    the relayed sighting growing older than `relay_limit` (the holder's renewals do not get
    through). A report whose other fields changed is written within `report_refresh`."""
    period = sizing.renew_period
    if inputs.last_own_sent is None:
        return now, "never renewed"
    if inputs.urgent:
        return now, "a starred report field changed"
    every_period = inputs.last_own_sent + period
    if not inputs.holder:
        return every_period, "nobody holds the role"
    if inputs.holder == inputs.pod:
        return every_period, "the holder renews its own Lease"
    if not inputs.linked or not relay_fits(sizing):
        return every_period, "no peer link to relay through"
    if inputs.api_heard is None or now - inputs.api_heard > 2 * period:
        return every_period, "its own requests to the API server fail"
    if inputs.hello_failed_since is not None:
        if inputs.last_own_sent < inputs.hello_failed_since:
            return inputs.hello_failed_since, "the hello to the holder failed"
        return every_period, "the hello to the holder fails"
    seen = max(inputs.relayed_at or inputs.last_own_sent, inputs.last_own_sent)
    due, why = seen + relay_limit(sizing), "the relayed sighting is too old"
    if inputs.report_changed and inputs.last_own_sent + inputs.report_refresh < due:
        due, why = inputs.last_own_sent + inputs.report_refresh, "report fields changed"
    return due, why


def must_renew_own_lease(inputs: RelayInputs, sizing: HeartbeatSizing, now: float) -> str | None:
    """Why this member must write its own Lease now, or None: the relay carries it."""
    due, why = own_renewal_due(inputs, sizing, now)
    return why if due <= now else None


def report_news(report: MemberReport, written: MemberReport | None) -> tuple[bool, bool]:
    """(urgent, changed) of `report` against what the Lease carries: urgent when a starred
    field changed or the secondary's first contact with the primary appeared (the operator's
    licensing clock is waiting for it), changed when any other field did (the relay's own
    age aside: it is the holder's to write)."""
    if written is None:
        return True, True
    urgent = report.urgent_change(written) or (
        written.primary_contact is None and report.primary_contact is not None
    )
    changed = replace(report, peer_heard_ms=None) != replace(written, peer_heard_ms=None)
    return urgent, changed


def relayed_since(sent: float, renewed_ms: int, heard_ms: int) -> float | None:
    """The earliest instant the operator may have counted the standby as seen, from the
    holder's acknowledgement of a hello sent at `sent`: the holder answered after the hello
    arrived, its last successful renewal was sent `renewed_ms` before that and relayed a
    hello heard `heard_ms` before the write. None when the holder has not relayed any."""
    if renewed_ms < 0 or heard_ms < 0:
        return None
    return sent - (renewed_ms + heard_ms) / 1000


def decide_answer(inputs: FenceInputs, sizing: HeartbeatSizing, now: float) -> Verdict:
    """The fencing rule of docs/protocol.md: answer only while every condition holds.

    `valid_for` is the time left before the rule would fence by itself; the agent hands it
    to the voicemail process with the order, so the bound holds even if the agent hangs.
    Past the renewal's deadline the answer may go on only while the peer's promise holds
    (failsafe); a member that has promised the peer does not answer whatever the Lease says.
    """
    if not inputs.holder or inputs.holder != inputs.pod:
        return Verdict(False, "not the active Lease holder")
    if inputs.peer_epoch > inputs.epoch:
        return Verdict(False, f"the peer knows a newer epoch ({inputs.peer_epoch})")
    if inputs.claimed_gone == inputs.epoch:
        return Verdict(False, "the peer found this member's processes gone at this epoch")
    if inputs.promised_until is not None and now < inputs.promised_until:
        return Verdict(False, "promised the peer not to answer until it stops or that lapses")
    if inputs.last_renewal_sent is None:
        return Verdict(False, "no successful renewal yet")
    if inputs.holder_checked is None:
        return Verdict(False, "active Lease not confirmed")
    left, why = fence_left(inputs, sizing, now)
    failsafe = False
    peer_left = inputs.peer_until - now if inputs.peer_until is not None else 0.0
    if left <= 0:
        if peer_left <= 0:
            return Verdict(False, why)
        left, failsafe = peer_left, True
    else:
        left = max(left, peer_left)
    if not inputs.service_up:
        return Verdict(False, "voicemail process down")
    if inputs.licensing:
        return Verdict(False, inputs.licensing)
    if failsafe:
        return Verdict(True, f"failsafe: {why}; the peer promised not to answer", left, True)
    return Verdict(True, "active Lease holder", valid_for=left)


def fence_left(inputs: FenceInputs, sizing: HeartbeatSizing, now: float) -> tuple[float, str]:
    """Time left before the renewal's own deadline (`W - R/2` after the last successful renewal
    was sent, and after the holder was last confirmed), with what would fence it. A watch can
    stall silently while renewals succeed; without a recent read the holder we act on may be
    stale, so it ages under the same bound as the renewal."""
    left = fence_counts_from(inputs) + sizing.fence_after - now
    if (inputs.last_renewal_sent or 0.0) <= (inputs.holder_checked or 0.0):
        return left, "last successful renewal too old"
    return left, "active Lease not confirmed recently"


def fence_counts_from(inputs: FenceInputs) -> float:
    """The instant the renewal's own deadline counts from: the older of the last successful
    renewal's send and the last confirmation of the holder. An active order must be given
    again whenever this moves, not only on a new renewal: a renewal whose read of the active
    Lease is slow is judged (and ordered) first with the previous read's confirmation, and
    the read then extends the agent's deadline but not the process's, which stopped by itself
    while its agent still said answer (1 call of 41 refused with every request 0.15 s slow at
    W = 2 s)."""
    return min(inputs.last_renewal_sent or 0.0, inputs.holder_checked or 0.0)


ASKS_PER_FENCE = 5  # the holder's chances to ask for a promise within the fence bound


def ask_period(sizing: HeartbeatSizing) -> float:
    """How often the holder asks while it needs a promise (also each ask's timeout)."""
    return sizing.fence_after / ASKS_PER_FENCE


def promise_wanted_below(sizing: HeartbeatSizing) -> float:
    """The validity left (`fence_left`) under which the holder asks its peer for a promise:
    once the renewal due R after the last one is late, by half the slack it has (its request
    budget, or what is left of the fence bound after R, whichever is less), and not before
    half the fence bound; but at least one ask period before the fence, so an ask is made.

    Never in a healthy steady state, so a holder that crashes is failed over without waiting
    out a promise. Half the fence bound alone (the rule before) is crossed before every
    renewal when R is more than half of `W - R/2` (renewalsPerWindow 2 or 1): on the real
    node at W = 5 s, R = 2.5 s, the holder asked in the last 0.6 s of every renewal period,
    and a kill -9 landing in the 3.75 s its peer then kept the promise left the new holder
    silent after its grant (2.0 s in one of two runs). With renewalsPerWindow 3 (the
    default) this is half the fence bound, as before."""
    fence, renew = sizing.fence_after, sizing.renew_period
    late = renew + max(0.0, min(sizing.request_timeout, fence - renew)) / 2
    return fence - min(max(fence / 2, late), fence - ask_period(sizing))


def wants_promise(inputs: FenceInputs, sizing: HeartbeatSizing, now: float) -> bool:
    """The holder asks its peer for a promise once a renewal, or the read after it, is late
    (`promise_wanted_below`)."""
    if not inputs.holder or inputs.holder != inputs.pod or inputs.last_renewal_sent is None:
        return False
    if inputs.holder_checked is None:
        return False
    return fence_left(inputs, sizing, now)[0] <= promise_wanted_below(sizing)


# Proof of death from the kernel (docs/protocol.md): the standby probes the holder's agent port
# (TCP) and SIP port (UDP OPTIONS) this often, each round bounded by PROBE_TIMEOUT, and claims
# the holder's processes gone after PROBE_REFUSALS rounds in a row in which both refused.
PROBE_PERIOD = 0.1
PROBE_TIMEOUT = 0.5
PROBE_REFUSALS = 2
# After a round in which both ports were refused, the next round (the one that confirms it)
# comes this soon, not a whole period later.
PROBE_CONFIRM = 0.02

# One port's answer in a probe round: the kernel refused it (TCP RST, ICMP port unreachable),
# a process answered (a connection accepted, a SIP response), or neither (a timeout, an
# unreachable host or network: what a partition or a policy that drops gives).
PortAnswer = Literal["refused", "open", "silent"]


@dataclass(frozen=True)
class ProbeTarget:
    """The holder the standby probes: its pod and the one address both its contacts name."""

    epoch: int
    pod: str
    address: str
    peer_port: int
    sip_port: int


def probe_target(
    holder: str | None, pod: str, epoch: int, peer_contact: str, active_contact: str
) -> ProbeTarget | None:
    """What to probe, or None: only a standby probes (a holder is named and is not `pod`), and
    only when the holder's peer contact (its member Lease) and call contact (the active
    Lease) name the same IP address: a DNS name may resolve elsewhere, and two addresses
    would prove nothing about one pod."""
    if not holder or holder == pod:
        return None
    peer_host, _, peer_port = peer_contact.rpartition(":")
    sip_host, _, sip_port = active_contact.rpartition(":")
    if not peer_host or peer_host != sip_host or not peer_port.isdigit() or not sip_port.isdigit():
        return None
    try:
        address = str(ipaddress.ip_address(peer_host.strip("[]")))
    except ValueError:
        return None
    return ProbeTarget(epoch, holder, address, int(peer_port), int(sip_port))


@dataclass(frozen=True)
class ProbeState:
    """The standby's probe of one target: whether each port was seen served by a process
    (since this target: a holder, an epoch, an address), and the rounds in a row in which
    both were refused."""

    target: ProbeTarget | None = None
    peer_open: bool = False
    sip_answered: bool = False
    refused: int = 0


def probe_step(
    state: ProbeState, target: ProbeTarget | None, peer: PortAnswer, sip: PortAnswer
) -> ProbeState:
    """The state after one round against `target` (a new target starts afresh)."""
    if target != state.target:
        state = ProbeState(target)
    both = peer == "refused" and sip == "refused"
    return ProbeState(
        target,
        state.peer_open or peer == "open",
        state.sip_answered or sip == "open",
        state.refused + 1 if both else 0,
    )


def probe_armed(state: ProbeState) -> bool:
    """Whether both ports of the target were seen served by a process (since this target):
    from then on a death of both is proven by their refusal (`proves_gone`); before, a
    refusal proves nothing and a crash waits for the kubelet's report or W. A crash within a
    probe period of a grant (before the standby's first round at the new epoch) is such a
    case."""
    return state.target is not None and state.peer_open and state.sip_answered


def proves_gone(state: ProbeState) -> bool:
    """Whether the probe proves the holder's processes gone: both ports, each seen served by a
    process before at this target, refused in PROBE_REFUSALS rounds in a row. Only the
    holder's kernel refuses so, once every socket of its agent and its voicemail process is
    closed (the pod's network namespace outlives its containers): a hung process (SIGSTOP)
    still has its sockets and answers nothing, a container merely not Ready has them too, a
    partition or a dropping policy times out, the agent alone dead leaves the SIP port
    answering, the voicemail alone dead leaves the agent's port accepting. Seen served first:
    a port never served (no peer key, the server bound elsewhere) refuses from the start and
    proves nothing."""
    return probe_armed(state) and state.refused >= PROBE_REFUSALS


def next_probe_delay(state: ProbeState, spent: float) -> float:
    """Seconds from the end of a round (which took `spent`) to the next: a period from its
    start, or PROBE_CONFIRM after a round of refusals that does not prove death yet, so the
    confirming round does not wait a period (on the real node at load 12-14 the claim came
    0.40-0.69 s after the kill with every round a period apart)."""
    if 0 < state.refused < PROBE_REFUSALS:
        return PROBE_CONFIRM
    return max(0.0, PROBE_PERIOD - spent)


def gone_claim(state: ProbeState, seen: datetime) -> PeerGone | None:
    """The claim the standby reports at once (protocol.PeerGone), None while not proven."""
    target = state.target
    if target is None or not proves_gone(state):
        return None
    return PeerGone(target.epoch, target.pod, target.address, seen)


def restart_hold(
    previous: MemberReport | None,
    holder: str | None,
    pod: str,
    epoch: int,
    started: float,
    sizing: HeartbeatSizing,
) -> float | None:
    """Until when a (re)started agent must not answer, though the Lease may name it: its
    previous incarnation (or the previous pod of the same name) may have promised the peer,
    which may still answer on that promise, and promises live in memory. `previous` is the
    report its member Lease carried at first sight. None when it cannot have promised: it never
    published a peer contact (no peer could ask it), or it was answering at the very epoch that
    still names it (a member that answers never promises, and a promise given later was for a
    newer epoch, which would no longer name it)."""
    if previous is None or not previous.peer_contact:
        return None
    if previous.answering and holder == pod and previous.epoch == epoch:
        return None
    return started + sizing.fence_after


def may_promise(answering: bool, voicemail_answering: bool, epoch: int, asked_epoch: int) -> bool:
    """The peer promises not to answer only while it does not answer (its verdict and its
    voicemail process both say so) and knows no newer epoch than the asker's: an asker behind
    a revoke or a grant must hear the newer epoch and stop, not be kept answering."""
    return not answering and not voicemail_answering and epoch <= asked_epoch


@dataclass(frozen=True)
class FailsafeEpisode:
    """A stretch of answering on the peer's promise (wall times: they are reported)."""

    since: datetime
    ended: datetime | None = None


def failsafe_episode(
    previous: FailsafeEpisode | None, verdict: Verdict, now: datetime
) -> FailsafeEpisode | None:
    """The episode to report after `verdict`: one begins when the member first answers on a
    promise, ends when it answers on its own renewal again or stops, and is kept (ended)
    until the next begins, so an operator that was away too still reads it."""
    if verdict.failsafe:
        if previous is None or previous.ended is not None:
            return FailsafeEpisode(now)
        return previous
    if previous is not None and previous.ended is None:
        return FailsafeEpisode(previous.since, now)
    return previous


@dataclass(frozen=True)
class StandbyCalls:
    """What the voicemail server does with a new call while it does not answer. The reference:
    with Force Failover the inactive secondary answers the call that causes failover; without
    it the call goes to the active server. Neither: refuse (503), the caller retries."""

    hold_for: float = 0.0  # ring this long waiting to become active, then answer or refuse
    redirect: str = ""  # "host:port" of the active member: 302 the caller there


def standby_calls(
    settings: PairSettings, holder: str | None, pod: str, contact: str
) -> StandbyCalls:
    """Force Failover holds the call (the flip it causes answers it); otherwise a call that
    reaches this member while another holds the active Lease is sent to that member's
    contact (protocol.call_contact, "" when unknown: refuse)."""
    if settings.force_failover:
        return StandbyCalls(hold_for=HOLD_TRIGGERING_CALL)
    if holder and holder != pod and contact:
        return StandbyCalls(redirect=contact)
    return StandbyCalls()


def accepts_replication(holder: str | None, pod: str) -> bool:
    """Whether this member's file API takes replication writes: only while it is known not to
    hold the active Lease (`holder` as last seen; None before the first sight). Replication
    runs from the active member to the other; a Job that reaches the active one is stale (it
    was ordered before a role change) and would overwrite what callers have left since."""
    return holder is not None and holder != pod


def settings_digest(settings: Mapping[str, Any] | None) -> str:
    """Digest of the per-member settings never replicated, so the operator can see drift."""
    if not settings:
        return ""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VoicemailView:
    """The last status read from the voicemail process (None fields: not reachable)."""

    up: bool = False
    answering: bool = False
    calls: int = 0
    inactive_calls: int = 0
    cpu_percent: float | None = None
    settings: Mapping[str, Any] | None = None
    epoch: int = 0
    # The read timed out: the process did not say it is down, it said nothing (a loaded node).
    unread: bool = False


# A voicemail process whose status reads time out is judged down only after this long: a read
# slower than its 0.5 s timeout is load, not a stop. At load 30 on the real node one slow read
# of an answering process made the agent report it down; the operator failed over at once
# (ServiceStopped), then back (two role moves, calls dropped), the next read 70 ms later was fine.
# A process that exits refuses the connection and is down at once, as are `stopping` and an
# error status; a hung one is down after this grace.
VOICEMAIL_SLOW_GRACE = 2.0


def judged_view(
    read: VoicemailView, last: VoicemailView, unread_since: float | None, now: float
) -> VoicemailView:
    """The voicemail process as the agent reports it after one status read (pure): the read
    itself, unless it timed out, the process was up, and its reads have been timing out for
    less than VOICEMAIL_SLOW_GRACE (since `unread_since`, the first timed-out read of this run
    of them: counted from the failing reads, not from the last answered one, as a loaded agent
    may itself read seldom); then the last view stands."""
    if not read.unread:
        return read
    if last.up and unread_since is not None and now - unread_since < VOICEMAIL_SLOW_GRACE:
        return last
    return read


def build_report(
    *,
    stopping: bool,
    vm: VoicemailView,
    cpu_percent: float | None,
    cpu_excessive: bool,
    inactive_calls: int,
    clocks: LicensingClocks,
    member: Member,
    epoch: int,
    digest: str,
    data_version: str = "",
    setting_digests: str = "",
    call_contact: str = "",
    failsafe: FailsafeEpisode | None = None,
    peer_contact: str = "",
) -> MemberReport:
    return MemberReport(
        agent_running=not stopping,
        service_up=vm.up,
        answering=vm.up and vm.answering,
        cpu_percent=round(cpu_percent or 0),
        cpu_excessive=cpu_excessive,
        calls_in_progress=vm.calls,
        inactive_calls=inactive_calls,
        started=clocks.started,
        primary_contact=clocks.primary_contact if member == "secondary" else None,
        epoch=epoch,
        settings_digest=digest,
        data_version=data_version,
        setting_digests=setting_digests,
        call_contact=call_contact,
        peer_contact=peer_contact,
        failsafe_since=failsafe.since if failsafe else None,
        failsafe_ended=failsafe.ended if failsafe else None,
    )


class InactiveCallCounter:
    """The voicemail counter restarts at 0 with the process; the report must only grow.
    Keeps the total across process restarts, and after an agent restart continues from what
    the Lease carried, matched against the first reading of the process counter."""

    def __init__(self) -> None:
        self._base = 0
        self._last = 0
        self._pending_floor: int | None = None

    def update(self, counter: int) -> int:
        if self._pending_floor is not None:
            self._base = max(self._base, self._pending_floor - counter)
            self._pending_floor = None
        elif counter < self._last:  # the voicemail process restarted
            self._base += self._last
        self._last = counter
        return self.total

    def floor(self, previous: int) -> None:
        """What the Lease already carries (read when the agent starts)."""
        self._pending_floor = previous

    @property
    def total(self) -> int:
        total = self._base + self._last
        return total if self._pending_floor is None else max(total, self._pending_floor)
