"""The one list-then-watch loop (`pairwarden.watching`): its retry policy, and what it does
with the server's answers, from a scripted lister (no server needed)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pairwarden import watching
from pairwarden.watching import Backoff, Changed, Listed


@pytest.mark.parametrize(
    ("failures", "draw", "expected"),
    [
        pytest.param(1, 0.0, 0.2, id="first-pause"),
        pytest.param(2, 0.0, 0.4, id="doubles"),
        pytest.param(20, 0.0, 5.0, id="capped"),
        pytest.param(1, 1.0, 0.1, id="full-jitter-halves"),
        pytest.param(20, 0.5, 3.75, id="jitter-under-the-cap"),
    ],
)
def test_backoff_grows_caps_and_jitters(failures: int, draw: float, expected: float) -> None:
    assert Backoff().pause(failures, draw) == pytest.approx(expected)


def test_endless_pauses_never_run_out_and_start_afresh_on_each_iteration() -> None:
    """kopf iterates `error_backoffs` once per failing request and gives up when it ends."""
    pauses = watching.Endless(Backoff(first=1.0, cap=30.0, jitter=0.0))
    first = list(itertools.islice(pauses, 200))
    again = list(itertools.islice(pauses, 3))
    assert first[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert first[-1] == 30.0 and len(first) == 200
    assert again == [1.0, 2.0, 4.0]  # a new request starts from the first pause


class _Response:
    """What kubernetes_asyncio returns with _preload_content=False."""

    def __init__(self, body: Any = None, lines: list[dict[str, Any]] | None = None) -> None:
        self._body, self._lines = body, lines or []
        self.content = self._content()

    async def read(self) -> bytes:
        return json.dumps(self._body).encode()

    async def _content(self) -> AsyncIterator[bytes]:
        for line in self._lines:
            yield json.dumps(line).encode() + b"\n"

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _lease(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}}


async def test_lists_watches_resumes_and_relists_on_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing, two events (a bookmark between them is swallowed), a watch the server closes
    (resumed from the last version), then 410 Gone (listed again at once, no pause)."""
    calls: list[dict[str, Any]] = []
    script = [
        _Response({"metadata": {"resourceVersion": "5"}, "items": [_lease("a", "5")]}),
        _Response(
            lines=[
                {"type": "ADDED", "object": _lease("b", "6")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
                {"type": "MODIFIED", "object": _lease("b", "8")},
            ]
        ),
        _Response(lines=[{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]),
        _Response({"metadata": {"resourceVersion": "9"}, "items": []}),
    ]

    async def lister(**query: Any) -> _Response:
        calls.append(query)
        return script.pop(0)

    async def no_sleep(seconds: float) -> None:
        raise AssertionError(f"paused {seconds} s on 410 Gone")

    monkeypatch.setattr(watching.asyncio, "sleep", no_sleep)
    events = []
    async for event in watching.list_then_watch(lister, "test", watch_seconds=7):
        events.append(event)
        if len(events) == 4:
            break
    assert events == [
        Listed([_lease("a", "5")]),
        Changed("ADDED", _lease("b", "6")),
        Changed("MODIFIED", _lease("b", "8")),
        Listed([]),
    ]
    assert [c["watch"] for c in calls] == [False, True, True, False]
    assert [c.get("resource_version") for c in calls] == [None, "5", "8", None]
    assert {c["timeout_seconds"] for c in calls} == {7}


async def test_an_error_pauses_by_the_policy_then_lists_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []
    answers: list[Any] = [OSError("refused"), OSError("refused")]

    async def lister(**query: Any) -> _Response:
        if answers:
            raise answers.pop(0)
        return _Response({"metadata": {"resourceVersion": "1"}, "items": []})

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(watching.asyncio, "sleep", sleep)
    monkeypatch.setattr(watching.random, "random", lambda: 0.0)
    async for event in watching.list_then_watch(lister, "test"):
        assert event == Listed([])
        break
    assert pauses == [0.2, 0.4]
