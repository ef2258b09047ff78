"""Proof of death from the kernel (docs/protocol.md): the standby's probe of the holder's two
ports, judged by pure rules (agent.core) and asked for real (agent.probe) against real sockets
on loopback; and the agent's steps on a ManualClock with a scripted prober."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace
from typing import Any

import pytest

from pairwarden.agent.adapters import sip_final_status
from pairwarden.agent.core import (
    PROBE_CONFIRM,
    PROBE_PERIOD,
    PROBE_REFUSALS,
    FenceInputs,
    PortAnswer,
    ProbeState,
    ProbeTarget,
    decide_answer,
    gone_claim,
    next_probe_delay,
    probe_armed,
    probe_step,
    probe_target,
    proves_gone,
)
from pairwarden.agent.probe import probe_ports, sip_answer, tcp_answer
from pairwarden.agent.runner import Agent, AgentConfig
from pairwarden.agent.state import AgentState
from pairwarden.clock import ManualClock
from pairwarden.protocol import (
    ANNOTATION_ACTIVE_CONTACT,
    HeartbeatSizing,
    MemberReport,
    PeerGone,
)
from pairwarden_testbed.voicemail.core import VoicemailCore

from .fakes import FakeKube, FakeVoicemail

TARGET = ProbeTarget(4, "vm-0", "10.0.0.7", 8083, 5060)
OPEN: tuple[PortAnswer, PortAnswer] = ("open", "open")
DEAD: tuple[PortAnswer, PortAnswer] = ("refused", "refused")


def rounds(*answers: tuple[PortAnswer, PortAnswer]) -> ProbeState:
    state = ProbeState()
    for peer, sip in answers:
        state = probe_step(state, TARGET, peer, sip)
    return state


@pytest.mark.parametrize(
    ("answers", "gone"),
    [
        ((OPEN, DEAD, DEAD), True),  # a kill -9 of both containers
        ((OPEN, DEAD), False),  # one round: not yet (PROBE_REFUSALS in a row)
        ((DEAD, DEAD, DEAD), False),  # never seen served: a port bound elsewhere proves nothing
        ((("open", "silent"), ("silent", "open"), DEAD, DEAD), True),  # served, seen apart
        ((("open", "silent"), DEAD, DEAD), False),  # the SIP port never answered here
        ((OPEN, DEAD, OPEN, DEAD), False),  # refusals not in a row: a restart, no proof
        ((OPEN, ("refused", "open"), ("refused", "open")), False),  # the agent alone died
        ((OPEN, ("open", "refused"), ("open", "refused")), False),  # the voicemail alone
        ((OPEN, ("silent", "silent"), ("silent", "silent")), False),  # SIGSTOP, partition
        ((OPEN, ("refused", "silent"), ("refused", "silent")), False),  # a hung voicemail
        ((OPEN, DEAD, ("silent", "refused"), DEAD), False),  # a timeout breaks the row
    ],
)
def test_only_both_ports_refused_in_a_row_after_being_served_prove_death(
    answers: tuple[tuple[PortAnswer, PortAnswer], ...], gone: bool
) -> None:
    assert PROBE_REFUSALS == 2
    assert proves_gone(rounds(*answers)) is gone


@pytest.mark.parametrize(
    ("answers", "armed"),
    [
        ((), False),  # nothing probed yet: a crash now waits for the kubelet or W
        ((OPEN,), True),
        ((DEAD,), False),  # refused from the first round: never seen served
        ((("open", "silent"),), False),  # the SIP port not answered yet
        ((("open", "silent"), ("silent", "open")), True),  # each seen served, apart
        ((OPEN, DEAD, DEAD), True),  # stays armed: the proof needs it
    ],
)
def test_the_probe_is_armed_once_both_ports_were_seen_served(
    answers: tuple[tuple[PortAnswer, PortAnswer], ...], armed: bool
) -> None:
    assert probe_armed(rounds(*answers)) is armed


@pytest.mark.parametrize(
    ("answers", "spent", "delay"),
    [
        ((OPEN,), 0.03, PROBE_PERIOD - 0.03),  # a period from the round's start
        ((OPEN,), 0.5, 0.0),  # a round slower than a period: the next at once
        ((OPEN, DEAD), 0.01, PROBE_CONFIRM),  # refused once: confirm at once, not a period on
        ((OPEN, DEAD, DEAD), 0.01, PROBE_PERIOD - 0.01),  # proven: the claim is made
        ((DEAD,), 0.01, PROBE_CONFIRM),  # never served: confirming costs nothing, proves nothing
    ],
)
def test_a_refusal_is_confirmed_at_once(
    answers: tuple[tuple[PortAnswer, PortAnswer], ...], spent: float, delay: float
) -> None:
    assert next_probe_delay(rounds(*answers), spent) == pytest.approx(delay)


def test_a_new_target_starts_afresh() -> None:
    """Another holder, epoch or address: what was seen served was another pod's."""
    served = rounds(OPEN, DEAD)
    moved = ProbeTarget(5, "vm-0", "10.0.0.7", 8083, 5060)
    after = probe_step(served, moved, "refused", "refused")
    assert after == ProbeState(moved, False, False, 1)
    assert not proves_gone(probe_step(after, moved, "refused", "refused"))


def test_the_claim_names_epoch_pod_and_address() -> None:
    seen = ManualClock().wall()
    assert gone_claim(rounds(OPEN, DEAD), seen) is None
    assert gone_claim(rounds(OPEN, DEAD, DEAD), seen) == PeerGone(4, "vm-0", "10.0.0.7", seen)


@pytest.mark.parametrize(
    ("holder", "peer", "sip", "expected"),
    [
        ("vm-0", "10.0.0.7:8083", "10.0.0.7:5060", TARGET),
        ("vm-1", "10.0.0.7:8083", "10.0.0.7:5060", None),  # this member holds the role
        ("", "10.0.0.7:8083", "10.0.0.7:5060", None),  # nobody holds it
        (None, "10.0.0.7:8083", "10.0.0.7:5060", None),  # the Lease not seen yet
        ("vm-0", "", "10.0.0.7:5060", None),  # no peer contact known
        ("vm-0", "10.0.0.7:8083", "", None),  # no call contact on the active Lease
        ("vm-0", "10.0.0.7:8083", "10.0.0.8:5060", None),  # two addresses: two pods maybe
        ("vm-0", "vm.example:8083", "vm.example:5060", None),  # a name may resolve elsewhere
    ],
)
def test_only_a_standby_probes_one_address_both_contacts_name(
    holder: str | None, peer: str, sip: str, expected: ProbeTarget | None
) -> None:
    assert probe_target(holder, "vm-1", 4, peer, sip) == expected


def test_an_ipv6_holder_is_probed_by_its_address() -> None:
    target = probe_target("vm-0", "vm-1", 4, "[fd00::7]:8083", "[fd00::7]:5060")
    assert target == ProbeTarget(4, "vm-0", "fd00::7", 8083, 5060)


SIZING = HeartbeatSizing.from_spec()


def fence(claimed: int | None, epoch: int = 4) -> FenceInputs:
    return FenceInputs(
        pod="vm-0", holder="vm-0", epoch=epoch, last_renewal_sent=100.0,
        holder_checked=100.0, service_up=True, licensing=None, claimed_gone=claimed,
    )  # fmt: skip


def test_a_member_claimed_gone_at_its_epoch_does_not_answer_at_it() -> None:
    """Its processes before this start were seen gone: the operator moves the role at that
    epoch, so answering at it would make two answer."""
    assert decide_answer(fence(None), SIZING, 101.0).answer
    assert not decide_answer(fence(4), SIZING, 101.0).answer
    assert decide_answer(fence(3), SIZING, 101.0).answer  # a claim from before: moot
    assert decide_answer(fence(4, epoch=6), SIZING, 101.0).answer  # granted again since


# ---- against real sockets on loopback ------------------------------------------------------


def free_port(kind: int) -> int:
    """A port nothing listens on (bound, then closed): the kernel refuses it."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class SipServer(asyncio.DatagramProtocol):
    """Answers every OPTIONS 200, as a voicemail server (or any SIP server) does."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        call_id = next(
            line.split(":", 1)[1].strip()
            for line in data.decode().split("\r\n")
            if line.lower().startswith("call-id:")
        )
        reply = f"SIP/2.0 200 OK\r\nCall-ID: {call_id}\r\nContent-Length: 0\r\n\r\n".encode()
        assert sip_final_status(reply, call_id) == 200
        self.transport.sendto(reply, addr)


async def test_a_closed_tcp_port_is_refused_a_listening_one_open() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await tcp_answer("127.0.0.1", port, 0.5) == "open"
    assert await tcp_answer("127.0.0.1", free_port(socket.SOCK_STREAM), 0.5) == "refused"


async def test_a_stopped_listener_is_not_refused() -> None:
    """A hung process (SIGSTOP) keeps its listening socket: the kernel completes the
    handshake into the backlog, so the connect succeeds; never a refusal."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # nobody ever accepts
        port = listener.getsockname()[1]
        assert await tcp_answer("127.0.0.1", port, 0.5) == "open"


async def test_a_closed_udp_port_is_refused_a_sip_server_open_a_mute_one_silent() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(SipServer, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        assert await sip_answer("127.0.0.1", port, 0.5) == "open"
    finally:
        transport.close()
    assert await sip_answer("127.0.0.1", free_port(socket.SOCK_DGRAM), 0.5) == "refused"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:  # bound, never reads
        mute.bind(("127.0.0.1", 0))
        assert await sip_answer("127.0.0.1", mute.getsockname()[1], 0.2) == "silent"


class DiesOnFirstRequest(asyncio.DatagramProtocol):
    """A SIP server killed while our OPTIONS is in flight: it reads it and dies unanswering."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.close()


async def test_an_options_in_flight_at_the_death_is_resent_and_refused() -> None:
    """Unanswered, the request is resent one probe period later and meets the ICMP answer:
    refused within the round, not silent after the whole budget (on the real node such a
    round broke the row of refusals, and the claim came 0.6-0.9 s after the kill)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        DiesOnFirstRequest, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    began = loop.time()
    assert await sip_answer("127.0.0.1", port, 0.5) == "refused"
    assert loop.time() - began < 0.45


async def test_a_round_probes_both_ports_at_once() -> None:
    tcp, udp = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    target = ProbeTarget(1, "vm-0", "127.0.0.1", tcp, udp)
    assert await probe_ports(target, 0.5) == ("refused", "refused")


# ---- the agent's steps ------------------------------------------------------------------


class Script:
    """A prober answering from a script, one round per call."""

    def __init__(self) -> None:
        self.answers: list[tuple[PortAnswer, PortAnswer]] = []
        self.asked: list[ProbeTarget] = []

    async def __call__(self, target: ProbeTarget, budget: float) -> tuple[PortAnswer, PortAnswer]:
        self.asked.append(target)
        return self.answers.pop(0)


def annotate(kube: FakeKube, name: str, annotations: dict[str, str]) -> None:
    kube.leases[name] = replace(kube.leases[name], annotations=annotations)


def standby_rig(claim: PeerGone | None = None) -> tuple[Agent, FakeKube, Script]:
    clock, kube, script = ManualClock(), FakeKube(), Script()
    kube.spec = {"heartbeat": {"intervalMs": 1000, "missedBeforeFailover": 30}}
    vm = FakeVoicemail(VoicemailCore("vm-1", clock))
    agent = Agent(
        AgentConfig(pair="vm", member="secondary", namespace="voice", pod="vm-1"),
        kube, vm, clock, state=AgentState(None), prober=script,
    )  # fmt: skip
    kube.put("vm-secondary")
    kube.put("vm-primary", holder="vm-0")
    other = MemberReport(peer_contact="10.0.0.7:8083", peer_gone=claim)
    annotate(kube, "vm-primary", other.to_annotations())
    kube.put("vm-active", holder="vm-0", transitions=4)
    annotate(kube, "vm-active", {ANNOTATION_ACTIVE_CONTACT: "10.0.0.7:5060"})
    return agent, kube, script


async def test_the_standby_claims_at_once_and_keeps_the_claim_for_its_epoch() -> None:
    agent, kube, script = standby_rig()
    await agent.refresh_settings()
    await agent.poll_once()
    assert await agent.renew_once()  # reads the holder's Lease (its peer contact, its pod)
    agent.on_active_lease(kube.leases["vm-active"])
    script.answers = [OPEN, DEAD, DEAD, OPEN]
    await agent.probe_once()
    await agent.probe_once()
    assert agent.report().peer_gone is None
    await agent.probe_once()
    claim = agent.report().peer_gone
    assert claim == PeerGone(4, "vm-0", "10.0.0.7", agent.clock.wall())
    assert script.asked[0] == TARGET
    # An urgent field: the renew loop writes it at once (one write), not at the relay's pace.
    inputs = agent.relay_inputs()
    assert inputs.urgent
    assert await agent.renew_once()
    written = MemberReport.from_annotations(dict(kube.leases["vm-secondary"].annotations))
    assert written.peer_gone == claim
    await agent.probe_once()  # the holder back (the kubelet restarted it): the claim stays
    assert agent.report().peer_gone == claim
    # Granted: the epoch moved, the claim is moot and leaves the report.
    kube.put("vm-active", holder="vm-1", transitions=5)
    agent.on_active_lease(kube.leases["vm-active"])
    assert agent.report().peer_gone is None


async def test_the_probe_says_once_per_epoch_when_it_is_armed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The line operators (and e2e/test_failover.py) read to know a crash is now proven by
    the kernel: once per holder and epoch, when both ports were first seen served."""
    agent, kube, script = standby_rig()
    await agent.refresh_settings()
    await agent.poll_once()
    assert await agent.renew_once()
    agent.on_active_lease(kube.leases["vm-active"])
    script.answers = [DEAD, ("open", "silent"), ("silent", "open"), OPEN]
    with caplog.at_level(logging.INFO, logger="pairwarden.agent"):
        for _ in range(4):
            await agent.probe_once()
    armed = [r.getMessage() for r in caplog.records if "probe armed" in r.getMessage()]
    assert armed == [
        "probe armed: the holder vm-0 at 10.0.0.7 served both its ports at epoch 4 (a refusal "
        "of both now proves its processes gone)"
    ]


async def test_the_restarted_holder_finds_the_claim_and_does_not_answer_at_its_epoch() -> None:
    """The old holder's containers restarted before the operator moved the role: its first
    sight reads the other member's Lease, finds the claim against its pod at the epoch that
    still names it, and waits for the move instead of answering beside the new holder."""
    clock, kube = ManualClock(), FakeKube()
    kube.spec = {"heartbeat": {"intervalMs": 1000, "missedBeforeFailover": 30}}
    vm = FakeVoicemail(VoicemailCore("vm-0", clock))
    agent = Agent(
        AgentConfig(pair="vm", member="primary", namespace="voice", pod="vm-0"),
        kube, vm, clock, state=AgentState(None),
    )  # fmt: skip
    kube.put("vm-primary")
    kube.put("vm-secondary", holder="vm-1")
    claim = MemberReport(peer_gone=PeerGone(4, "vm-0", "10.0.0.7"))
    annotate(kube, "vm-secondary", claim.to_annotations())
    kube.put("vm-active", holder="vm-0", transitions=4)
    await agent.refresh_settings()
    await agent.poll_once()
    assert await agent.renew_once()
    agent.on_active_lease(kube.leases["vm-active"])
    await agent.evaluate()
    assert not agent.verdict.answer and "gone" in agent.verdict.reason
    assert not vm.core.answering()
    kube.put("vm-active", holder="vm-0", transitions=6)  # granted again later: answers
    agent.on_active_lease(kube.leases["vm-active"])
    await agent.evaluate()
    assert agent.verdict.answer


async def test_a_claim_ends_the_promises_given_to_the_dead_holder() -> None:
    """The holder asked for a promise (its renewal late) and then died: its processes gone, it
    can answer nothing, so the standby's promise ends with the claim instead of keeping the
    new holder silent until it lapses (W - R/2) after its grant."""
    agent, kube, script = standby_rig()
    await agent.refresh_settings()
    await agent.poll_once()
    assert await agent.renew_once()
    agent.on_active_lease(kube.leases["vm-active"])
    agent.failsafe.given["their-boot"] = (7, agent.clock.monotonic() + 25.0)
    script.answers = [OPEN, DEAD]
    await agent.probe_once()
    await agent.probe_once()
    assert agent.failsafe.given  # not proven yet: the promise stands
    script.answers = [DEAD]
    await agent.probe_once()
    assert agent.claim is not None
    assert not agent.failsafe.given
    kube.put("vm-active", holder="vm-1", transitions=5)
    agent.on_active_lease(kube.leases["vm-active"])
    assert await agent.renew_once()
    await agent.evaluate()
    assert agent.verdict.answer, agent.verdict.reason
