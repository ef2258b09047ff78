"""What the operator's probes mean, as pure functions of its state (tested without kopf).

Liveness (kopf's own endpoint, `@kopf.on.probe` in handlers): the operator's own watch tasks
(member Leases, replication Jobs) are running; one that ended means heartbeats are no longer
seen, and only a restart brings them back, so the probe fails and the kubelet restarts the pod.
Readiness (`/readyz` on the metrics port): the operator can act: its start-up finished (API
client, watches, peering object) and the watches run. A standby peer is ready too: it takes
over within kopf's peering lifetime, and its /metrics must stay scraped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


class WatchEnded(Exception):
    """A watch task the operator depends on is no longer running."""


def watches_alive(tasks: Sequence[asyncio.Task[None]] | None) -> dict[str, int]:
    """The liveness report, or WatchEnded naming what ended and why."""
    if tasks is None:
        return {"watches": 0}  # still starting: kopf's startup handlers have not run yet
    ended = [task for task in tasks if task.done()]
    if ended:
        reasons = []
        for task in ended:
            error = None if task.cancelled() else task.exception()
            reasons.append(f"{task.get_name()}: {error!r}" if error else task.get_name())
        raise WatchEnded(f"{len(ended)} of {len(tasks)} watch tasks ended ({'; '.join(reasons)})")
    return {"watches": len(tasks)}


def not_ready(started: bool, tasks: Sequence[asyncio.Task[None]] | None) -> str | None:
    """Why the operator cannot act yet, or None when it can."""
    if not started or tasks is None:
        return "starting: the API client and watches are not set up yet"
    try:
        watches_alive(tasks)
    except WatchEnded as error:
        return str(error)
    return None
