"""The relay between two real agents (docs/protocol.md, "The standby's heartbeat rides the
holder's renewal"): the failsafe harness's pair, each agent's renew loop replayed through the
pure rule (`must_renew_own_lease`) as `Agent._renew_loop` does, on one ManualClock."""

from __future__ import annotations

from pairwarden.agent.core import hello_period, must_renew_own_lease, relay_limit
from pairwarden.protocol import MEMBERS, Member

from .test_failsafe import Pair, report

R = 10.0  # the harness's sizing: W = 30 s


async def beat(pair: Pair, seconds: float, step: float = 0.5) -> dict[Member, int]:
    """Each agent's heartbeat loop for `seconds`: its own renewal when the rule says so
    (retried every R/2 after a failure), otherwise a hello every hello period. Returns
    the member Lease writes each made."""
    writes = {m: len(pair.kube[m].writes) for m in MEMBERS}
    due = dict.fromkeys(MEMBERS, 0.0)
    end = pair.clock.monotonic() + seconds
    while pair.clock.monotonic() < end:
        pair.clock.advance(step)
        now = pair.clock.monotonic()
        for member in MEMBERS:
            agent = pair.agent[member]
            sizing = agent.settings.sizing
            if must_renew_own_lease(agent.relay_inputs(), sizing, now) is not None:
                if now >= due[member] or agent.renew_ok:
                    ok = await agent.renew_once()
                    due[member] = now + (0.0 if ok else R / 2)
            elif now >= due[member]:
                await agent.relay_once()
                due[member] = now + hello_period(sizing)
            await agent.poll_once()
        assert len(pair.answering()) <= 1
    return {m: len(pair.kube[m].writes) - writes[m] for m in MEMBERS}


async def test_in_a_healthy_pair_only_the_holder_writes() -> None:
    pair = Pair()
    await pair.start()
    await beat(pair, 30)  # the relay settles
    written = await beat(pair, 300)
    assert written["primary"] == 30  # every R
    assert written["secondary"] == 0
    relayed = report(pair, "primary").peer_heard_ms
    assert (
        relayed is not None
        and relayed <= hello_period(pair.agent["primary"].settings.sizing) * 1000
    )
    assert pair.answering() == ["primary"]
    gauge = "pairwarden_agent_relayed"
    assert pair.agent["secondary"].metrics.registry.get_sample_value(gauge) == 1
    assert pair.agent["primary"].metrics.registry.get_sample_value(gauge) == 0


async def test_the_standby_writes_at_once_when_its_report_changes_urgently() -> None:
    pair = Pair()
    await pair.start()
    await beat(pair, 30)
    pair.vm["secondary"].up = False
    written = await beat(pair, 2)
    assert written["secondary"] == 1
    assert not report(pair, "secondary").service_up


async def test_the_holder_gone_the_standby_renews_at_once() -> None:
    """The holder's agent dies (its peer link and renewals stop): the standby's next hello
    fails and it renews its own Lease within a hello period, long before the operator's W
    for the holder runs out."""
    pair = Pair()
    await pair.start()
    await beat(pair, 30)
    before = len(pair.kube["secondary"].writes)
    pair.kube["primary"].partitioned = True
    pair.net.cut.add("primary:8083")
    await beat(pair, 3)
    assert len(pair.kube["secondary"].writes) == before + 1
    written = await beat(pair, 60)
    assert written["secondary"] == 6  # every R while the hello fails, as without the relay


async def test_the_holder_cut_from_the_api_the_standby_writes_before_its_sighting_ages() -> None:
    """The holder's renewals fail but its peer link works: its acknowledgements say how old
    its last relay is, and the standby renews its own Lease once the operator's sighting of it
    could be `relay_limit` old, never near W."""
    pair = Pair()
    await pair.start()
    await beat(pair, 30)
    last_relay = pair.clock.monotonic()
    pair.kube["primary"].partitioned = True
    before = len(pair.kube["secondary"].writes)
    sizing = pair.agent["secondary"].settings.sizing
    while len(pair.kube["secondary"].writes) == before:
        await beat(pair, 0.5)
    assert pair.clock.monotonic() - last_relay <= relay_limit(sizing) + 0.5
    assert pair.clock.monotonic() - last_relay < sizing.window - R


async def test_the_standby_cut_from_the_api_stops_saying_hello() -> None:
    """A standby that cannot reach the API server must not look alive through the relay: it
    could not act on a grant. Its hellos stop within 2 R, so the holder's relay ages and the
    operator judges it lost at W, as without the relay."""
    pair = Pair()
    await pair.start()
    await beat(pair, 30)
    pair.kube["secondary"].partitioned = True
    await beat(pair, 2 * R + 2)
    hellos = len(pair.net.sent)
    await beat(pair, R)
    assert len(pair.net.sent) == hellos  # no hello since: its last one ages in the relay
    heard = report(pair, "primary").peer_heard_ms
    assert heard is not None and heard >= R * 1000


async def test_the_secondary_holding_counts_the_primarys_hello_as_contact() -> None:
    """With the secondary active, the standby primary renews nothing the secondary could see:
    its hello is the contact the licensing clock needs."""
    pair = Pair()
    await pair.start()
    pair.grant("secondary", 2)
    for member in MEMBERS:
        agent = pair.agent[member]
        agent.on_active_lease(pair.kube[member].leases["vm-active"])
    await beat(pair, 60)
    assert pair.answering() == ["secondary"]
    contact = pair.agent["secondary"].clocks.primary_contact
    assert contact is not None
    assert (pair.clock.wall() - contact).total_seconds() <= 3
