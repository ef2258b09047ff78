"""The relay in the simulator (docs/protocol.md, "The standby's heartbeat rides the holder's
renewal"): W = 30 s, R = 10 s, operator tick 1 s, latency 50 ms. The standby writes nothing
while the relay works; the reference's bounds hold as before."""

from __future__ import annotations

from pairwarden.engine import Cause
from pairwarden_testbed.sim import World

from .conftest import make_spec

W, R, TICK, LATENCY = 30.0, 10.0, 1.0, 0.05


def settled() -> World:
    world = World(make_spec(), tick=TICK, latency=LATENCY)
    world.run_for(3 * R)
    assert world.answering() == {"primary"}
    return world


def writes(world: World) -> dict[str, int]:
    return {name: m.own_writes for name, m in world.members.items()}


def test_an_idle_pair_writes_once_per_renewal_period() -> None:
    world = settled()
    before = writes(world)
    world.run_for(100 * R)
    after = writes(world)
    assert after["primary"] - before["primary"] in (99, 100, 101)
    assert after["secondary"] - before["secondary"] <= 2  # a report refresh at most
    # The operator still sees the standby within a renewal period and a hello.
    seen = world.observations["secondary"].last_seen
    assert seen is not None and world.now - seen <= R + 2 * R / 5 + 1


def test_the_standby_crashing_is_lost_at_the_window() -> None:
    """Its hellos stop: the holder relays the same last one with a growing age, and the
    operator judges it lost W after it, as if it had stopped renewing."""
    world = settled()
    world.crash("secondary")
    crashed = world.now
    world.run_for(W + 2 * TICK)
    status = world.status.members.secondary
    assert not status.service_up
    seen = world.observations["secondary"].last_seen
    assert seen is not None and crashed - R / 5 - 1e-9 <= seen <= crashed + 2 * LATENCY


def test_the_holder_crashing_fails_over_within_the_window_and_the_standby_is_seen() -> None:
    world = settled()
    world.crash("primary")
    crashed = world.now
    world.run_for(R / 5 + 2 * LATENCY)  # its next hello failed: it renewed its own Lease
    assert world.members["secondary"].own_writes >= 2
    waited = world.run_until_answering("secondary", 2 * W)
    assert waited is not None and waited <= W + TICK + 3 * LATENCY
    assert world.changes[-1].cause == Cause.HEARTBEAT_LOST
    assert world.answering(crashed + 1) == set()


def test_the_holder_cut_from_the_api_server_fails_over_to_a_standby_seen_alive() -> None:
    world = settled()
    world.partition("primary")
    waited = world.run_until_answering("secondary", 2 * W)
    assert waited is not None and waited <= W + TICK + 3 * LATENCY
    assert world.changes[-1].cause == Cause.HEARTBEAT_LOST
    assert all(len(sample.answering) <= 1 for sample in world.samples)


def test_the_standby_cut_from_the_api_server_is_lost_as_before() -> None:
    """It stops saying hello once its own reads have failed for 2 R: the relay no longer
    keeps it looking alive, and it is lost at most 2 R + W after the cut."""
    world = settled()
    world.partition("secondary")
    world.run_for(2 * R + W + 2 * TICK)
    assert not world.status.members.secondary.service_up
    world.crash("primary")  # nobody to fail over to: the cut standby is never granted
    world.run_for(2 * W)
    assert world.answering() == set()
    assert world.holder in ("none", "primary")
