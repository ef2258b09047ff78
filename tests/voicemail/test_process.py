"""The voicemail server in process (call protocol, control port) and once as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pairwarden.clock import SystemClock
from pairwarden.orders import OrderSigner, new_key, signature, write_key
from pairwarden.protocol import MAX_ORDER_MS
from pairwarden_testbed.voicemail.control import make_app
from pairwarden_testbed.voicemail.core import VoicemailCore
from pairwarden_testbed.voicemail.lineproto import LineCallServer
from pairwarden_testbed.voicemail.store import DATA_DIRECTORIES, MessageDatabase, prepare_data_dir


class Server:
    def __init__(self, calls: LineCallServer, control: str, signer: OrderSigner) -> None:
        self.calls = calls
        self.control = control
        self.signer = signer

    async def dial(self, caller: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.calls.port)
        writer.write(f"CALL {caller}\n".encode())
        await writer.drain()
        reply = (await reader.readline()).decode().strip()
        return reader, writer, reply

    async def post_role(self, active: bool, epoch: int, **extra: Any) -> int:
        order = {"active": active, "epoch": epoch, "validForMs": 60_000, **extra}
        return await self.post_order(order)

    async def post_order(self, body: Any) -> int:
        """Signed with the key the server holds, as its agent signs (an unsigned order: 401)."""
        data, headers = self.signer.sign(body)
        return await self.post_raw(data, headers)

    async def post_raw(self, data: bytes, headers: dict[str, str]) -> int:
        url = f"{self.control}/role"
        async with aiohttp.ClientSession() as s, s.post(url, data=data, headers=headers) as r:
            return r.status

    async def status(self) -> dict[str, object]:
        async with aiohttp.ClientSession() as s, s.get(f"{self.control}/status") as r:
            body: dict[str, object] = await r.json()
            return body


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    prepare_data_dir(tmp_path)
    store = MessageDatabase(tmp_path / "UnityDb.sqlite")
    core = VoicemailCore("vm-primary", SystemClock())
    calls = LineCallServer(core, store, "127.0.0.1", 0)
    await calls.start()
    signer = OrderSigner(new_key())
    runner = web.AppRunner(make_app(core, store, order_key=lambda: signer.key))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield Server(calls, f"http://127.0.0.1:{port}", signer)
    await calls.close()
    await runner.cleanup()
    store.close()


async def test_standby_refuses_and_counts(server: Server) -> None:
    reader, writer, reply = await server.dial("alice")
    assert reply == "REFUSED standby"
    assert await reader.read() == b""  # closed
    writer.close()
    status = await server.status()
    assert status["inactiveCalls"] == 1 and status["role"] == "standby"


async def test_active_call_stores_messages_and_survives_demotion(server: Server) -> None:
    assert await server.post_role(True, 1) == 200
    reader, writer, reply = await server.dial("alice")
    assert reply == "ANSWERED vm-primary 1"
    assert (await server.status())["callsInProgress"] == 1
    assert await server.post_role(False, 2) == 200
    # The call in progress goes on after the demotion; a new call is refused.
    writer.write(b"MESSAGE hello\n")
    assert (await reader.readline()).startswith(b"STORED ")
    _, other, refused = await server.dial("bob")
    assert refused == "REFUSED standby"
    other.close()
    writer.write(b"BYE\n")
    assert await reader.readline() == b"BYE\n"
    writer.close()
    status = await server.status()
    assert status["messages"] == 1 and status["callsInProgress"] == 0


async def test_stale_role_order_is_409(server: Server) -> None:
    assert await server.post_role(True, 7) == 200
    assert await server.post_role(False, 6) == 409  # older than the active order in force
    assert await server.post_role(True, 7) == 200
    assert (await server.status())["answering"] is True


async def test_an_order_without_the_agents_signature_is_401_and_changes_nothing(
    server: Server,
) -> None:
    """Any process in the pod reaches the loopback control port: only the agent holds the
    key. Unsigned, signed with another key, or a signed body altered: 401, role unchanged."""
    assert await server.post_role(True, 1) == 200
    forged = {"active": False, "epoch": 1_000_000_000, "validForMs": 60_000}
    body = json.dumps(forged).encode()
    json_only = {"Content-Type": "application/json"}
    assert await server.post_raw(body, json_only) == 401
    another_key = {**json_only, "Authorization": signature(new_key(), body)}
    assert await server.post_raw(body, another_key) == 401
    data, headers = server.signer.sign(forged)
    assert await server.post_raw(data.replace(b'"active":false', b'"active":true'), headers) == 401
    status = await server.status()
    assert status["answering"] is True and status["epoch"] == 1


async def test_a_replayed_or_late_order_of_the_agent_is_409(server: Server) -> None:
    """A revoke overtook an earlier grant on its way: the grant arrives late, or someone
    replays its captured bytes. It was issued before the last order taken: refused."""
    grant = server.signer.sign({"active": True, "epoch": 3, "validForMs": 60_000})
    assert await server.post_role(False, 4) == 200
    assert await server.post_raw(*grant) == 409
    assert (await server.status())["answering"] is False


@pytest.mark.parametrize(
    "valid",
    [{}, {"validForMs": None}, {"validForMs": -1}, {"validForMs": MAX_ORDER_MS + 1},
     {"validForMs": 1.5}, {"validForMs": True}, {"validForMs": "1000"}],
)  # fmt: skip
async def test_role_order_without_a_bounded_expiry_is_refused(
    server: Server, valid: dict[str, Any]
) -> None:
    """An order that never expires would hold the role and its epoch for good: a replay
    or a foreign order could then outlive every fence the agent puts up."""
    assert await server.post_order({"active": True, "epoch": 1_000_000_000, **valid}) == 400
    status = await server.status()
    assert status["answering"] is False and status["epoch"] == 0
    assert await server.post_role(False, 1) == 200  # the agent's own order still lands


async def test_disconnect_ends_the_call(server: Server) -> None:
    await server.post_role(True, 1)
    _, writer, _ = await server.dial("alice")
    writer.close()
    deadline = time.monotonic() + 5
    while (await server.status())["callsInProgress"] != 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_process_lays_out_data_and_exits_on_sigterm(tmp_path: Path) -> None:
    """The calls on the pod's address, the control port on loopback only (by default)."""
    control = _free_port()
    env = {**os.environ, "POD_NAME": "vm-secondary"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pairwarden_testbed.cli", "voicemail", "--address", "127.0.0.2",
         "--call-port", "0", "--control-port", str(control), "--data-dir", str(tmp_path),
         "--sip-port", "0"],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not _healthy(control):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        for name in DATA_DIRECTORIES:
            assert (tmp_path / name).is_dir()
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.2", control), 2),
        ):
            pass  # no role order from beside the pod
        with sqlite3.connect(tmp_path / "UnityDb.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def test_real_process_answers_sip_and_stores_messages_in_the_shared_store(tmp_path: Path) -> None:
    from pairwarden_testbed import sipcaller  # the built-in caller; sipp runs in tests/sip

    control = _free_port()
    (tmp_path / "store").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pairwarden_testbed.cli", "voicemail", "--address", "127.0.0.1",
         "--call-port", "0", "--control-port", str(control), "--data-dir", str(tmp_path / "d"),
         "--sip-port", "0", "--message-store", str(tmp_path / "store"), "--pod", "vm-p",
         "--drain-interval", "0.1", "--order-key-file", str(tmp_path / "order-key")],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    signer = OrderSigner(new_key())
    write_key(tmp_path / "order-key", signer.key)
    try:
        deadline = time.monotonic() + 15
        while not _healthy(control):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(urllib.error.HTTPError, match="401"):
            _post(control, "/role", {"active": True, "epoch": 1, "validForMs": 60_000})
        order = {"active": True, "epoch": 1, "validForMs": 60_000}
        status = _post(control, "/role", order, signer)
        assert status["storeOnline"] is True and status["sipPort"] > 0
        outcome = sipcaller.call_through(("127.0.0.1", status["sipPort"]), 200, mailbox="7000")
        assert outcome.answered and outcome.pod == "vm-p"
        # Offline store: the next message waits in UnityMTA, then the drain delivers it.
        _post(control, "/store", {"offline": True})
        assert sipcaller.call_through(
            ("127.0.0.1", status["sipPort"]), 200, mailbox="7000"
        ).answered
        deadline = time.monotonic() + 10
        while _get(control)["queuedMessages"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _post(control, "/store", {"offline": False})
        while len(list((tmp_path / "store" / "7000").glob("*.wav"))) != 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _get(control)["queuedMessages"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _post(
    port: int, path: str, body: dict[str, object], signer: OrderSigner | None = None
) -> dict[str, Any]:
    data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    if signer is not None:
        data, headers = signer.sign(body)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method="POST", headers=headers
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


def _get(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out
