"""Test hooks: injected faults and request counters, shared by the Python API and the
`/sandbox/...` admin endpoints so another process (a benchmark, the demo) can use them."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from .errors import REASONS, ApiError


@dataclass
class Fault:
    verb: str = "*"
    resource: str = "*"
    name: str | None = None
    namespace: str | None = None
    status: int = 500
    count: int = 1
    message: str = ""
    delay: float = 0.0  # seconds the request hangs before the error: a slow or timed-out call
    fraction: float = 1.0  # the share of matching requests it takes; the others pass untouched
    seconds: float | None = None  # it ends by itself this long after it was added (a storm)
    until: float | None = None  # monotonic, set from `seconds` when added
    user: str | None = None  # only this identity's requests (authn.User.name): one client cut off
    spare: str | None = None  # never this identity's (the test's own observer)

    def matches(
        self, verb: str, resource: str, group: str, ns: str | None, name: str, user: str = ""
    ) -> bool:
        qualified = f"{resource.split('/')[0]}.{group}" if group else resource
        return (
            self.user in (None, user)
            and self.spare != user
            and self.verb in ("*", verb)
            and self.resource in ("*", resource, qualified)
            and self.name in (None, name)
            and self.namespace in (None, ns)
        )

    @property
    def slows_only(self) -> bool:
        """Status 0: the request is held `delay` seconds, then served as usual (a slow API)."""
        return self.status == 0

    def error(self) -> ApiError:
        message = self.message or f"injected fault: {REASONS.get(self.status, self.status)}"
        return ApiError(self.status, message)


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if fault.count <= 0:
            raise ValueError("count must be positive")
        if not 0.0 < fault.fraction <= 1.0:
            raise ValueError("fraction must be in (0, 1]")
        if fault.seconds is not None:
            fault.until = time.monotonic() + fault.seconds
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def pending(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self._faults]

    def take(
        self, verb: str, resource: str, group: str, ns: str | None, name: str, user: str = ""
    ) -> Fault | None:
        """The first matching fault, consuming one of its count (the caller answers with its
        error after its delay, or serves the request after it for status 0), or None. A
        fault whose period ended is dropped; one with a fraction takes only that share."""
        now = time.monotonic()
        self._faults = [f for f in self._faults if f.until is None or f.until > now]
        for fault in self._faults:
            if fault.matches(verb, resource, group, ns, name, user):
                if fault.fraction < 1.0 and random.random() >= fault.fraction:
                    continue
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None


class Stats:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.users: Counter[str] = Counter()
        self.by_user: Counter[tuple[str, str, str]] = Counter()

    def record(self, user: str, verb: str, resource: str) -> None:
        self.requests[(verb, resource)] += 1
        self.users[user] += 1
        self.by_user[(user, verb, resource)] += 1

    def reset(self) -> None:
        self.requests.clear()
        self.users.clear()
        self.by_user.clear()

    def snapshot(self) -> dict[str, Any]:
        """JSON-friendly: `requests["verb resource"]`, `users[user]`, `by_user[user][...]`."""
        by_user: dict[str, dict[str, int]] = {}
        for (user, verb, resource), n in self.by_user.items():
            by_user.setdefault(user, {})[f"{verb} {resource}"] = n
        return {
            "requests": {f"{v} {r}": n for (v, r), n in self.requests.items()},
            "users": dict(self.users),
            "by_user": by_user,
        }
