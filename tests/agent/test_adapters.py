"""The generic voicemail adapter from the outside: hooks written as a user would write them,
real commands, a real HTTP endpoint, TCP and SIP peers on loopback, a ManualClock for the
order's expiry (no test waits it out)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pairwarden.agent import main as agent_main
from pairwarden.agent.adapters import (
    Hook,
    HookError,
    HookVoicemail,
    Unusable,
    hook_config,
    parse_hook,
    sip_final_status,
    sip_options_request,
)
from pairwarden.agent.core import StandbyCalls
from pairwarden.agent.voicemail_client import VoicemailClient
from pairwarden.clock import ManualClock
from pairwarden.orders import (
    AUTH_HEADER,
    KEY_BYTES,
    OrderSigner,
    OrderVerifier,
    new_key,
    read_key,
)


@pytest.mark.parametrize(
    ("text", "hook"),
    [
        (
            "http://127.0.0.1:8000/?/answermode%20auto",
            Hook("http", "http://127.0.0.1:8000/?/answermode%20auto"),
        ),
        ("https://vm.local/health", Hook("http", "https://vm.local/health")),
        ("tcp://10.0.0.7:5070", Hook("tcp", "10.0.0.7:5070")),
        ("sip://10.0.0.7:5060", Hook("sip", "10.0.0.7:5060")),
        (
            "/usr/bin/vmctl start --now",
            Hook("exec", "/usr/bin/vmctl start --now", ("/usr/bin/vmctl", "start", "--now")),
        ),
        ("sh -c 'echo \"a b\"'", Hook("exec", "sh -c 'echo \"a b\"'", ("sh", "-c", 'echo "a b"'))),
    ],
)
def test_hooks_are_read_as_written(text: str, hook: Hook) -> None:
    assert parse_hook(text) == hook


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("ftp://x/y", "ftp:// is not one of"),
        ("tcp://10.0.0.7", "is not tcp://HOST:PORT"),
        ("sip://host:5060\r\nX: y", "is not sip://HOST:PORT"),
        ("http:///path", "has no host"),
        ("sh -c 'unclosed", "No closing quotation"),
    ],
)
def test_unusable_hooks_are_named_in_the_error(text: str, says: str) -> None:
    with pytest.raises(HookError, match="--voicemail-health") as error:
        parse_hook(text, "--voicemail-health")
    assert says in str(error.value)


def test_an_order_cannot_be_a_probe() -> None:
    with pytest.raises(HookError, match="--voicemail-activate: an order is an HTTP call"):
        hook_config("sip://10.0.0.7:5060", "tcp://10.0.0.7:5070", "true")


def _script(path: Path, body: str) -> str:
    """A command line running `body` in sh, written as a user would put it in the pod spec."""
    path.write_text(body)
    return f"sh {shlex.quote(str(path))}"


class Server:
    """A third-party server as seen through shell hooks: a role file the hooks write, the
    environment each order came with, and a health switch."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.up = tmp / "up"
        self.up.touch()
        self.orders = tmp / "orders"
        record = 'echo "$1 $PAIRWARDEN_ACTIVE $PAIRWARDEN_EPOCH $PAIRWARDEN_VALID_FOR_MS '
        record += '$PAIRWARDEN_VALID_UNTIL $PAIRWARDEN_ACTIVE_CONTACT $PAIRWARDEN_HOLD_MS" >> '
        record += shlex.quote(str(self.orders))
        self.fail = tmp / "fail"
        refuse = f"test -e {shlex.quote(str(self.fail))} && exit 1"
        order = _script(tmp / "order.sh", f"{refuse}\n{record}\n")
        self.config = hook_config(
            health=f"test -e {shlex.quote(str(self.up))}",
            activate=f"{order} activate",
            deactivate=f"{order} deactivate",
            stats=_script(tmp / "stats.sh", f"cat {shlex.quote(str(tmp / 'stats.json'))}"),
            timeout=5.0,
        )

    def lines(self) -> list[list[str]]:
        if not self.orders.exists():
            return []
        return [line.split(" ") for line in self.orders.read_text().splitlines()]


async def test_orders_run_the_hooks_with_the_order_in_their_environment(tmp_path: Path) -> None:
    server, clock = Server(tmp_path), ManualClock()
    vm = HookVoicemail(server.config, clock)
    view = await vm.status()
    assert view.up and not view.answering and view.epoch == 0
    assert await vm.order(True, 3, 25.0, StandbyCalls(redirect="10.0.0.6:5060")) == 200
    until = (clock.wall() + timedelta(seconds=25)).isoformat().replace("+00:00", "Z")
    assert server.lines()[-1] == ["activate", "1", "3", "25000", until, "10.0.0.6:5060", "0"]
    view = await vm.status()
    assert view.answering and view.epoch == 3
    # An older epoch is refused before any hook runs: a deposed agent's replay does nothing.
    assert await vm.order(False, 2) == 409
    assert len(server.lines()) == 1
    assert await vm.order(False, 4, 0.0, StandbyCalls(hold_for=8.0)) == 200
    assert server.lines()[-1] == ["deactivate", "0", "4", "0", "", "", "8000"]
    assert not (await vm.status()).answering


async def test_a_failed_hook_is_not_an_order_obeyed(tmp_path: Path) -> None:
    server, clock = Server(tmp_path), ManualClock()
    vm = HookVoicemail(server.config, clock)
    server.fail.touch()
    assert await vm.order(True, 1, 25.0) is None  # the agent sends it again
    view = await vm.status()
    assert not view.answering and view.epoch == 0


async def test_an_unrenewed_active_order_is_undone_by_the_adapter(tmp_path: Path) -> None:
    server, clock = Server(tmp_path), ManualClock()
    vm = HookVoicemail(server.config, clock)
    assert await vm.order(True, 1, 25.0) == 200
    clock.advance(24.9)
    assert (await vm.status()).answering
    clock.advance(0.1)  # the agent's fencing deadline, and no renewal came
    assert not (await vm.status()).answering
    assert [line[0] for line in server.lines()] == ["activate", "deactivate"]


async def test_a_server_that_was_down_is_ordered_again(tmp_path: Path) -> None:
    server, clock = Server(tmp_path), ManualClock()
    vm = HookVoicemail(server.config, clock)
    assert await vm.order(True, 1, 25.0) == 200
    server.up.unlink()
    assert not (await vm.status()).up
    server.up.touch()
    view = await vm.status()
    assert view.up and not view.answering  # a restarted server forgot its orders


@pytest.mark.parametrize(
    ("stats", "counts"),
    [
        ({"calls": 2, "inactiveCalls": 5, "cpuPercent": 12.5}, (2, 5, 12.5)),
        ({"calls": -1, "inactiveCalls": True, "cpuPercent": "hot"}, (0, 0, None)),
        ([1, 2], (0, 0, None)),
        ("not json", (0, 0, None)),
    ],
)
async def test_stats_are_read_defensively(
    tmp_path: Path, stats: Any, counts: tuple[Any, ...]
) -> None:
    server = Server(tmp_path)
    text = stats if isinstance(stats, str) else json.dumps(stats)
    (tmp_path / "stats.json").write_text(text)
    view = await HookVoicemail(server.config, ManualClock()).status()
    assert view.up and (view.calls, view.inactive_calls, view.cpu_percent) == counts


async def test_a_hung_hook_fails_and_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    hang = _script(tmp_path / "hang.sh", f"sleep 30; touch {shlex.quote(str(marker))}")
    config = hook_config("true", hang, "true", timeout=0.5)
    vm = HookVoicemail(config, ManualClock())
    assert await vm.order(True, 1, 25.0) is None
    assert not (await vm.status()).answering
    assert not marker.exists()


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A server's HTTP API: records each order's JSON body."""
    received: list[dict[str, Any]] = []

    async def order(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/role", order)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


async def test_http_hooks_post_the_order(endpoint: tuple[str, list[dict[str, Any]]]) -> None:
    base, received = endpoint
    clock = ManualClock()
    config = hook_config(f"{base}/health", f"{base}/role", f"{base}/role")
    vm = HookVoicemail(config, clock)
    try:
        assert (await vm.status()).up
        assert await vm.order(True, 7, 12.5, StandbyCalls(redirect="10.0.0.6:5060")) == 200
        body = received[-1]
        assert body["active"] is True and body["epoch"] == 7 and body["validForMs"] == 12500
        assert body["validUntil"].endswith("Z") and body["activeContact"] == "10.0.0.6:5060"
        assert await vm.order(False, 8) == 200
        assert received[-1]["active"] is False and received[-1]["validUntil"] is None
        config404 = hook_config(f"{base}/nope", f"{base}/role", f"{base}/role")
        assert not (await HookVoicemail(config404, clock).status()).up
    finally:
        await vm.close()


async def test_http_hooks_sign_the_order_as_the_reference_process_checks_it() -> None:
    """A third-party server can check the agent's orders with the same codec (or the standard
    library): the HTTP hooks send the `Authorization` header over the exact body."""
    key = new_key()
    verifier, checked = OrderVerifier(), []

    async def order(request: web.Request) -> web.Response:
        got = verifier.check(key, await request.read(), request.headers.get(AUTH_HEADER))
        checked.append(got)
        return web.Response(status=got.status)

    app = web.Application()
    app.router.add_post("/role", order)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    config = hook_config("tcp://127.0.0.1:1", f"{base}/role", f"{base}/role")
    signed = HookVoicemail(config, ManualClock(), OrderSigner(key))
    foreign = HookVoicemail(config, ManualClock(), OrderSigner(new_key()))
    try:
        assert await signed.order(True, 3, 10.0) == 200
        assert checked[-1].order is not None and checked[-1].order["epoch"] == 3
        assert await foreign.order(True, 4, 10.0) is None  # the server said 401: not obeyed
        assert checked[-1].status == 401
    finally:
        await signed.close()
        await foreign.close()
        await runner.cleanup()


async def test_tcp_and_sip_checks(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    tcp_port = listener.getsockname()[1]
    loop = asyncio.get_running_loop()

    class Peer(asyncio.DatagramProtocol):
        """A SIP server that knows no such user: still a server that is up."""

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            lines = data.decode().split("\r\n")
            call_id = next(x.split(":", 1)[1].strip() for x in lines if x.startswith("Call-ID"))
            self.transport.sendto(
                f"SIP/2.0 100 Trying\r\nCall-ID: {call_id}\r\n\r\n".encode(), addr
            )
            self.transport.sendto(
                f"SIP/2.0 404 Not Found\r\nCall-ID: {call_id}\r\n\r\n".encode(), addr
            )

    transport, _ = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    sip_port = transport.get_extra_info("sockname")[1]
    try:
        clock = ManualClock()
        for health, up in (
            (f"tcp://127.0.0.1:{tcp_port}", True),
            (f"sip://127.0.0.1:{sip_port}", True),
        ):
            config = hook_config(health, "true", "true", timeout=3.0)
            assert (await HookVoicemail(config, clock).status()).up is up, health
        listener.close()
        transport.close()
        for health in (f"tcp://127.0.0.1:{tcp_port}", f"sip://127.0.0.1:{sip_port}"):
            config = hook_config(health, "true", "true", timeout=1.0)
            assert not (await HookVoicemail(config, clock).status()).up, health
    finally:
        listener.close()
        transport.close()


def test_only_a_final_answer_to_our_options_counts() -> None:
    request = sip_options_request("10.0.0.7:5060", ("10.0.0.1", 40000), "c-1").decode()
    assert request.startswith("OPTIONS sip:10.0.0.7:5060 SIP/2.0\r\n")
    assert "\r\nCall-ID: c-1\r\n" in request and request.endswith("\r\n\r\n")
    assert sip_final_status(b"SIP/2.0 200 OK\r\nCall-ID: c-1\r\n\r\n", "c-1") == 200
    assert sip_final_status(b"SIP/2.0 503 Service Unavailable\r\ni: c-1\r\n\r\n", "c-1") == 503
    assert sip_final_status(b"SIP/2.0 180 Ringing\r\nCall-ID: c-1\r\n\r\n", "c-1") is None
    assert sip_final_status(b"SIP/2.0 200 OK\r\nCall-ID: other\r\n\r\n", "c-1") is None
    assert sip_final_status(b"\xff\xfe garbage", "c-1") is None
    assert sip_final_status(b"INVITE sip:x SIP/2.0\r\nCall-ID: c-1\r\n\r\n", "c-1") is None


def test_the_agent_takes_the_adapter_when_a_health_hook_is_named(tmp_path: Path) -> None:
    """A hook that cannot be used is logged and the member reports down; the agent runs on."""
    parser = argparse.ArgumentParser()
    agent_main.configure(parser)
    common = ["--pair", "vm", "--member", "primary", "--order-key-file", str(tmp_path / "key")]
    assert isinstance(agent_main._voicemail(parser.parse_args(common)), VoicemailClient)
    hooks = ["--voicemail-health", "sip://127.0.0.1:5060", "--voicemail-activate", "true"]
    args = parser.parse_args([*common, *hooks, "--voicemail-deactivate", "true"])
    assert isinstance(agent_main._voicemail(args), HookVoicemail)
    bad = parser.parse_args([*common, *hooks])  # no deactivate hook
    assert isinstance(agent_main._voicemail(bad), Unusable)


async def test_a_sip_check_on_a_closed_port_says_down_at_once() -> None:
    """The ICMP answer of a closed port is a crashed server: down now, not after the timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = hook_config(f"sip://127.0.0.1:{port}", "true", "true", timeout=30.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not (await HookVoicemail(config, ManualClock()).status()).up
    assert loop.time() - started < 10.0  # far under the timeout: the ICMP answer, not a wait


async def test_a_renewal_does_not_wait_for_the_server(tmp_path: Path) -> None:
    """The agent renews its Lease in the step that renews the order: a hung server must not
    hold the heartbeat back. The renewal is extended at once; a failed hook is tried again
    with the next renewal, and whether the server is there is the health check's to say."""
    hang = tmp_path / "hang"
    order = _script(tmp_path / "order.sh", f"test -e {shlex.quote(str(hang))} && sleep 30\ntrue")
    clock = ManualClock()
    vm = HookVoicemail(hook_config("true", order, "true", timeout=0.5), clock)
    assert await vm.order(True, 1, 25.0) == 200
    hang.touch()
    clock.advance(10)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await vm.order(True, 1, 25.0) == 200  # at once, though the hook hangs
    assert loop.time() - started < 0.4
    clock.advance(20)  # past the first order's expiry, within the renewal's
    assert (await vm.status()).answering
    assert vm._renewing is not None
    await vm._renewing  # the hung hook times out
    hang.unlink()
    assert await vm.order(True, 1, 25.0) == 200  # tried again, in the background again
    await vm._renewing
    assert (await vm.status()).answering


def test_each_start_of_the_agent_writes_a_new_order_key_and_a_missing_volume_is_no_crash(
    tmp_path: Path,
) -> None:
    first = agent_main._order_signer(tmp_path / "key")
    assert read_key(tmp_path / "key") == first.key
    second = agent_main._order_signer(tmp_path / "key")  # the agent restarted
    assert read_key(tmp_path / "key") == second.key != first.key
    # No order-key volume (an old manifest): logged; the voicemail will answer 401.
    unwritten = agent_main._order_signer(tmp_path / "no-volume" / "key")
    assert len(unwritten.key) == KEY_BYTES and not (tmp_path / "no-volume").exists()
