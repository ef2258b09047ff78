"""Waiting for the world from a test: poll a check until it holds, or fail naming what was
awaited. The one poll-until-deadline loop of the tests, the e2e scenarios and the rig.

A check that raises counts as "not yet" only when it raises one of `tolerate` (for example a
404 while an object is being created); anything else is a bug in the check and surfaces.
"""

from __future__ import annotations

import asyncio
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
