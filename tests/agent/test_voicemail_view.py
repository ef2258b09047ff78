"""A status read of the voicemail process that times out is load, not a stop: the agent keeps
the last view for VOICEMAIL_SLOW_GRACE, and reports the process down at once only when it
says so (refused connection, error status, `stopping`). At load 30 on the real node one slow
read made the operator fail an answering member over (ServiceStopped) and back."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from pairwarden.agent.core import VOICEMAIL_SLOW_GRACE, VoicemailView, judged_view
from pairwarden.agent.voicemail_client import VoicemailClient
from pairwarden.orders import OrderSigner, new_key

UP = VoicemailView(up=True, answering=True, calls=2, epoch=3)
SLOW = VoicemailView(up=False, unread=True)
DOWN = VoicemailView(up=False)


def test_a_slow_read_keeps_the_last_view_within_the_grace() -> None:
    assert judged_view(SLOW, UP, unread_since=100.0, now=100.0) == UP
    assert judged_view(SLOW, UP, unread_since=100.0, now=100.0 + VOICEMAIL_SLOW_GRACE - 0.1) == UP


def test_reads_timing_out_for_the_whole_grace_say_down() -> None:
    assert not judged_view(SLOW, UP, unread_since=100.0, now=100.0 + VOICEMAIL_SLOW_GRACE).up


@pytest.mark.parametrize("last", [DOWN, VoicemailView()])
def test_a_slow_read_of_a_process_not_up_keeps_it_down(last: VoicemailView) -> None:
    assert not judged_view(SLOW, last, unread_since=100.0, now=100.1).up


@pytest.mark.parametrize("read", [DOWN, VoicemailView(up=False, answering=False), UP])
def test_an_answered_read_stands_at_once(read: VoicemailView) -> None:
    """An exit (refused connection), an error status or `stopping` is down at once."""
    assert judged_view(read, UP, unread_since=100.0, now=100.1) == read


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_client_marks_a_timeout_unread_and_a_refusal_down() -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/status", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    signer = OrderSigner(new_key())
    client = VoicemailClient(f"http://127.0.0.1:{port}", signer, timeout=0.2)
    gone = VoicemailClient(f"http://127.0.0.1:{_free_port()}", signer, timeout=0.2)
    try:
        assert await client.status() == SLOW
        assert await gone.status() == DOWN  # nobody listens: refused, down at once
    finally:
        await client.close()
        await gone.close()
        await runner.cleanup()


async def test_the_agent_counts_the_grace_from_the_first_slow_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loaded agent may itself read seldom: the grace runs from the first timed-out read of
    a run of them, not from the last answered read (which would leave no grace at all)."""
    from .test_runner import Rig

    rig = Rig()
    await rig.start_active()
    answered = rig.vm.status

    async def slow() -> VoicemailView:
        return SLOW

    monkeypatch.setattr(rig.vm, "status", slow)
    rig.clock.advance(5)  # the last answered read is long past
    await rig.agent.poll_once()
    assert rig.agent.vm_view.up
    rig.clock.advance(VOICEMAIL_SLOW_GRACE - 0.1)
    await rig.agent.poll_once()
    assert rig.agent.vm_view.up and rig.report().service_up
    rig.clock.advance(0.1)
    await rig.agent.poll_once()
    assert not rig.agent.vm_view.up
    monkeypatch.setattr(rig.vm, "status", answered)
    await rig.agent.poll_once()
    assert rig.agent.vm_view.up
