"""Invariants over random fault schedules (hypothesis): safety, liveness, schedule, damping,
and convergence once the faults stop (World.converged: one member answers, it holds the active
Lease, the Service routes to it, the status names it), over the shipped agent rules.

Under CI=true the runs are derandomized (the same schedules every run, no flaky CI);
locally hypothesis explores new schedules each time.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pairwarden.agent.core import next_renew_delay
from pairwarden.api import FailoverPairSpec
from pairwarden.engine import DISCRETIONARY, REVOKE_FIRST, Cause
from pairwarden.protocol import MEMBERS, Member
from pairwarden_testbed.sim import World
from pairwarden_testbed.sim.world import RoleChange

from .conftest import make_spec

CI = os.environ.get("CI") == "true"
TICK = 2.0
DURATION = 400.0
W = 30.0  # make_spec's window: 1000 ms x 30
# After the last fault: a dead holder is judged lost W after its last renewal was observed,
# the operator looks again within a tick, and the writes take a few latencies.
CONVERGENCE = W + 2 * TICK + 2.0


def profile(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=CI,
        deadline=None,
        database=None if CI else settings.default.database,
        suppress_health_check=[HealthCheck.too_slow],
    )


FAULTS: dict[str, Callable[[World, Member], None]] = {
    "crash": World.crash,
    "start": World.start,
    "stop_service": World.stop_service,
    "start_service": World.start_service,
    "stop_agent": World.stop_agent,
    "kill_agent": World.kill_agent,
    "start_agent": World.start_agent,
    "partition": World.partition,
    "heal": World.heal,
    "cpu_on": lambda w, m: w.set_cpu(m, True),
    "cpu_off": lambda w, m: w.set_cpu(m, False),
    "call_inactive": World.call_member,
    "manual_failover": lambda w, m: w.request_manual(f"r{w.now}", "failover"),
    "manual_failback": lambda w, m: w.request_manual(f"r{w.now}", "failback"),
    "restart_operator": lambda w, m: w.restart_operator(),
}
# Faults of the API and of other writers (issue 12): a write of the operator refused for a
# while (the Service patch between the Lease write and the Service patch, the Lease, the
# status), the operator killed mid-step, and foreign writes of what the operator derives.
OUTAGE = 3.0  # seconds an API verb keeps failing
WORLD_FAULTS: dict[str, Callable[[World, Member], None]] = {
    **FAULTS,
    "kill_operator": lambda w, m: kill_operator(w),
    "fail_service": lambda w, m: w.break_api("service", OUTAGE),
    "fail_lease": lambda w, m: w.break_api("lease", OUTAGE),
    "fail_status": lambda w, m: w.break_api("status", OUTAGE),
    "foreign_lease": lambda w, m: w.foreign_lease_write(m),
    "foreign_status": lambda w, m: w.foreign_status_write(m, w.epoch + 50),
    "foreign_selector": lambda w, m: w.foreign_selector_write(m),
}


def kill_operator(world: World) -> None:
    """kill -9 of the operator; its Deployment starts it again a little later."""
    world.stop_operator()
    world.at(world.now + 2 * TICK, world.restart_operator)


schedules = st.lists(
    st.tuples(
        st.floats(0, DURATION, allow_nan=False),
        st.sampled_from(sorted(FAULTS)),
        st.sampled_from(MEMBERS),
    ),
    max_size=24,
)
world_schedules = st.lists(
    st.tuples(
        st.floats(0, DURATION, allow_nan=False),
        st.sampled_from(sorted(WORLD_FAULTS)),
        st.sampled_from(MEMBERS),
    ),
    max_size=24,
)


@dataclass
class Availability:
    """When each member could serve (node, agent, service up; API reachable), per the faults."""

    since: dict[Member, float | None]
    operator_restart: float


def play(
    spec: FailoverPairSpec,
    schedule: list[tuple[float, str, Member]],
    latency: float,
    loss: float = 0.0,
    seed: int = 0,
    faults: dict[str, Callable[[World, Member], None]] = FAULTS,
    run_after: float | None = None,
) -> tuple[World, list[tuple[float, Availability]]]:
    world = World(spec, tick=TICK, latency=latency, loss=loss, seed=seed)
    marks: list[tuple[float, Availability]] = []

    def mark() -> None:
        since = {}
        previous = marks[-1][1].since if marks else dict.fromkeys(MEMBERS)
        for name in MEMBERS:
            m = world.members[name]
            up = m.node_up and m.agent_running and m.service_up and not m.partitioned
            since[name] = (
                (previous[name] if previous[name] is not None else world.now) if up else None
            )
        restart = marks[-1][1].operator_restart if marks else world.now
        marks.append((world.now, Availability(since, restart)))

    mark()
    start = world.now
    for offset, kind, member in sorted(schedule):

        def fire(kind: str = kind, member: Member = member) -> None:
            faults[kind](world, member)
            mark()
            if kind == "restart_operator":
                marks[-1][1].operator_restart = world.now

        world.at(start + offset, fire)
    after = 3 * spec.heartbeat.window_seconds if run_after is None else run_after
    world.run_until(start + DURATION + after)
    return world, marks


def is_revoke(change: RoleChange) -> bool:
    """The first half of a revoke-first move: the old holder named nobody, for a cause that
    never leaves the pair without a holder by itself."""
    return change.to == "none" and change.cause in REVOKE_FIRST


def decisions(changes: list[RoleChange]) -> list[RoleChange]:
    """Each discretionary move once, at the instant it was decided: a revoke-first move is
    decided at its revoke; the grant that completes it (same cause, the next epoch) is not
    a second decision."""
    out: list[RoleChange] = []
    for before, change in zip([None, *changes], changes, strict=False):
        completes = (
            before is not None
            and is_revoke(before)
            and before.cause == change.cause
            and change.epoch == before.epoch + 1
        )
        if change.cause in DISCRETIONARY and not completes:
            out.append(change)
    return out


def both_answering_spans(world: World) -> list[float]:
    spans, since = [], None
    for sample, following in zip(world.samples, [*world.samples[1:], None], strict=True):
        if len(sample.answering) == 2:
            since = sample.at if since is None else since
            end = following.at if following else world.now
            spans.append(end - since)
            since = None
    return spans


def longest_unjustified_silence(world: World, marks: list[tuple[float, Availability]]) -> float:
    """Longest time nobody answered while some member was continuously able to serve,
    counted from the latest of: silence began, that member became able, operator restart."""
    worst = 0.0
    points = sorted({s.at for s in world.samples} | {t for t, _ in marks} | {world.now})
    answering = {s.at: s.answering for s in world.samples}
    current: frozenset[Member] = frozenset()
    silent_since: float | None = None
    mark_index = 0
    # Between consecutive points nothing changes: judge each interval [start, end).
    for start, end in itertools.pairwise(points):
        current = answering.get(start, current)
        while mark_index + 1 < len(marks) and marks[mark_index + 1][0] <= start:
            mark_index += 1
        availability = marks[mark_index][1]
        if current:
            silent_since = None
            continue
        silent_since = start if silent_since is None else silent_since
        able = [s for s in availability.since.values() if s is not None]
        if able:
            begun = max(silent_since, min(able), availability.operator_restart)
            worst = max(worst, end - begun)
    return worst


@profile(examples=300 if CI else 150)
@given(schedule=schedules, latency=st.sampled_from([0.01, 0.05, 0.3]))
def test_never_two_answering_and_never_silent_beyond_the_window(
    schedule: list[tuple[float, str, Member]], latency: float
) -> None:
    spec = make_spec()
    world, marks = play(spec, schedule, latency)
    # A handoff reaches the old holder through its agent one latency later. If that agent was
    # killed or cut from the API (a partition), it cannot hear the handoff: its voicemail
    # process stops by itself when its grant runs out. That is the fencing bound.
    unreachable = any(kind in ("kill_agent", "partition") for _, kind, _ in schedule)
    overlap = world.sizing.fence_after + latency if unreachable else latency
    assert all(span <= overlap + 1e-6 for span in both_answering_spans(world))
    # A member back from a fault renews within the agent's own longest retry pause.
    retry = max(next_renew_delay(n, world.sizing, 0.0) for n in range(1, 16))
    bound = spec.heartbeat.window_seconds + TICK + 2 * latency + retry + 1e-6
    assert longest_unjustified_silence(world, marks) <= bound
    epochs = [c.epoch for c in world.changes]
    assert epochs == list(range(1, len(epochs) + 1)), "epoch +1 on every change of holder"


@profile(examples=150 if CI else 50)
@given(
    schedule=schedules,
    loss=st.sampled_from([0.05, 0.2, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_lost_heartbeats_never_make_two_answer(
    schedule: list[tuple[float, str, Member]], loss: float, seed: int
) -> None:
    world, _ = play(make_spec(), schedule, 0.05, loss=loss, seed=seed)
    killed = any(kind == "kill_agent" for _, kind, _ in schedule)
    overlap = world.sizing.fence_after + 0.05 if killed else 0.05
    assert all(span <= overlap + 1e-6 for span in both_answering_spans(world))


@profile(examples=150 if CI else 50)
@given(
    schedule=schedules,
    start=st.integers(0, 23 * 60 + 59),
    length=st.integers(1, 23 * 60),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
)
def test_scheduled_failback_only_inside_the_window(
    schedule: list[tuple[float, str, Member]], start: int, length: int, zone: str
) -> None:
    begin, end = start, (start + length) % (24 * 60)
    window = {
        "start": f"{begin // 60:02}:{begin % 60:02}",
        "end": f"{end // 60:02}:{end % 60:02}",
        "timeZone": zone,
    }
    spec = make_spec(failback={"type": "Scheduled", "window": window})
    world, _ = play(spec, schedule, 0.05)
    assert spec.failback.window is not None
    for change in world.changes:
        if change.cause == Cause.SCHEDULED_FAILBACK and is_revoke(change):
            # The move starts by revoking the secondary, inside the window; the primary is
            # granted once the secondary stopped answering (or gets the role back).
            assert spec.failback.window.contains(change.wall)
            assert change.previous == "secondary"
        elif change.cause == Cause.SCHEDULED_FAILBACK:
            assert change.to in ("primary", "secondary")


flapping = st.lists(
    st.tuples(
        st.floats(0, DURATION, allow_nan=False),
        st.sampled_from(["cpu_on", "cpu_off", "call_inactive", "stop_service", "start_service"]),
        st.sampled_from(MEMBERS),
    ),
    min_size=10,
    max_size=40,
)


@profile(examples=150 if CI else 50)
@given(schedule=flapping)
def test_role_changes_per_period_are_bounded_under_flapping(
    schedule: list[tuple[float, str, Member]],
) -> None:
    spec = make_spec(
        forceFailoverOnInactiveCall=True, flapDamping={"maxTransitions": 3, "periodSeconds": 120}
    )
    world, _ = play(spec, schedule, 0.05)
    period = timedelta(seconds=120)
    moves = [c for c in world.changes if not is_revoke(c)]  # a revoke-first move counts once
    decided = decisions(world.changes)
    for change in decided:
        before = [c for c in moves if change.wall - period < c.wall < change.wall]
        assert len(before) < 3, "a discretionary change happened while held"
        window = [c for c in decided if change.wall - period < c.wall <= change.wall]
        assert len(window) <= 3


def end_faults(world: World) -> None:
    """Every fault stops: nodes, agents and voicemail processes run, links heal, the API
    answers, the operator runs. Foreign writes stay where they were: repairing them is the
    operator's job."""
    world.broken.clear()
    world.failures.clear()
    for name in MEMBERS:
        member = world.members[name]
        world.set_cpu(name, False)
        world.heal(name)
        if not member.node_up:
            world.start(name)
        elif not member.agent_running:
            world.start_agent(name)
        if not member.service_up:
            world.start_service(name)
    if not world.operator_up:
        world.restart_operator()


@profile(examples=300 if CI else 150)
@given(schedule=schedules, latency=st.sampled_from([0.01, 0.05, 0.3]))
@example(  # a manual move away from a holder whose agent was killed: it cannot hear it
    schedule=[(20.0, "kill_agent", "primary"), (21.0, "manual_failover", "primary")],
    latency=0.05,
)
def test_never_two_answering_at_any_instant(
    schedule: list[tuple[float, str, Member]], latency: float
) -> None:
    world, _ = play(make_spec(), schedule, latency)
    assert both_answering_spans(world) == []


def converges(schedule: list[tuple[float, str, Member]], latency: float) -> None:
    spec = make_spec()
    world, _ = play(spec, schedule, latency, faults=WORLD_FAULTS, run_after=0.0)
    end_faults(world)
    bound = CONVERGENCE
    waited = world.run_until_converged(bound)
    assert waited is not None, f"not whole {bound} s after the faults stopped: {world.converged()}"
    world.run_for(bound)
    assert world.converged() is None, "whole, then not: " + str(world.converged())


@profile(examples=60 if CI else 20)
@given(schedule=schedules, latency=st.sampled_from([0.01, 0.05, 0.3]))
def test_converges_once_the_member_faults_stop(
    schedule: list[tuple[float, str, Member]], latency: float
) -> None:
    converges(schedule, latency)


@profile(examples=150 if CI else 60)
@given(schedule=world_schedules, latency=st.sampled_from([0.01, 0.05, 0.3]))
@example(schedule=[(1.0, "foreign_lease", "secondary")], latency=0.05)
def test_converges_once_every_fault_stops(
    schedule: list[tuple[float, str, Member]], latency: float
) -> None:
    converges(schedule, latency)
