"""Waiting for the world from a test: poll a check until it holds, or fail naming what was
awaited. The one poll-until-deadline loop of the tests, the e2e scenarios and the rig.

A check that raises counts as "not yet" only when it raises one of `tolerate` (for example a
404 while an object is being created); anything else is a bug in the check and surfaces.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable

DEFAULT_POLL = 0.02


class NotYet(AssertionError):
    """The awaited condition did not hold before the deadline."""


def eventually[T](
    check: Callable[[], T | None],
    timeout: float = 10.0,
    what: str = "",
    poll: float = DEFAULT_POLL,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `check` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except tolerate:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise NotYet(f"not within {timeout} s: {what or getattr(check, '__name__', check)}")
        time.sleep(poll)


async def eventually_async[T](
    check: Callable[[], T | None],
    within: float = 10.0,
    what: str = "",
    poll: float = DEFAULT_POLL,
) -> T:
    """`eventually` for a test on an event loop: the loop keeps running between polls."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise NotYet(f"not within {within} s: {what or getattr(check, '__name__', check)}")
        await asyncio.sleep(poll)


class Arrivals[T]:
    """Values a watching thread saw, each with its monotonic arrival time, for another thread
    to wait on: when a Service's selector, an EndpointSlice's addresses or a caller's answer
    first reached a value after a fault (bench/failover.py, tests/realnode)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, T]] = []
        self.cond = threading.Condition()

    def add(self, at: float, value: T) -> None:
        with self.cond:
            self.seen.append((at, value))
            self.cond.notify_all()

    def last(self, default: T) -> T:
        with self.cond:
            return self.seen[-1][1] if self.seen else default

    def wait_for(self, value: T, after: float, timeout: float) -> float:
        """When `value` first arrived at or after `after`; NaN if not within `timeout`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, seen in self.seen:
                    if at >= after and seen == value:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return math.nan
                self.cond.wait(left)
