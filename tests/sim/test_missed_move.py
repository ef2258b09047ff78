"""kill -9 of the operator between its active Lease write and its status write: the move
(its cause, the previous holder, the time) and its Event must not be lost, since the Lease
moved. The Lease write carries the move; the next operator records it from there."""

from __future__ import annotations

from pairwarden_testbed.sim import World

from .conftest import make_spec

TICK = 2.0
W = 30.0  # make_spec's window


def test_a_move_cut_short_by_a_kill_is_recorded_by_the_next_operator() -> None:
    world = World(make_spec(), tick=TICK, latency=0.05)
    assert world.run_until_answering("primary", 3 * W) is not None
    before = len(world.events)
    # The primary dies; the failover's Service patch fails, so the step ends right after
    # the Lease write (no Event, no status), and the operator is killed -9 there.
    world.break_api("service", 10 * W)
    world.crash("primary")
    deadline = world.now + 3 * W
    while world.holder != "secondary" and world.now < deadline:
        world.run_for(0.1)
    assert world.holder == "secondary", "the failover's Lease write never happened"
    world.stop_operator()
    assert world.status.active_member == "primary"  # the status missed the move
    assert [e.reason for e in world.events[before:]] == []  # and its Event
    world.broken.clear()
    world.restart_operator()
    world.run_for(2 * TICK)

    last = world.status.last_transition
    assert last is not None
    assert (last.from_, last.to, last.cause, last.epoch) == (
        "primary",
        "secondary",
        "HeartbeatLost",
        world.epoch,
    )
    assert world.status.transitions[-1] == last
    moves = [e for e in world.events[before:] if e.reason == "HeartbeatLost"]
    assert len(moves) == 1 and moves[0].type == "Warning", world.events[before:]
    assert moves[0].message.startswith(f"primary -> secondary (epoch {world.epoch})")
