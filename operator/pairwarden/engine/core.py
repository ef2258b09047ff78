"""The pure failover engine: `decide(spec, observed, now) -> Decision`.

No I/O, no clock of its own, no kubernetes. Everything it must remember between calls lives
in the FailoverPair status it is handed and returns, so an operator restart rebuilds it.
The rules, in the order they are tried, are documented in docs/behaviour.md.
"""

from __future__ import annotations

from pairwarden.api.models import (
    FailoverPairSpec,
)
from pairwarden.engine.handoff import (
    carry_out,
)
from pairwarden.engine.health import judge, member_problems, probed_gone
from pairwarden.engine.projection import (
    project,
    routing_repair,
)
from pairwarden.engine.rules import (
    choose,
)
from pairwarden.engine.truth import read_truth, record_missed
from pairwarden.engine.types import (
    Action,
    Decision,
    Now,
    Observed,
)
from pairwarden.protocol import (
    MEMBERS,
)


def decide(spec: FailoverPairSpec, observed: Observed, now: Now) -> Decision:
    """One reconciliation: who should hold the active role now, and what to record. A table
    of contents: the truth (truth.py), each member's health (health.py), the change the rules
    want (rules.py), the writes that carry it out (handoff.py), the status (projection.py)."""
    truth = read_truth(observed)
    observed, recorded = record_missed(observed, truth)
    status = observed.status
    problems = member_problems(observed)
    gone = truth.holder if probed_gone(observed, truth.holder, truth.epoch) else None
    health = {
        m: judge(spec, status, m, observed.member(m), now, problems.get(m), m == gone)
        for m in MEMBERS
    }
    choice = choose(spec, observed, truth, health, now)
    move = carry_out(spec, status, truth, health, choice.change, choice.handoff, now)
    actions: list[Action] = [*([recorded] if recorded else []), *choice.actions, *move.actions]
    why = [*choice.why, *move.why]
    if gone is not None:
        why.append(f"{gone}'s processes seen gone by the other member's probe (its sockets)")
    routing = routing_repair(observed, move.holder, actions)
    if routing is not None:
        why.append(routing.reason)
    projected = project(spec, observed, health, problems, choice, move, now)
    actions.extend(projected.actions)
    return Decision(
        actions=tuple(actions),
        status=projected.status,
        reason="; ".join(why or [f"no change: {projected.ready}"]),
        replicate=all(health[m].failure is None for m in MEMBERS),
    )
