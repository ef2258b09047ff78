"""The agent's loops. Each loop only calls a step method (`poll_once`, `renew_once`,
`on_active_lease`, `on_primary_lease`, `evaluate`), so tests drive the steps by hand on a
ManualClock with fake API and voicemail adapters; the loops add nothing but timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pairwarden.agent.core import (
    PROBE_TIMEOUT,
    REPORT_REFRESH,
    CpuJudge,
    FailsafeEpisode,
    FenceInputs,
    InactiveCallCounter,
    LicensingClocks,
    PairSettings,
    PortAnswer,
    ProbeState,
    ProbeTarget,
    RelayInputs,
    StandbyCalls,
    Verdict,
    VoicemailView,
    ask_period,
    build_report,
    decide_answer,
    failsafe_episode,
    fence_counts_from,
    fence_left,
    gone_claim,
    hello_period,
    judged_view,
    licensing_expired,
    may_promise,
    must_renew_own_lease,
    next_probe_delay,
    next_renew_delay,
    own_renewal_due,
    probe_armed,
    probe_step,
    probe_target,
    relayed_since,
    report_news,
    restart_hold,
    settings_digest,
    settings_from_spec,
    standby_calls,
    wants_promise,
)
from pairwarden.agent.cpu import CpuSampler, FunctionSampler
from pairwarden.agent.kubeio import TRANSIENT, KubeIO, LeaseMissing, LeaseView
from pairwarden.agent.metrics import AgentMetrics
from pairwarden.agent.peer import PROMISE_RATE_MARGIN, PeerLink, PeerMessage, PeerRefused
from pairwarden.agent.probe import probe_ports
from pairwarden.agent.state import AgentState
from pairwarden.clock import Clock
from pairwarden.protocol import (
    ANNOTATION_ACTIVE_CONTACT,
    Member,
    MemberReport,
    PeerGone,
    active_lease_name,
    call_contact,
    member_lease_name,
    other,
)
from pairwarden.replication.drift import setting_digests

log = logging.getLogger("pairwarden.agent")

CONTACT_PERSIST_EVERY = 60.0  # seconds; the clock it feeds counts in days
# A refused order (409: not newer than what the process holds, an unexpired order of a newer
# epoch or a later stamp of ours; 401: it does not hold this agent's key) is sent again after
# this long, never given up: what it refused for expires or gets fixed, and the member must
# then obey the Lease.
REFUSED_RETRY = 1.0


class Voicemail(Protocol):
    async def status(self) -> VoicemailView: ...

    async def order(
        self, active: bool, epoch: int, valid_for: float = 0.0, standby: StandbyCalls = ...
    ) -> int | None: ...


@dataclass(frozen=True)
class AgentConfig:
    pair: str
    member: Member
    namespace: str
    pod: str
    poll_interval: float = 0.2
    spec_refresh: float = 30.0
    shutdown_budget: float = 0.7  # SIGTERM to exit, well under a second
    call_contact: str = ""  # where callers reach this member ("host:port"), for the other's 302
    peer_contact: str = ""  # where the other agent reaches this one's peer link ("host:port")


# One probe round of the holder's two ports (agent.probe.probe_ports; a fake in tests).
Prober = Callable[[ProbeTarget, float], Coroutine[Any, Any, tuple[PortAnswer, PortAnswer]]]

# (files, command) -> the member's own settings: drift.read_member_settings over the data dir
SettingsReader = Callable[[tuple[str, ...], tuple[str, ...]], Mapping[str, Any]]


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        kube: KubeIO,
        voicemail: Voicemail,
        clock: Clock,
        *,
        state: AgentState | None = None,
        cpu: CpuSampler | None = None,
        metrics: AgentMetrics | None = None,
        data_version: Callable[[], str] | None = None,
        member_settings: SettingsReader | None = None,
        peer: PeerLink | None = None,
        prober: Prober = probe_ports,
    ) -> None:
        self.config = config
        self._data_version = data_version  # replication.version.fingerprint of the data dir
        self._version: tuple[float, str] | None = None
        # drift.read_member_settings over the data dir; None: the voicemail process's own
        self._member_settings = member_settings
        self._settings_read: tuple[float, str, str] | None = None  # (when, digest, per setting)
        self.kube = kube
        self.vm = voicemail
        self.clock = clock
        self.state = state or AgentState(None)
        self.cpu: CpuSampler = cpu or FunctionSampler(lambda: self.vm_view.cpu_percent)
        self.metrics = metrics or AgentMetrics()
        self.settings: PairSettings = settings_from_spec(None)
        self.spec_seen = False  # the last read found the FailoverPair
        self.member_lease = member_lease_name(config.pair, config.member)
        self.active_lease = active_lease_name(config.pair)
        self.primary_lease = member_lease_name(config.pair, "primary")

        self.clocks = LicensingClocks(clock.wall(), self.state.load_primary_contact())
        self.vm_view = VoicemailView()
        self._vm_unread_since: float | None = None  # the first of the timed-out reads in a row
        self.holder: str | None = None
        self.active_contact = ""  # the holder's call contact, from the active Lease
        self.epoch = 0
        self.holder_checked: float | None = None
        self.last_renewal_sent: float | None = None
        self.written: MemberReport | None = None
        self.renew_ok = False
        self.lease_seen = False
        self.cpu_percent: float | None = None
        self.cpu_excessive = False
        self.licensing: str | None = None
        self.stopping = False
        self.verdict = Verdict(False, "starting")
        self._cpu_judge = CpuJudge()
        self._inactive = InactiveCallCounter()
        self._told: tuple[bool, int, object, StandbyCalls] | None = None
        self._refused: tuple[bool, int, float] | None = None  # the order and when
        self._primary_renew_seen: str | None = None
        self._contact_persisted: float | None = None
        self._wake = asyncio.Event()
        self._judging = asyncio.Lock()  # evaluate: one judgement and order at a time
        self.failsafe = Failsafe(peer, member_lease_name(config.pair, other(config.member)))
        self.fence_inputs: FenceInputs | None = None  # as last judged, for peer_once
        self._started = clock.monotonic()
        self._previous: MemberReport | None = None  # the report found at first sight
        self.relay = Relay()
        # Proof of death from the kernel (docs/protocol.md): the standby's probe of the
        # holder, and the claim it reports (kept for its epoch once proven).
        self._prober = prober
        self.probe = ProbeState()
        self.claim: PeerGone | None = None

    # ---- what the agent says -------------------------------------------------------------

    def report(self) -> MemberReport:
        heard = self.failsafe.hello_heard
        age = None if heard is None else max(0, round((self.clock.monotonic() - heard) * 1000))
        claim = self.claim if self.claim is not None and self.claim.epoch == self.epoch else None
        return replace(self._report(), peer_heard_ms=age, peer_gone=claim)

    def _report(self) -> MemberReport:
        return build_report(
            stopping=self.stopping,
            vm=self.vm_view,
            cpu_percent=self.cpu_percent,
            cpu_excessive=self.cpu_excessive,
            inactive_calls=self._inactive.total,
            clocks=self.clocks,
            member=self.config.member,
            epoch=self.epoch,
            digest=self._settings_read[1] if self._settings_read else self._vm_digest(),
            data_version=self.data_version(),
            setting_digests=self._settings_read[2] if self._settings_read else "",
            call_contact=call_contact(self.config.call_contact),
            failsafe=self.failsafe.episode,
            peer_contact=call_contact(self.config.peer_contact),
        )

    def _vm_digest(self) -> str:
        return "" if self._member_settings else settings_digest(self.vm_view.settings)

    async def refresh_member_settings(self) -> None:
        """Digest the member's own settings (the files and command the spec names), at most
        twice per renewal period: a command may be slow, and files change rarely."""
        if self._member_settings is None:
            return
        now = self.clock.monotonic()
        if (
            self._settings_read
            and now - self._settings_read[0] < self.settings.sizing.renew_period / 2
        ):
            return
        read = self._member_settings
        files, command = self.settings.settings_files, self.settings.settings_command
        digests = setting_digests(await asyncio.to_thread(read, files, command))
        text = json.dumps(digests, sort_keys=True, separators=(",", ":"))
        self._settings_read = (now, hashlib.sha256(text.encode()).hexdigest()[:16], text)

    def data_version(self) -> str:
        """The data fingerprint, recomputed at most twice per renewal period (it stats every
        replicated file; the report is built far more often than it is written)."""
        if self._data_version is None:
            return ""
        now = self.clock.monotonic()
        if self._version is None or now - self._version[0] >= self.settings.sizing.renew_period / 2:
            self._version = (now, self._data_version())
        return self._version[1]

    @property
    def request_timeout(self) -> float:
        return self.settings.sizing.request_timeout

    # ---- steps ---------------------------------------------------------------------------

    async def refresh_settings(self) -> None:
        try:
            async with asyncio.timeout(self.request_timeout):
                spec = await self.kube.get_pair_spec()
        except TRANSIENT as exc:
            log.info("cannot read FailoverPair %s: %r", self.config.pair, exc)
            return
        if spec is None:
            log.info("FailoverPair %s not found; using defaults", self.config.pair)
        self.spec_seen = spec is not None
        self.settings = settings_from_spec(spec)

    async def poll_once(self) -> None:
        """Read the voicemail process, judge CPU and licensing, fence if needed, and ask for
        an extra write when a starred report field changed."""
        view = await self.vm.status()
        read_at = self.clock.monotonic()
        if not view.unread:
            self._vm_unread_since = None
        elif self._vm_unread_since is None:
            self._vm_unread_since = read_at
        self.vm_view = judged_view(view, self.vm_view, self._vm_unread_since, read_at)
        view = self.vm_view
        if view.up:
            self._inactive.update(view.inactive_calls)
        await self.refresh_member_settings()
        now = self.clock.monotonic()
        self.cpu_percent = self.cpu.sample()
        s = self.settings
        self.cpu_excessive = s.cpu_enabled and self._cpu_judge.observe(
            self.cpu_percent, now, s.cpu_threshold, s.cpu_duration
        )
        self.licensing = licensing_expired(self.config.member, self.clocks, s, self.clock.wall())
        await self.evaluate()
        if self.renew_ok and self.written and report_news(self.report(), self.written)[0]:
            self._wake.set()
        self._update_metrics()

    async def renew_once(self) -> bool:
        """One write of the member Lease with the report; on success re-read the active Lease,
        whose answer is then known to be at least as new as this renewal."""
        report = self.report()
        sent = self.clock.monotonic()
        try:
            async with asyncio.timeout(self.request_timeout):
                if not self.lease_seen:
                    await self._first_sight()
                await self.kube.renew(
                    self.member_lease,
                    "" if self.stopping else self.config.pod,
                    report.to_annotations(),
                    self.settings.sizing.lease_duration_seconds,
                    self.clock.wall(),
                )
        except LeaseMissing:
            log.info("member Lease %s does not exist yet; waiting", self.member_lease)
            self.metrics.renewals.labels("missing").inc()
            self.renew_ok = False
            return False
        except TRANSIENT as exc:
            log.warning("renewal of %s failed: %r", self.member_lease, exc)
            self.metrics.renewals.labels("error").inc()
            self.renew_ok = False
            await self.evaluate()
            return False
        self.metrics.renewals.labels("ok").inc()
        self.last_renewal_sent = sent
        self.relay.api_heard = sent
        self.written = report
        self.renew_ok = True
        await self.confirm_active()
        if not self.failsafe.contact:
            await self.refresh_peer()
        await self.evaluate()
        return True

    async def _first_sight(self) -> None:
        """Wait for the operator to create the Lease, and carry its inactive-call count on so
        the reported counter never goes back when this agent restarts."""
        lease = await self.kube.get_lease(self.member_lease)
        if lease is None:
            raise LeaseMissing(self.member_lease)
        # Before the first renewal, so before this member may answer: a claim of the other
        # member's probe against this pod (its processes, the ones before this start, were
        # seen gone) holds it back at that epoch (agent.core.decide_answer).
        await self.refresh_peer()
        self.lease_seen = True
        if not self.spec_seen:
            # The operator creates the Lease once the pair exists: read its spec now, not at
            # the next refresh (Force Failover, settings files and sizing apply from the start).
            await self.refresh_settings()
        previous = MemberReport.from_annotations(dict(lease.annotations))
        self._previous = previous
        self._inactive.floor(previous.inactive_calls)

    async def confirm_active(self) -> None:
        checked = self.clock.monotonic()
        try:
            async with asyncio.timeout(self.request_timeout):
                view = await self.kube.get_lease(self.active_lease)
        except TRANSIENT as exc:
            log.info("cannot read %s: %r", self.active_lease, exc)
            return
        self.relay.api_heard = max(self.relay.api_heard or checked, checked)
        self.on_active_lease(view, checked)

    def on_active_lease(self, view: LeaseView | None, seen_at: float | None = None) -> None:
        """The operator's word. An older epoch than the one held is a stale event: ignored."""
        seen_at = self.clock.monotonic() if seen_at is None else seen_at
        if view is None:
            self.holder = ""
        elif view.transitions >= self.epoch:
            if (view.holder, view.transitions) != (self.holder, self.epoch):
                log.info("active Lease: holder %r epoch %d", view.holder, view.transitions)
                self._wake.set()  # the relay's rule may now want its own renewal (a grant)
            self.holder = view.holder
            self.epoch = view.transitions
            self.active_contact = call_contact(view.annotations.get(ANNOTATION_ACTIVE_CONTACT))
        else:
            return
        self.holder_checked = seen_at

    def on_primary_lease(self, view: LeaseView | None) -> None:
        """Secondary's licensing clock: a change of the primary's renewTime after the first
        sight proves the primary is alive and reachable (the first sight may be old)."""
        if view is None or not view.renew_time:
            return
        if self._primary_renew_seen is None:
            self._primary_renew_seen = view.renew_time
            return
        if view.renew_time == self._primary_renew_seen:
            return
        self._primary_renew_seen = view.renew_time
        self.contact_with_primary()

    def contact_with_primary(self) -> None:
        """The secondary reached the primary now: a renewal of the primary's Lease seen, or
        the primary's authenticated hello over the peer link (a primary that is standby
        relays its heartbeat and renews nothing the secondary could see)."""
        now = self.clock.wall()
        self.clocks = LicensingClocks(self.clocks.started, now)
        mono = self.clock.monotonic()
        last = self._contact_persisted
        if last is None or mono - last >= CONTACT_PERSIST_EVERY:
            try:
                self.state.save_primary_contact(now)
                self._contact_persisted = mono
            except OSError as exc:
                log.warning("cannot persist primary contact: %r", exc)

    async def evaluate(self) -> None:
        """Apply the fencing rule now and tell the voicemail process if its role must change
        (or an active order must be extended after a renewal). One judgement at a time: the
        poll, the renewal, the watch and the peer link each judge, and two orders in flight
        at once may reach the process out of turn; it refuses the older (409, not newer than
        the last it took), and the agent then held every order of that role back for
        REFUSED_RETRY (seen at load 25: a 409 for its own epoch)."""
        async with self._judging:
            await self._judge()

    async def _judge(self) -> None:
        now = self.clock.monotonic()
        inputs = FenceInputs(
            pod=self.config.pod,
            holder=None if self.stopping else self.holder,
            epoch=self.epoch,
            last_renewal_sent=self.last_renewal_sent,
            holder_checked=self.holder_checked,
            service_up=self.vm_view.up,
            licensing=self.licensing,
            **self.failsafe.inputs(now, self._restart_hold()),
            claimed_gone=self.failsafe.claimed_gone(self.config.pod),
        )
        self.fence_inputs = inputs
        verdict = decide_answer(inputs, self.settings.sizing, now)
        self.failsafe.episode = failsafe_episode(self.failsafe.episode, verdict, self.clock.wall())
        self.metrics.failsafe.set(1 if verdict.failsafe else 0)
        if (verdict.answer, verdict.failsafe) != (self.verdict.answer, self.verdict.failsafe) or (
            not verdict.answer and verdict.reason != self.verdict.reason
        ):
            log.info("answer=%s: %s", verdict.answer, verdict.reason)
        self.verdict = verdict
        self.metrics.answering.set(1 if verdict.answer else 0)
        vm = self.vm_view
        if not vm.up:
            return
        want = (verdict.answer, self.epoch)
        refused = self._refused
        if refused is not None and refused[:2] == want and now - refused[2] < REFUSED_RETRY:
            return
        # a new renewal (and the read after it) or a new promise extends the order
        stamp = (fence_counts_from(inputs), self.failsafe.peer_until) if verdict.answer else None
        standby = standby_calls(self.settings, self.holder, self.config.pod, self.active_contact)
        told = (*want, stamp, standby)
        out_of_step = vm.answering != verdict.answer or vm.epoch != self.epoch
        if told == self._told and not out_of_step:
            return
        valid_for = verdict.valid_for if verdict.answer else 0.0
        status = await self.vm.order(*want, valid_for, standby)
        self.metrics.role_orders.labels(str(verdict.answer).lower()).inc()
        if status == 200:
            self._told = told
            self.vm_view = VoicemailView(
                up=True,
                answering=verdict.answer,
                calls=vm.calls,
                inactive_calls=vm.inactive_calls,
                cpu_percent=vm.cpu_percent,
                settings=vm.settings,
                epoch=self.epoch,
            )
        elif status in (401, 409):
            if refused is None or refused[:2] != want:  # once per order, not per retry
                why = (
                    "not signed with its key"
                    if status == 401
                    else "not newer than the order it holds (a newer epoch, or a later stamp)"
                )
                log.warning("voicemail refused order %s (%d): %s", want, status, why)
            self._refused = (*want, now)

    async def shutdown(self) -> None:
        """Clean stop: stop answering, then release the Lease with agent=stopping."""
        self.stopping = True
        with contextlib.suppress(TimeoutError, *TRANSIENT):
            async with asyncio.timeout(0.25):
                if await self.vm.order(False, self.epoch) == 200:
                    await self.release_peer(stopped=True)
        self.verdict = Verdict(False, "stopping")
        try:
            async with asyncio.timeout(max(0.1, self.config.shutdown_budget - 0.25)):
                await self.kube.renew(
                    self.member_lease,
                    "",
                    self.report().to_annotations(),
                    self.settings.sizing.lease_duration_seconds,
                    self.clock.wall(),
                )
            log.info("released %s", self.member_lease)
        except (LeaseMissing, *TRANSIENT) as exc:
            log.warning("could not release %s: %r", self.member_lease, exc)

    def _update_metrics(self) -> None:
        m = self.metrics
        m.service_up.set(1 if self.vm_view.up else 0)
        m.epoch.set(self.epoch)
        if self.last_renewal_sent is not None:
            m.renewal_age.set(self.clock.monotonic() - self.last_renewal_sent)
        m.cpu.set((self.cpu_percent or 0) / 100)
        m.cpu_excessive.set(1 if self.cpu_excessive else 0)
        m.calls.set(self.vm_view.calls)
        m.count_inactive_calls(self._inactive.total)
        m.licensing_expired.set(1 if self.licensing else 0)
        now = self.clock.monotonic()
        relayed = self._relaying() and self.relay.failed_since is None and self.relay.relayed_at
        ride = relayed and must_renew_own_lease(self.relay_inputs(), self.settings.sizing, now)
        m.relayed.set(1 if relayed and ride is None else 0)

    # ---- loops ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then shut down cleanly."""
        await self.refresh_settings()
        await self.poll_once()  # so the first renewal reports the real service state
        loops: list[Callable[[], Coroutine[Any, Any, None]]] = [
            self._poll_loop,
            self._renew_loop,
            self._active_loop,
            self._settings_loop,
        ]
        if self.config.member == "secondary":
            loops.append(self._primary_loop)
        if self.failsafe.link is not None:
            loops.append(self._peer_loop)
        loops.append(self._probe_loop)
        tasks = [asyncio.create_task(loop(), name=loop.__name__) for loop in loops]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper:
                    task.result()  # a loop died: surface it (the container restarts)
        finally:
            for task in [stopper, *tasks]:
                task.cancel()
            await asyncio.gather(stopper, *tasks, return_exceptions=True)
            await self.shutdown()

    async def _poll_loop(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.config.poll_interval)

    async def _renew_loop(self) -> None:
        failures = 0
        while True:
            sizing = self.settings.sizing
            why = must_renew_own_lease(self.relay_inputs(), sizing, self.clock.monotonic())
            if why is not None:
                began = self.clock.monotonic()
                failures = 0 if await self.renew_once() else failures + 1
                spent = self.clock.monotonic() - began
                delay = next_renew_delay(failures, sizing, random.random(), spent)
                if failures == 0 and self._relaying():
                    delay = min(delay, hello_period(sizing))
            else:
                await self.relay_once()
                due = own_renewal_due(self.relay_inputs(), sizing, self.clock.monotonic())[0]
                delay = due - self.clock.monotonic()
                if self._relaying():
                    delay = min(delay, hello_period(sizing))
                delay = max(0.0, delay)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _active_loop(self) -> None:
        async for view in self.kube.watch_lease(self.active_lease):
            self.on_active_lease(view)
            await self.evaluate()

    async def _primary_loop(self) -> None:
        async for view in self.kube.watch_lease(self.primary_lease):
            self.on_primary_lease(view)

    async def _settings_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.spec_refresh)
            await self.refresh_settings()
            await self.refresh_peer()

    async def _probe_loop(self) -> None:
        while True:
            began = self.clock.monotonic()
            await self.probe_once()
            await asyncio.sleep(next_probe_delay(self.probe, self.clock.monotonic() - began))

    async def probe_once(self) -> None:
        """The standby's probe of the holder (docs/protocol.md, "Proof of death from the
        kernel"): one round against both its ports; once they prove its processes gone, the
        claim goes into this member's report, whose urgent renewal the wake sends at once."""
        f = self.failsafe
        holder = None if self.stopping or f.other_pod != self.holder else self.holder
        target = probe_target(holder, self.config.pod, self.epoch, f.contact, self.active_contact)
        if target is None:
            self.probe = ProbeState()
            return
        peer, sip = await self._prober(target, PROBE_TIMEOUT)
        if (self.holder, self.epoch) != (target.pod, target.epoch):
            return  # the Lease moved during the round: its answers are about the old holder
        armed = self.probe.target == target and probe_armed(self.probe)
        self.probe = probe_step(self.probe, target, peer, sip)
        if not armed and probe_armed(self.probe):
            log.info(
                "probe armed: the holder %s at %s served both its ports at epoch %d (a "
                "refusal of both now proves its processes gone)",
                target.pod, target.address, target.epoch,
            )  # fmt: skip
        claim = gone_claim(self.probe, self.clock.wall())
        known = self.claim
        if claim is None or (known is not None and known.epoch == claim.epoch):
            return  # a claim is kept for its epoch once made
        log.warning(
            "the holder %s at %s refused its agent's and its SIP port %d times in a row: "
            "its processes are gone (epoch %d); reporting it at once",
            claim.pod, claim.address, self.probe.refused, claim.epoch,
        )  # fmt: skip
        self.claim = claim
        if self.failsafe.given:
            # A promise not to answer guards against its asker answering past its fence; an
            # asker whose processes are gone answers nothing (its restarted agent holds back at
            # this epoch), so the promises end here rather than when they lapse (W - R/2): on
            # the real node a holder that asked 0.3 s before its crash kept the new one silent
            # 2.0 s after its grant.
            log.info("the peer's processes are gone: the promises given to it end")
            self.failsafe.given.clear()
        self._wake.set()
        await self.evaluate()

    async def _peer_loop(self) -> None:
        while True:
            await self.peer_once()
            await asyncio.sleep(self.peer_period)

    # ---- the relay: the standby's heartbeat rides the holder's renewal ------------------

    def relay_inputs(self) -> RelayInputs:
        urgent, changed = report_news(self.report(), self.written)
        return RelayInputs(
            pod=self.config.pod,
            holder=None if self.stopping else self.holder,
            linked=self.failsafe.link is not None and bool(self.failsafe.contact),
            last_own_sent=self.last_renewal_sent if self.renew_ok else None,
            api_heard=self.relay.api_heard,
            relayed_at=self.relay.relayed_at,
            hello_failed_since=self.relay.failed_since,
            urgent=urgent,
            report_changed=changed,
            report_refresh=min(REPORT_REFRESH, self.settings.max_since_contact / 4),
        )

    def _relaying(self) -> bool:
        return bool(self.holder) and self.holder != self.config.pod

    async def relay_once(self) -> None:
        """The standby's step while the relay carries its heartbeat: a read of the active
        Lease once per R (it must keep hearing the API server, or look alive to the operator
        while it could not act on a grant), then a hello to the holder, whose
        acknowledgement says what the holder's last successful renewal relayed."""
        f, relay, sizing = self.failsafe, self.relay, self.settings.sizing
        if not self._relaying():
            return
        if (
            relay.api_heard is None
            or self.clock.monotonic() - relay.api_heard >= sizing.renew_period
        ):
            await self.confirm_active()
            await self.evaluate()
        now = self.clock.monotonic()
        if (
            f.link is None
            or relay.api_heard is None
            or now - relay.api_heard > 2 * sizing.renew_period
        ):
            return  # not heard by the API server: no hello, so the holder stops relaying it
        f.link.timeout = hello_period(sizing)
        answer = await f.link.hello(f.contact, self.epoch)
        if answer is None:
            if relay.failed_since is None:
                log.info("hello to the holder failed: renewing its own Lease")
                relay.failed_since = now
            return
        if relay.failed_since is not None:
            log.info("hello to the holder acknowledged: its renewals carry this heartbeat")
        relay.failed_since = None
        if answer.epoch > f.peer_epoch:
            f.peer_epoch = answer.epoch
            await self.evaluate()
        at = relayed_since(now, answer.renewed_ms, answer.heard_ms)
        if at is not None:
            relay.relayed_at = max(relay.relayed_at or at, at)

    def _ack(self, hello: PeerMessage) -> bytes:
        """The holder's side of a hello: remember when it was heard (the next renewal carries
        its age), answer with what the last successful renewal relayed."""
        f = self.failsafe
        assert f.link is not None
        now = self.clock.monotonic()
        f.hello_heard = now
        if self.config.member == "secondary" and hello.member == "primary":
            self.contact_with_primary()
        written = self.written.peer_heard_ms if self.written is not None else None
        if self.last_renewal_sent is None or written is None or not self.renew_ok:
            return f.link.ack(hello, self.epoch, -1, -1)
        renewed = round((now - self.last_renewal_sent) * 1000)
        return f.link.ack(hello, self.epoch, renewed, written)

    # ---- failsafe: the peer link (docs/protocol.md) --------------------------------------

    @property
    def peer_period(self) -> float:
        """How often the holder asks while it needs a promise (also each ask's timeout)."""
        return ask_period(self.settings.sizing)

    def _restart_hold(self) -> float | None:
        return restart_hold(
            self._previous,
            self.holder,
            self.config.pod,
            self.epoch,
            self._started,
            self.settings.sizing,
        )

    async def refresh_peer(self) -> None:
        """Where the other agent's peer link is, from its member Lease (read while the API
        server is there, so it is known before an outage)."""
        with contextlib.suppress(TimeoutError, *TRANSIENT):
            async with asyncio.timeout(self.request_timeout):
                view = await self.kube.get_lease(self.failsafe.other_lease)
            if view is not None:
                report = MemberReport.from_annotations(dict(view.annotations))
                self.failsafe.contact = report.peer_contact
                self.failsafe.other_pod = view.holder
                self.failsafe.other_claim = report.peer_gone

    async def peer_once(self) -> None:
        """The holder asks for a promise when its own validity runs low; a member that
        stopped answering while it relied on one tells the peer so."""
        f, now = self.failsafe, self.clock.monotonic()
        if f.link is None:
            return
        inputs = self.fence_inputs
        wants = inputs is not None and wants_promise(inputs, self.settings.sizing, now)
        if wants and not f.asking and inputs is not None:  # once per stretch of asks
            left = fence_left(inputs, self.settings.sizing, now)[0]
            log.info("asking the peer for promises: %.2f s of validity left", left)
        f.asking = wants
        if wants:
            sent = now
            f.link.timeout = self.peer_period
            answer = await f.link.ask(f.contact, self.epoch)
            if answer is not None:
                f.heard(answer, sent, self.epoch)
                await self.evaluate()
        if not self.verdict.answer:
            await self.release_peer()

    async def release_peer(self, stopped: bool = False) -> None:
        """Once this member's voicemail confirmed it stopped answering (`stopped`, or its last
        status or order said so), end the peer's promises it relied on: the peer may then
        answer at once instead of when they lapse. A voicemail process that cannot be asked
        may still answer on its last order: then the promises lapse on their own."""
        f = self.failsafe
        confirmed = stopped or (self.vm_view.up and not self.vm_view.answering)
        if f.link is None or f.asked_up_to is None or not confirmed:
            return
        up_to, f.asked_up_to, f.peer_until = f.asked_up_to, None, None
        f.link.timeout = self.peer_period
        if not await f.link.release(f.contact, self.epoch, up_to):
            f.asked_up_to = up_to  # try again; peer_until stays dropped: no answer on it
        else:
            log.info("told the peer this member stopped answering")

    async def peer_request(self, raw: bytes) -> tuple[int, bytes]:
        """The peer link's server side: (HTTP status, body)."""
        f = self.failsafe
        if f.link is None:
            return 404, b""
        try:
            message = f.link.receive(raw)
        except PeerRefused as exc:
            log.warning("peer message refused: %s", exc)
            return 403, b""
        now = self.clock.monotonic()
        f.peer_epoch = max(f.peer_epoch, message.epoch)
        body = b"{}"
        if message.kind == "release":
            f.released(message)
        elif message.kind == "hello":
            body = self._ack(message)
        elif message.kind == "ask":
            promise = may_promise(
                self.verdict.answer, self.vm_view.answering, self.epoch, message.epoch
            )
            promise_ms = int(self.settings.sizing.fence_after * 1000)
            if promise:
                if message.boot not in f.given:  # once per stretch of the asker's asks
                    log.info("promised the peer (epoch %d) not to answer", message.epoch)
                f.promise(message, now + promise_ms / 1000)
            body = f.link.reply(message, self.epoch, promise, promise_ms if promise else 0)
        await self.evaluate()
        return 200, body


class Failsafe:
    """The agent's failsafe memory: promises it gave (per boot of the asker, until when on our
    clock, up to which seq), the promise it holds, and the episode it reports."""

    def __init__(self, link: PeerLink | None, other_lease: str) -> None:
        self.link = link
        self.other_lease = other_lease
        self.contact = ""  # the other agent's peer link, "host:port"
        self.given: dict[str, tuple[int, float]] = {}  # asker's boot -> (seq, until)
        self.peer_until: float | None = None  # the promise this member holds, own clock
        self.asked_up_to: int | None = None  # the last ask whose promise we relied on
        self.peer_epoch = 0
        self.episode: FailsafeEpisode | None = None
        self.asking = False  # the holder's last look wanted a promise (logged when it starts)
        self.hello_heard: float | None = None  # when the other member's last hello arrived
        self.other_pod = ""  # the other member's pod, as its Lease's holderIdentity names it
        self.other_claim: PeerGone | None = None  # the claim its Lease carried, as last read

    def claimed_gone(self, pod: str) -> int | None:
        """The epoch at which the other member's probe claimed `pod`'s processes gone."""
        claim = self.other_claim
        return claim.epoch if claim is not None and claim.pod == pod else None

    def inputs(self, now: float, hold: float | None) -> dict[str, Any]:
        """FenceInputs' failsafe fields; `hold`: agent.core.restart_hold."""
        self.given = {b: v for b, v in self.given.items() if v[1] > now}
        untils = [v[1] for v in self.given.values()] + ([hold] if hold is not None else [])
        promised = max(untils, default=None)
        return {
            "peer_until": self.peer_until,
            "promised_until": promised,
            "peer_epoch": self.peer_epoch,
        }

    def heard(self, answer: PeerMessage, sent: float, epoch: int) -> None:
        self.peer_epoch = max(self.peer_epoch, answer.epoch)
        if answer.promise and answer.epoch <= epoch and answer.promise_ms > 0:
            until = sent + answer.promise_ms / 1000 * PROMISE_RATE_MARGIN
            self.peer_until = max(self.peer_until or until, until)
            self.asked_up_to = answer.up_to

    def promise(self, ask: PeerMessage, until: float) -> None:
        self.given[ask.boot] = (ask.seq, max(until, self.given.get(ask.boot, (0, until))[1]))

    def released(self, release: PeerMessage) -> None:
        given = self.given.get(release.boot)
        if given is not None and release.up_to >= given[0]:
            del self.given[release.boot]
            log.info("the peer stopped answering: promise ended")


@dataclass
class Relay:
    """The standby's memory of the relay (its own monotonic clock; docs/protocol.md)."""

    api_heard: float | None = None  # its last successful request to the API server, sent
    relayed_at: float | None = None  # seen by the operator no earlier than this (relayed_since)
    failed_since: float | None = None  # the first of the hellos failing in a row
