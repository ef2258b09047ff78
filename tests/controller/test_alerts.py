"""The Alertmanager receiver's pure parts: which alerts become which requests, with what id,
and who may send them; hostile bodies are refused, never a crash."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pairwarden.controller.alerts import (
    AlertRequest,
    Limits,
    Receiver,
    authorized,
    parse_json,
    requests_from_webhook,
    serve,
)


def alert(status: str = "firing", starts: str = "2026-01-05T12:00:00Z", **labels: str) -> Any:
    base = {"alertname": "Degraded", "pairwarden_pair": "vm", "pairwarden_action": "failover"}
    return {"status": status, "labels": {**base, **labels}, "startsAt": starts, "fingerprint": "f1"}


def test_a_firing_alert_names_the_pair_and_the_action() -> None:
    parsed = requests_from_webhook({"alerts": [alert(namespace="voice")]}, "ops")
    (request,) = parsed.requests
    assert (request.namespace, request.pair, request.action) == ("voice", "vm", "failover")
    assert request.id.startswith("am-")
    explicit = requests_from_webhook(
        {"alerts": [alert(pairwarden_namespace="b", namespace="a")]}, "ops"
    )
    assert explicit.requests[0].namespace == "b"
    assert requests_from_webhook({"alerts": [alert()]}, "ops").requests[0].namespace == "ops"


def test_one_firing_is_one_id_and_a_new_firing_a_new_one() -> None:
    def first(body: Any) -> AlertRequest:
        return requests_from_webhook(body, "ops").requests[0]

    once = first({"alerts": [alert()]})
    assert first({"alerts": [alert()]}) == once  # Alertmanager's repeat notification
    assert first({"alerts": [alert(starts="2026-01-05T13:00:00Z")]}).id != once.id


def test_alerts_that_ask_for_nothing_are_skipped_with_a_reason() -> None:
    body = {
        "alerts": [
            alert(status="resolved"),
            alert(pairwarden_action="reboot"),
            {"status": "firing", "labels": {"alertname": "NoPair"}},
            {"labels": "not a map"},
            "not an alert",
        ]
    }
    parsed = requests_from_webhook(body, "ops")
    assert parsed.requests == ()
    assert len(parsed.skipped) == 5
    assert "not firing" in parsed.skipped[0] and "pairwarden_action" in parsed.skipped[1]


def test_a_pair_named_twice_in_one_notification_acts_once() -> None:
    body = {"alerts": [alert(), alert(pairwarden_action="failback")]}
    assert [r.action for r in requests_from_webhook(body, "ops").requests] == ["failover"]


@pytest.mark.parametrize("body", [None, [], "x", {"alerts": "x"}, {"version": "4"}])
def test_a_body_that_is_no_notification_is_refused(body: Any) -> None:
    with pytest.raises(ValueError, match="alerts"):
        requests_from_webhook(body, "ops")


def test_only_the_bearer_token_authorizes() -> None:
    assert authorized("Bearer s3cret", "s3cret")
    assert authorized("bearer s3cret", "s3cret")
    assert not authorized("Bearer wrong", "s3cret")
    assert not authorized("Basic s3cret", "s3cret")
    assert not authorized(None, "s3cret")
    assert not authorized("Bearer ", "")  # an unreadable or empty token file opens nothing


# ------------------------------------------------------------- abuse of the open port


def test_a_body_nested_deeper_than_the_limit_is_refused_before_parsing() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(ValueError, match="deeper than 32"):
        parse_json(deep, 32)
    assert parse_json(b'{"a": [[["x"]]]}', 4) == {"a": [[["x"]]]}
    # brackets inside strings are text, escaped quotes included
    assert parse_json(b'{"a": "[[[[\\"[[[["}', 1) == {"a": '[[[["[[[['}


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"\xff\xfe\x00garbage", b"not json", b'{"alerts": [}', b"1" * 5000, b'"\\ud800'],
)
def test_anything_that_does_not_parse_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_json(raw, 32)


TOKEN = "s3cret"
LIMITS = Limits(
    header_timeout=0.3, body_timeout=0.3, linger_timeout=0.2, max_body=64 * 1024, max_depth=8
)


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    """The receiver on a free local port with small limits; no pair is ever written (every
    request below is refused before one would be, or names an unwatched namespace)."""
    token = tmp_path / "token"
    token.write_text(TOKEN)
    api: Any = None  # never reached: no request here gets as far as the API
    served = Receiver(api, token, "ops", allowed=lambda ns: False, limits=LIMITS)
    runner = await serve(served, "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    try:
        yield host, port
    finally:
        await runner.cleanup()


async def _exchange(address: tuple[str, int], *parts: bytes) -> tuple[bytes, float]:
    """Send `parts` (one write each), then read until the server closes the connection: what
    it answered, and how long after the last write it closed."""
    reader, writer = await asyncio.open_connection(*address)
    for part in parts:
        writer.write(part)
        await writer.drain()
    sent = time.monotonic()
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=5.0)
    finally:
        writer.close()
    return answer, time.monotonic() - sent


def _post(body: bytes, token: str = TOKEN, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    head = (
        f"POST /alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def test_a_connection_that_never_finishes_its_headers_is_closed_in_time(
    receiver: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    answer, closed_after = await _exchange(receiver, b"POST /alertmanager HTTP/1.1\r\nHost: x\r\n")
    assert answer == b""  # closed, nothing answered
    assert closed_after < LIMITS.header_timeout + 1.0
    idle, idle_closed = await _exchange(receiver)  # a connection that sends nothing at all
    assert idle == b"" and idle_closed < LIMITS.header_timeout + 1.0
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_body_slower_than_its_timeout_gets_408(receiver: tuple[str, int]) -> None:
    answer, closed_after = await _exchange(receiver, _post(b'{"alerts": [', length=100))
    assert answer.startswith(b"HTTP/1.1 408")
    assert closed_after < LIMITS.body_timeout + LIMITS.linger_timeout + 0.5


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 200_000, b"413"),  # over max_body: refused before it is read whole
        (b"[" * 60_000 + b"]" * 60 + b"x", b"400"),  # within max_body, too deep
        (b"[" * 9 + b"]" * 9, b"400"),  # one level over the limit
        (b"\x00\xff garbage", b"400"),
        (b'{"alerts": [{"labels": {"pairwarden_pair": 1}}]', b"400"),  # truncated
        (b'{"alerts": []}', b"200"),
    ],
)
async def test_hostile_bodies_get_a_status_and_leave_no_traceback(
    receiver: tuple[str, int], caplog: pytest.LogCaptureFixture, body: bytes, status: bytes
) -> None:
    answer, _ = await _exchange(receiver, _post(body))
    assert answer.split(b" ")[1] == status, answer[:200]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_no_token_is_refused_before_the_body_is_read(receiver: tuple[str, int]) -> None:
    answer, _ = await _exchange(receiver, _post(b"[" * 1000, token="wrong"))
    assert answer.startswith(b"HTTP/1.1 401")
