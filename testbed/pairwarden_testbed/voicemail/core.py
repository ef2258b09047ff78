"""What the voicemail process decides: whether to answer a call, and which role orders to obey.

No sockets here, so the rules are tested with a ManualClock. A role order carries the
epoch (the fencing token of the active Lease) and a validity: the agent sends the time left
before its own fencing deadline, so the process stops answering on time even if the agent
itself hangs or dies (the agent renews the order with every successful Lease renewal).

While an active order is in force, an order for an older epoch is refused: a restarted agent
that has not yet read the Lease cannot drop calls the current one granted. Once no active
order is in force, any epoch is obeyed: the epoch held is what the agent last read from the
active Lease, not the highest number anyone ever sent, so an order with a wrong epoch blocks
nothing after it expires. Late and replayed orders of the agent are refused before they get
here, by their signature and sequence (`pairwarden.orders`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from pairwarden.clock import Clock


class StaleEpoch(Exception):
    """A role order older than the epoch already held."""


@dataclass(frozen=True)
class Call:
    id: int
    caller: str
    epoch: int


@dataclass(frozen=True)
class Answer:
    """The reply to a new call: answered with this call, or refused (standby)."""

    call: Call | None

    @property
    def answered(self) -> bool:
        return self.call is not None


class VoicemailCore:
    def __init__(self, pod: str, clock: Clock) -> None:
        self.pod = pod
        self._clock = clock
        self._active = False
        self._epoch = 0
        self._valid_until: float | None = None
        self._calls: dict[int, Call] = {}
        self._ids = itertools.count(1)
        self.inactive_calls = 0
        self.answered_calls = 0
        # Where the active member answers ("host:port"), when the control API said so: a
        # standby SIP front end then redirects callers (302) instead of refusing them (503).
        self.redirect: str | None = None
        # Force Failover: hold a new call this long while not answering (it may be the call
        # that makes this member active), then answer it or refuse it.
        self.hold_for = 0.0
        self.draining = False  # stopping: no new calls, whatever the orders say

    @property
    def epoch(self) -> int:
        return self._epoch

    def answering(self) -> bool:
        if not self._active:
            return False
        if self._valid_until is not None and self._clock.monotonic() >= self._valid_until:
            # The order ran out: demote for good until a fresh order arrives.
            self._active = False
            self._valid_until = None
            return False
        return True

    def set_role(self, active: bool, epoch: int, valid_for: float | None = None) -> None:
        """Obey a role order unless it is older than the epoch of an active order still in
        force (raises StaleEpoch).

        Demoting keeps calls in progress (a clean failover maintains calls) and refuses
        new ones.
        """
        if epoch < self._epoch and self.answering():
            raise StaleEpoch(
                f"order for epoch {epoch} is older than epoch {self._epoch}, in force until it ends"
            )
        self._epoch = epoch
        self._active = active and not self.draining
        self._valid_until = (
            self._clock.monotonic() + valid_for if active and valid_for is not None else None
        )

    def drain(self) -> None:
        """A clean stop (SIGTERM): refuse new calls from now on, keep those in progress."""
        self.draining = True
        self._active = False
        self._valid_until = None

    def offer(self, caller: str) -> Answer:
        if not self.answering():
            self.inactive_calls += 1
            return Answer(None)
        call = Call(next(self._ids), caller, self._epoch)
        self._calls[call.id] = call
        self.answered_calls += 1
        return Answer(call)

    def hang_up(self, call: Call) -> None:
        self._calls.pop(call.id, None)

    @property
    def calls_in_progress(self) -> int:
        return len(self._calls)

    def status(self) -> dict[str, Any]:
        answering = self.answering()
        return {
            "pod": self.pod,
            "role": "active" if answering else "standby",
            "epoch": self._epoch,
            "answering": answering,
            "callsInProgress": self.calls_in_progress,
            "inactiveCalls": self.inactive_calls,
            "answeredCalls": self.answered_calls,
            "stopping": self.draining,
        }
