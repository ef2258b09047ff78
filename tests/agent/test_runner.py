"""The agent's steps driven by hand on a ManualClock, with the real voicemail rules behind a
fake control port and an in-memory API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pairwarden.agent.core import HOLD_TRIGGERING_CALL, StandbyCalls
from pairwarden.agent.kubeio import LeaseView
from pairwarden.agent.runner import Agent, AgentConfig
from pairwarden.agent.state import STATE_FILE, AgentState
from pairwarden.clock import ManualClock
from pairwarden.protocol import ANNOTATION_ACTIVE_CONTACT, Member, MemberReport
from pairwarden_testbed.voicemail.core import VoicemailCore

from .fakes import NO_HOLD, FakeKube, FakeVoicemail

SPEC = {"heartbeat": {"intervalMs": 1000, "missedBeforeFailover": 30, "renewalsPerWindow": 3}}


class Rig:
    def __init__(self, member: Member = "primary", state_dir: Path | None = None) -> None:
        self.clock = ManualClock()
        self.kube = FakeKube()
        self.kube.spec = SPEC
        self.pod = f"vm-{member}"
        self.vm = FakeVoicemail(VoicemailCore(self.pod, self.clock))
        self.agent = Agent(
            AgentConfig(pair="vm", member=member, namespace="voice", pod=self.pod),
            self.kube, self.vm, self.clock, state=AgentState(state_dir),
        )  # fmt: skip

    def report(self) -> MemberReport:
        return MemberReport.from_annotations(
            dict(self.kube.leases[self.agent.member_lease].annotations)
        )

    async def start_active(self) -> None:
        self.kube.put("vm-primary")
        self.kube.put("vm-secondary")
        self.kube.put("vm-active", holder=self.pod, transitions=1)
        await self.agent.refresh_settings()
        await self.agent.poll_once()
        assert await self.agent.renew_once()


async def test_waits_for_its_lease_then_reports_and_answers_when_named() -> None:
    rig = Rig()
    await rig.agent.poll_once()
    assert not await rig.agent.renew_once()  # the operator has not created the Lease yet
    rig.kube.put("vm-primary")
    assert await rig.agent.renew_once()
    lease = rig.kube.leases["vm-primary"]
    assert lease.holder == "vm-primary"
    report = rig.report()
    assert report.service_up and not report.answering and report.started == rig.clock.wall()
    assert not rig.vm.core.answering()  # no active Lease: nobody answers
    rig.kube.put("vm-active", holder="vm-primary", transitions=1)
    rig.agent.on_active_lease(rig.kube.leases["vm-active"])
    await rig.agent.evaluate()
    assert rig.vm.core.answering() and rig.vm.core.epoch == 1
    assert rig.vm.orders[-1] == (True, 1, 25.0)


async def test_partition_fences_before_the_window_and_heals() -> None:
    rig = Rig()
    await rig.start_active()
    assert rig.vm.core.answering()
    rig.kube.partitioned = True
    rig.clock.advance(10)
    assert not await rig.agent.renew_once()
    rig.clock.advance(14.9)
    await rig.agent.poll_once()
    assert rig.vm.core.answering()
    rig.clock.advance(0.1)  # 25 s = W - R/2 after the last renewal was sent
    await rig.agent.poll_once()
    assert not rig.vm.core.answering()
    assert "renewal" in rig.agent.verdict.reason
    # Meanwhile the operator moved the active Lease; after healing the agent learns it from the
    # read that follows its first successful renewal, not from its stalled watch.
    rig.kube.partitioned = False
    rig.kube.put("vm-active", holder="vm-secondary", transitions=2)
    assert await rig.agent.renew_once()
    assert not rig.vm.core.answering() and rig.vm.core.epoch == 2


async def test_the_voicemail_stops_by_itself_if_the_agent_hangs() -> None:
    rig = Rig()
    await rig.start_active()
    rig.clock.advance(25)  # no agent step runs at all
    assert not rig.vm.core.answering()


async def test_renewals_extend_the_order() -> None:
    rig = Rig()
    await rig.start_active()
    for _ in range(5):
        rig.clock.advance(10)
        assert await rig.agent.renew_once()
        await rig.agent.poll_once()
    assert rig.vm.core.answering()
    assert rig.vm.orders[-1] == (True, 1, 25.0)


async def test_service_down_is_an_urgent_change() -> None:
    rig = Rig()
    await rig.start_active()
    rig.agent._wake.clear()
    rig.vm.up = False
    await rig.agent.poll_once()
    assert rig.agent._wake.is_set()
    assert await rig.agent.renew_once()
    assert not rig.report().service_up
    assert not rig.agent.verdict.answer


async def test_hearing_a_new_epoch_is_reported_at_once_even_when_not_answering() -> None:
    """The standby, not answering, hears a revoke (nobody at epoch 2): nothing else in its
    report changes, yet the new epoch is its acknowledgement, written at once."""
    rig = Rig("secondary")
    rig.kube.put("vm-primary")
    rig.kube.put("vm-secondary")
    rig.kube.put("vm-active", holder="vm-primary", transitions=1)
    await rig.agent.refresh_settings()
    for _ in range(2):  # the first renewal reads the active Lease after it writes
        await rig.agent.poll_once()
        assert await rig.agent.renew_once()
    assert not rig.report().answering and rig.report().epoch == 1
    rig.agent._wake.clear()
    rig.agent.on_active_lease(LeaseView("vm-active", holder="", transitions=2))
    await rig.agent.poll_once()
    assert rig.agent._wake.is_set()
    assert await rig.agent.renew_once()
    assert rig.report().epoch == 2 and not rig.report().answering


async def test_a_new_holder_demotes_at_once_keeping_calls() -> None:
    rig = Rig()
    await rig.start_active()
    call = rig.vm.core.offer("alice").call
    rig.agent.on_active_lease(LeaseView("vm-active", holder="vm-secondary", transitions=2))
    await rig.agent.evaluate()
    assert not rig.vm.core.answering() and rig.vm.core.epoch == 2
    assert call is not None and rig.vm.core.calls_in_progress == 1
    # A late event of the older epoch changes nothing.
    rig.agent.on_active_lease(LeaseView("vm-active", holder="vm-primary", transitions=1))
    await rig.agent.evaluate()
    assert not rig.vm.core.answering() and rig.agent.epoch == 2


async def test_inactive_calls_are_reported_at_once() -> None:
    rig = Rig()
    await rig.start_active()
    rig.agent.on_active_lease(LeaseView("vm-active", holder="vm-secondary", transitions=2))
    await rig.agent.poll_once()
    rig.agent._wake.clear()
    assert not rig.vm.core.offer("bob").answered
    await rig.agent.poll_once()
    assert rig.agent._wake.is_set()
    await rig.agent.renew_once()
    assert rig.report().inactive_calls == 1


async def test_excessive_cpu_is_judged_over_the_duration() -> None:
    rig = Rig()
    await rig.start_active()
    rig.vm.cpu = 99.0
    await rig.agent.poll_once()
    rig.clock.advance(59)
    await rig.agent.poll_once()
    assert not rig.agent.cpu_excessive
    rig.clock.advance(1)
    rig.agent._wake.clear()
    await rig.agent.poll_once()
    assert rig.agent.cpu_excessive and rig.agent._wake.is_set()


async def test_secondary_licensing_contact_is_persisted_and_enforced(tmp_path: Path) -> None:
    rig = Rig("secondary", tmp_path)
    await rig.start_active()
    assert rig.vm.core.answering()
    rig.agent.on_primary_lease(LeaseView("vm-primary", renew_time="t1"))
    assert rig.agent.clocks.primary_contact is None  # a first sight proves nothing
    rig.clock.advance(10)
    rig.agent.on_primary_lease(LeaseView("vm-primary", renew_time="t2"))
    contact = rig.clock.wall()
    assert rig.agent.clocks.primary_contact == contact
    assert json.loads((tmp_path / STATE_FILE).read_text())["primaryContact"]
    await rig.agent.renew_once()
    assert rig.report().primary_contact == contact
    # A restarted agent remembers the contact; 60 days later it stops answering.
    again = Rig("secondary", tmp_path)
    assert again.agent.clocks.primary_contact == contact
    rig.clock.jump_wall(60 * 86400)
    await rig.agent.poll_once()
    assert not rig.vm.core.answering() and "licensing" in rig.agent.verdict.reason


async def test_secondary_never_in_contact_stops_after_the_grace() -> None:
    rig = Rig("secondary")
    await rig.start_active()
    rig.clock.jump_wall(4 * 3600)
    await rig.agent.poll_once()
    assert not rig.vm.core.answering()


async def test_clean_stop_releases_the_lease_and_stops_answering() -> None:
    rig = Rig()
    await rig.start_active()
    await rig.agent.shutdown()
    assert not rig.vm.core.answering()
    lease = rig.kube.leases["vm-primary"]
    assert lease.holder == ""
    assert not rig.report().agent_running


@pytest.mark.parametrize("failure", ["partitioned", "missing"])
async def test_clean_stop_survives_an_unreachable_api(failure: str) -> None:
    rig = Rig()
    await rig.start_active()
    if failure == "partitioned":
        rig.kube.partitioned = True
    else:
        del rig.kube.leases["vm-primary"]
    await rig.agent.shutdown()
    assert not rig.vm.core.answering()


def _active(holder: str, epoch: int, contact: str) -> LeaseView:
    return LeaseView(
        "vm-active", holder=holder, transitions=epoch,
        annotations={ANNOTATION_ACTIVE_CONTACT: contact},
    )  # fmt: skip


async def test_the_standby_redirects_to_the_contact_the_active_lease_names() -> None:
    """Force Failover off: a call reaching the member that is not active goes to the holder's
    contact, learnt from the active Lease (the operator copies it from the holder's report)."""
    rig = Rig("secondary")
    rig.agent = Agent(
        AgentConfig(pair="vm", member="secondary", namespace="voice", pod="vm-secondary",
                    call_contact="10.0.0.7:5060"),
        rig.kube, rig.vm, rig.clock,
    )  # fmt: skip
    rig.kube.put("vm-secondary")
    await rig.agent.poll_once()
    assert await rig.agent.renew_once()
    assert rig.report().call_contact == "10.0.0.7:5060"  # what the operator copies when it flips
    rig.agent.on_active_lease(_active("vm-primary", 1, "10.0.0.6:5060"))
    await rig.agent.evaluate()
    assert rig.vm.standby[-1] == StandbyCalls(redirect="10.0.0.6:5060")
    assert rig.vm.core.redirect == "10.0.0.6:5060"
    # A new holder with a new contact is a new order at once.
    rig.agent.on_active_lease(_active("vm-primary", 2, "10.0.0.8:5060"))
    await rig.agent.evaluate()
    assert rig.vm.core.redirect == "10.0.0.8:5060"
    # A contact no caller can be sent to (a foreign writer, CR LF) is no contact: refuse.
    rig.agent.on_active_lease(_active("vm-primary", 3, "10.0.0.8:5060\r\nX: y"))
    await rig.agent.evaluate()
    assert rig.vm.core.redirect is None and rig.vm.standby[-1] == StandbyCalls()
    # This member becomes the holder: it answers, and redirects nobody to itself.
    rig.agent.on_active_lease(_active("vm-secondary", 4, "10.0.0.7:5060"))
    await rig.agent.evaluate()
    assert rig.vm.core.answering() and rig.vm.standby[-1] == StandbyCalls()


async def test_force_failover_holds_calls_on_the_standby() -> None:
    rig = Rig("secondary")
    rig.kube.spec = {**SPEC, "forceFailoverOnInactiveCall": True}
    await rig.agent.refresh_settings()
    rig.kube.put("vm-secondary")
    await rig.agent.poll_once()
    assert await rig.agent.renew_once()
    rig.agent.on_active_lease(_active("vm-primary", 1, "10.0.0.6:5060"))
    await rig.agent.evaluate()
    assert rig.vm.standby[-1] == StandbyCalls(hold_for=HOLD_TRIGGERING_CALL)
    assert rig.vm.core.hold_for == HOLD_TRIGGERING_CALL and rig.vm.core.redirect is None


async def test_an_agent_started_before_its_pair_reads_the_spec_when_its_lease_appears() -> None:
    """Pods usually start before the FailoverPair exists; the operator creates the member
    Lease once it does, so that is when the spec is there to read (not 30 s later)."""
    rig = Rig("secondary")
    rig.kube.spec = None
    await rig.agent.refresh_settings()
    assert not rig.agent.settings.force_failover and not rig.agent.spec_seen
    rig.kube.spec = {**SPEC, "forceFailoverOnInactiveCall": True}
    rig.kube.put("vm-secondary")
    await rig.agent.poll_once()
    assert await rig.agent.renew_once()
    assert rig.agent.settings.force_failover and rig.agent.spec_seen


async def test_an_order_refused_for_a_newer_epoch_is_sent_again_once_that_one_expired() -> None:
    """The issue's brick from the agent's side: the standby's process obeyed an order with a
    huge epoch for 2 s (anyone holding the key); the agent's own order at the Lease's epoch is
    refused while that one is in force, and obeyed after, not given up for good."""
    rig = Rig("secondary")
    rig.kube.put("vm-primary")
    rig.kube.put("vm-secondary")
    rig.kube.put("vm-active", holder="vm-primary", transitions=1)
    await rig.agent.refresh_settings()
    await rig.agent.poll_once()
    assert await rig.agent.renew_once()
    rig.vm.core.set_role(True, 1_000_000_000, valid_for=2.0)
    rig.kube.put("vm-active", holder="vm-secondary", transitions=2)
    rig.agent.on_active_lease(rig.kube.leases["vm-active"])
    await rig.agent.evaluate()
    assert rig.vm.orders[-1][:2] == (True, 2) and rig.vm.core.epoch == 1_000_000_000
    sent = len(rig.vm.orders)
    rig.clock.advance(0.5)
    await rig.agent.poll_once()
    assert len(rig.vm.orders) == sent  # not hammered: once per REFUSED_RETRY
    rig.clock.advance(1.5)  # the foreign order has run out
    await rig.agent.poll_once()
    assert rig.vm.core.answering() and rig.vm.core.epoch == 2


class SlowReadKube(FakeKube):
    """A slow API server: reads of the active Lease wait until the test lets them answer."""

    def __init__(self) -> None:
        super().__init__()
        self.hold: asyncio.Event | None = None

    async def get_lease(self, name: str) -> LeaseView | None:
        if name == "vm-active" and self.hold is not None:
            await self.hold.wait()
        return await super().get_lease(name)


async def test_the_order_carries_the_validity_of_the_read_that_follows_a_renewal() -> None:
    """Every request slow (the chaos harness's 0.15 s at W = 2 s): a poll judged between a
    renewal and the read of the active Lease after it, and ordered the voicemail with the
    validity of the *previous* read; the read then extended the agent's own deadline but no
    new order followed, so the process stopped by itself before the agent fenced (a call
    refused, `answer=True` throughout). The order is renewed whenever the deadline it
    carries moves, so the process holds exactly as long as the agent's rule."""
    rig = Rig()
    rig.kube = SlowReadKube()
    rig.kube.spec = SPEC
    rig.agent.kube = rig.kube
    await rig.start_active()  # renewal and read at t = 0: valid until 25 (W - R/2)
    rig.clock.advance(10)
    rig.kube.hold = asyncio.Event()
    renewal = asyncio.create_task(rig.agent.renew_once())  # sent at 10; its read hangs
    await asyncio.sleep(0)
    rig.clock.advance(2)
    await rig.agent.poll_once()  # the renewal landed, the read after it has not answered
    rig.kube.hold.set()
    assert await renewal  # the read: confirmed as of 10
    deadline = rig.agent.verdict.valid_for
    assert deadline == pytest.approx(23.0)  # 10 + 25 - 12
    rig.clock.advance(deadline - 0.01)  # no agent step: the process keeps its last order
    assert rig.vm.core.answering()
    rig.clock.advance(0.01)
    assert not rig.vm.core.answering()


class SlowVoicemail(FakeVoicemail):
    """A control port that answers orders only when the test lets it; counts orders in flight."""

    def __init__(self, core: VoicemailCore) -> None:
        super().__init__(core)
        self.answer = asyncio.Event()
        self.in_flight = self.most_in_flight = 0

    async def order(
        self, active: bool, epoch: int, valid_for: float = 0.0, standby: StandbyCalls = NO_HOLD
    ) -> int | None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await self.answer.wait()
        self.in_flight -= 1
        return await super().order(active, epoch, valid_for, standby)


async def test_judgements_that_overlap_give_their_orders_one_after_the_other() -> None:
    """The poll and the renewal judge at once while the process is slow to answer: the
    second waits for the first's order, so the process never gets two at once, which it may
    take out of turn (refusing the older with 409)."""
    rig = Rig()
    rig.vm = SlowVoicemail(rig.vm.core)
    rig.agent.vm = rig.vm
    rig.vm.answer.set()
    await rig.start_active()
    rig.vm.answer.clear()
    rig.clock.advance(10)
    renewal = asyncio.create_task(rig.agent.renew_once())  # a new deadline: an order
    await asyncio.sleep(0)
    rig.clock.advance(0.1)
    poll = asyncio.create_task(rig.agent.poll_once())  # judges while that order is out
    for _ in range(5):
        await asyncio.sleep(0)
    rig.vm.answer.set()
    assert await renewal
    await poll
    assert rig.vm.most_in_flight == 1
    assert rig.vm.orders[-1][:2] == (True, 1) and rig.vm.core.answering()
