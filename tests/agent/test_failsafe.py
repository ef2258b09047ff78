"""Failsafe (docs/protocol.md): two agents of a pair on one ManualClock, each with its own view
of the API (cut separately) and a fake pod network between their peer links. The loops are
replayed step by step at their own periods; after every step at most one voicemail answers."""

from __future__ import annotations

import json
import logging

import pytest

from pairwarden.agent.peer import PeerLink, PeerMessage
from pairwarden.agent.runner import Agent, AgentConfig
from pairwarden.clock import ManualClock
from pairwarden.protocol import MEMBERS, Member, MemberReport
from pairwarden_testbed.voicemail.core import VoicemailCore

from .fakes import FakeKube, FakeVoicemail

SPEC = {"heartbeat": {"intervalMs": 1000, "missedBeforeFailover": 30, "renewalsPerWindow": 3}}
KEY = b"pair-peer-key"  # W = 30 s, R = 10 s, fence after 25 s, ask every 5 s


class Network:
    """The pod network between the two peer links: a member's link can be cut."""

    def __init__(self) -> None:
        self.agents: dict[str, Agent] = {}
        self.cut: set[str] = set()  # contacts unreachable, and whose sends are lost
        self.sent: list[tuple[str, bytes]] = []

    def transport(self, sender: str) -> Transport:
        return Transport(self, sender)


class Transport:
    def __init__(self, net: Network, sender: str) -> None:
        self.net, self.sender = net, sender

    async def send(self, contact: str, body: bytes) -> bytes | None:
        if contact in self.net.cut or self.sender in self.net.cut:
            raise OSError("no route to host")
        self.net.sent.append((contact, body))
        status, answer = await self.net.agents[contact].peer_request(body)
        return answer if status == 200 else None


class Pair:
    def __init__(self, key: bytes | None = KEY, spec: dict[str, object] | None = None) -> None:
        self.clock = ManualClock()
        self.net = Network()
        shared: FakeKube | None = None
        self.kube: dict[Member, FakeKube] = {}
        self.vm: dict[Member, FakeVoicemail] = {}
        self.agent: dict[Member, Agent] = {}
        for member in MEMBERS:
            kube = FakeKube()
            kube.spec = spec or SPEC
            if shared is None:
                shared = kube
            kube.leases = shared.leases  # one API server, a view each (cut separately)
            pod, contact = f"vm-{member}", f"{member}:8083"
            vm = FakeVoicemail(VoicemailCore(pod, self.clock))
            link = PeerLink("vm", member, pod, lambda: key, self.clock, self.net.transport(contact))
            config = AgentConfig(
                pair="vm", member=member, namespace="voice", pod=pod, peer_contact=contact
            )
            agent = Agent(config, kube, vm, self.clock, peer=link)
            self.kube[member], self.vm[member], self.agent[member] = kube, vm, agent
            self.net.agents[contact] = agent
        self.next_renewal = dict.fromkeys(MEMBERS, 0.0)
        self.next_ask = dict.fromkeys(MEMBERS, 0.0)
        self.both_answered = 0
        self.crashed: set[Member] = set()  # members whose loops no longer run (kill -9)

    def answering(self) -> list[Member]:
        return [m for m in MEMBERS if self.vm[m].core.answering()]

    def grant(self, member: Member, epoch: int) -> None:
        """The operator writes the active Lease (it can: it reaches the API server)."""
        self.kube["primary"].put("vm-active", holder=f"vm-{member}", transitions=epoch)

    async def start(self) -> None:
        for member in MEMBERS:
            self.kube["primary"].put(f"vm-{member}")
        self.grant("primary", 1)
        for _ in range(2):  # the second round reads the contact the other published
            for member in MEMBERS:
                agent = self.agent[member]
                await agent.refresh_settings()
                await agent.poll_once()
                assert await agent.renew_once()
        assert self.answering() == ["primary"]
        assert self.agent["primary"].failsafe.contact == "secondary:8083"
        assert self.agent["secondary"].failsafe.contact == "primary:8083"

    async def run(self, seconds: float, step: float = 1.0) -> list[list[Member]]:
        """The agents' loops for `seconds`: polls every step, renewals every R (retried every
        R/2 after a failure), the peer loop every (W - R/2)/5. Each step's answering set."""
        seen = []
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            self.clock.advance(step)
            now = self.clock.monotonic()
            for member in MEMBERS:
                if member in self.crashed:
                    continue
                agent = self.agent[member]
                if now >= self.next_renewal[member]:
                    ok = await agent.renew_once()
                    renew = agent.settings.sizing.renew_period
                    self.next_renewal[member] = now + (renew if ok else renew / 2)
                await agent.poll_once()
                if now >= self.next_ask[member]:
                    await agent.peer_once()
                    self.next_ask[member] = now + agent.peer_period
            answering = self.answering()
            assert len(answering) <= 1, f"two answering at {now}"
            seen.append(answering)
        return seen


def report(pair: Pair, member: Member) -> MemberReport:
    return MemberReport.from_annotations(dict(pair.kube[member].leases[f"vm-{member}"].annotations))


async def test_api_down_for_everyone_the_holder_keeps_answering_and_nothing_moves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pair = Pair()
    await pair.start()
    started = pair.clock.wall()
    for kube in pair.kube.values():
        kube.partitioned = True
    with caplog.at_level(logging.INFO, logger="pairwarden.agent"):
        seen = await pair.run(300)  # ten windows
    assert all(s == ["primary"] for s in seen)
    # each side says so once per stretch of asks, not at every ask (60 of them)
    said = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("asking the peer for promises") for m in said) == 1
    assert sum(m.startswith("promised the peer (epoch 1)") for m in said) == 1
    primary = pair.agent["primary"]
    assert primary.verdict.failsafe and "failsafe" in primary.verdict.reason
    assert primary.metrics.registry.get_sample_value("pairwarden_agent_failsafe") == 1
    assert pair.agent["secondary"].failsafe.given  # its promise, kept in memory
    for kube in pair.kube.values():
        kube.partitioned = False
    seen = await pair.run(30)
    assert all(s == ["primary"] for s in seen)
    assert not primary.verdict.failsafe and primary.verdict.answer
    assert primary.epoch == 1
    episode = report(pair, "primary")
    assert episode.failsafe_since is not None and episode.failsafe_ended is not None
    # it began once the renewal's own validity ran out (25 s after the last one was sent)
    assert 20 <= (episode.failsafe_since - started).total_seconds() <= 26
    assert episode.failsafe_ended > episode.failsafe_since
    assert report(pair, "secondary").failsafe_since is None


async def test_in_a_healthy_pair_nobody_asks_so_a_crashed_holder_is_not_waited_for() -> None:
    pair = Pair()
    await pair.start()
    await pair.run(120)
    assert pair.net.sent == []
    assert not pair.agent["secondary"].failsafe.given


async def test_holder_cut_from_the_api_hands_over_through_the_peer_link() -> None:
    pair = Pair()
    await pair.start()
    pair.kube["primary"].partitioned = True
    seen = await pair.run(31)  # the operator fails over W after its last sight of a renewal
    assert all(s == ["primary"] for s in seen)
    assert pair.agent["secondary"].failsafe.given  # it has promised
    pair.grant("secondary", 2)
    secondary = pair.agent["secondary"]
    secondary.on_active_lease(pair.kube["secondary"].leases["vm-active"])
    await secondary.evaluate()
    assert not pair.vm["secondary"].core.answering()  # named, but it promised
    assert "promised" in secondary.verdict.reason
    seen = await pair.run(8)
    # within one ask period the primary hears epoch 2, stops, and releases the promise
    assert seen[-1] == ["secondary"]
    handed = seen.index(["secondary"])
    assert handed < 6, seen  # through the link, not by waiting out the promise (25 s)
    assert pair.agent["primary"].failsafe.peer_epoch == 2
    assert not pair.agent["primary"].verdict.answer
    assert not secondary.failsafe.given


async def test_a_lost_release_leaves_the_new_holder_waiting_for_the_promise_to_lapse() -> None:
    pair = Pair()
    await pair.start()
    pair.kube["primary"].partitioned = True
    await pair.run(31)
    pair.grant("secondary", 2)
    secondary = pair.agent["secondary"]
    secondary.on_active_lease(pair.kube["secondary"].leases["vm-active"])
    pair.net.cut.add("primary:8083")  # now the holder is cut from both
    seen = await pair.run(30)
    assert seen[-1] == ["secondary"]
    # the primary fenced when its last promise ran out; the secondary answered only after its
    # own promise, counted from the later arrival, lapsed: never both
    first = seen.index(["secondary"])
    assert all(s == [] for s in seen[seen.index([]) : first])


async def test_holder_cut_from_both_fences_as_before() -> None:
    pair = Pair()
    await pair.start()
    pair.kube["primary"].partitioned = True
    pair.net.cut.add("primary:8083")
    seen = await pair.run(30)
    fenced = seen.index([])
    assert 24 <= fenced <= 26  # 25 s after its last renewal was sent, as without failsafe
    assert "renewal" in pair.agent["primary"].verdict.reason


async def test_the_peer_cut_from_the_api_changes_nothing() -> None:
    pair = Pair()
    await pair.start()
    pair.kube["secondary"].partitioned = True
    seen = await pair.run(120)
    assert all(s == ["primary"] for s in seen)
    assert pair.net.sent == []  # the holder renews: it never needs a promise


async def test_without_the_key_there_is_no_failsafe() -> None:
    pair = Pair(key=None)
    await pair.start()
    for kube in pair.kube.values():
        kube.partitioned = True
    seen = await pair.run(30)
    assert [] in seen and seen[-1] == []


async def test_forged_replayed_and_foreign_messages_are_refused() -> None:
    pair = Pair()
    await pair.start()
    secondary = pair.agent["secondary"]
    primary_link = pair.agent["primary"].failsafe.link
    assert primary_link is not None
    ask = primary_link.message("ask", 1).encode(KEY)
    assert (await secondary.peer_request(ask))[0] == 200
    assert (await secondary.peer_request(ask))[0] == 403  # replayed
    forged = primary_link.message("ask", 1).encode(b"the replication token")
    assert (await secondary.peer_request(forged))[0] == 403
    body = json.loads(primary_link.message("ask", 1).encode(KEY))
    body["epoch"] = 9  # tampered
    assert (await secondary.peer_request(json.dumps(body).encode()))[0] == 403
    stale = primary_link.message("ask", 1)
    pair.clock.advance(31)  # held back longer than the skew allowed
    assert (await secondary.peer_request(stale.encode(KEY)))[0] == 403
    own = pair.agent["secondary"].failsafe.link
    assert own is not None  # a message claiming to come from itself
    assert (await secondary.peer_request(own.message("ask", 1).encode(KEY)))[0] == 403
    assert (await secondary.peer_request(b"not json"))[0] == 403


async def test_an_old_release_never_frees_the_peer_from_a_newer_promise() -> None:
    pair = Pair()
    await pair.start()
    link = pair.agent["primary"].failsafe.link
    secondary = pair.agent["secondary"]
    assert link is not None
    first = link.message("ask", 1)
    release = link.message("release", 1, up_to=first.seq)
    second = link.message("ask", 1)  # asked again after that release was written
    for message in (first, second):
        assert (await secondary.peer_request(message.encode(KEY)))[0] == 200
    assert (await secondary.peer_request(release.encode(KEY)))[0] == 403  # arrived late
    assert secondary.failsafe.given
    # a restarted agent (a new boot) cannot release what the old one was promised: the old
    # one's voicemail may still answer on its last order
    reborn = PeerLink("vm", "primary", "vm-primary", lambda: KEY, pair.clock, link._transport)
    news = reborn.message("release", 1, up_to=99)
    assert (await secondary.peer_request(news.encode(KEY)))[0] == 200
    assert secondary.failsafe.given
    covering = link.message("release", 1, up_to=second.seq)
    assert (await secondary.peer_request(covering.encode(KEY)))[0] == 200
    assert not secondary.failsafe.given


async def test_a_peer_answering_or_ahead_does_not_promise_and_its_epoch_stops_the_asker() -> None:
    pair = Pair()
    await pair.start()
    primary, secondary = pair.agent["primary"], pair.agent["secondary"]
    link = secondary.failsafe.link
    assert link is not None
    # the primary answers: it refuses to promise the secondary anything
    status, raw = await primary.peer_request(link.message("ask", 1).encode(KEY))
    answer = PeerMessage.decode(raw, KEY)
    assert status == 200 and not answer.promise
    # an ask carrying a newer epoch stops the primary at once, whatever its Lease says
    await primary.peer_request(link.message("ask", 2).encode(KEY))
    assert not primary.verdict.answer and "newer epoch" in primary.verdict.reason
    assert not pair.vm["primary"].core.answering()


async def test_an_unreachable_voicemail_is_not_taken_for_stopped_the_promise_lapses() -> None:
    pair = Pair()
    await pair.start()
    pair.kube["primary"].partitioned = True
    await pair.run(31)
    pair.grant("secondary", 2)
    pair.agent["secondary"].on_active_lease(pair.kube["secondary"].leases["vm-active"])
    pair.vm["primary"].up = False  # its control port stops answering; its calls may not
    seen = await pair.run(30)
    assert seen[-1] == ["secondary"]
    assert pair.agent["primary"].failsafe.asked_up_to is not None  # never released
    # the primary's voicemail stopped on its last order's validity, the secondary answered
    # once its promise lapsed: later than a release would have allowed
    assert seen.index(["secondary"]) >= 5


async def test_a_restarted_agent_waits_out_what_its_previous_incarnation_may_have_promised() -> (
    None
):
    pair = Pair()
    await pair.start()
    pair.grant("secondary", 2)  # then its agent restarts; its Lease keeps the last report
    config = pair.agent["secondary"].config
    link = PeerLink("vm", "secondary", "vm-secondary", lambda: KEY, pair.clock, Transport(
        pair.net, "secondary:8083"))  # fmt: skip
    reborn = Agent(config, pair.kube["secondary"], pair.vm["secondary"], pair.clock, peer=link)
    await reborn.refresh_settings()
    await reborn.poll_once()
    assert await reborn.renew_once()
    assert not reborn.verdict.answer and "promised" in reborn.verdict.reason
    pair.clock.advance(24.9)
    assert await reborn.renew_once()
    assert not reborn.verdict.answer
    pair.clock.advance(0.1)  # W - R/2 after it started: any promise it gave has lapsed
    await reborn.poll_once()
    assert reborn.verdict.answer


async def test_a_restarted_holder_answers_at_once() -> None:
    pair = Pair()
    await pair.start()
    await pair.run(10)
    assert report(pair, "primary").answering
    config = pair.agent["primary"].config
    link = PeerLink("vm", "primary", "vm-primary", lambda: KEY, pair.clock, Transport(
        pair.net, "primary:8083"))  # fmt: skip
    reborn = Agent(config, pair.kube["primary"], pair.vm["primary"], pair.clock, peer=link)
    await reborn.refresh_settings()
    await reborn.poll_once()
    assert await reborn.renew_once()
    assert reborn.verdict.answer, reborn.verdict.reason


async def test_a_healthy_pair_gives_no_promise_so_a_crashed_holder_is_replaced_at_once() -> None:
    """Two renewals per window (the real node's sizing, W = 5 s, R = 2.5 s): the holder never
    asks while it renews, so when it is killed (agent and voicemail, kill -9) and the
    operator grants the standby (PodCrashed), the standby answers at that grant. Before,
    the holder asked in the last 0.6 s of each renewal period and the standby kept each
    promise 3.75 s: a crash there left nobody answering after the grant."""
    two_per_window = {"heartbeat": {"intervalMs": 500, "missedBeforeFailover": 10,
                                    "renewalsPerWindow": 2}}  # fmt: skip
    pair = Pair(spec=two_per_window)
    await pair.start()
    seen = await pair.run(30, step=0.05)  # twelve renewal periods
    assert all(s == ["primary"] for s in seen)
    asks = [b for _, b in pair.net.sent if json.loads(b).get("kind") == "ask"]
    assert asks == [] and not pair.agent["secondary"].failsafe.given
    pair.crashed.add("primary")
    pair.vm["primary"].up = False
    pair.vm["primary"].core.set_role(False, 1, 0.0)  # the process is gone
    pair.grant("secondary", 2)
    secondary = pair.agent["secondary"]
    secondary.on_active_lease(pair.kube["secondary"].leases["vm-active"])  # its watch's event
    await secondary.evaluate()
    assert pair.answering() == ["secondary"]
