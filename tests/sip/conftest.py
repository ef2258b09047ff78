"""A voicemail member in process (core, SIP front end, message store, control port) and an
MWI listener: a UDP socket that answers NOTIFY with 200 OK and keeps what it was told."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pairwarden.clock import SystemClock
from pairwarden.orders import OrderSigner, new_key
from pairwarden_testbed.voicemail import sip
from pairwarden_testbed.voicemail.control import make_app
from pairwarden_testbed.voicemail.core import VoicemailCore
from pairwarden_testbed.voicemail.messagestore import DirectoryMessageStore, MessageQueue
from pairwarden_testbed.voicemail.sipua import SipServer
from pairwarden_testbed.voicemail.store import MessageDatabase, prepare_data_dir


class MwiListener:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.sock.getsockname()
        self.notifies: list[sip.SipMessage] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            msg = sip.parse(data)
            if msg.method == "NOTIFY":
                self.notifies.append(msg)
                self.sock.sendto(sip.response(msg, 200, "OK").encode(), addr)

    async def wait(self, count: int, within: float = 5.0) -> list[sip.SipMessage]:
        deadline = time.monotonic() + within
        while len(self.notifies) < count:
            assert time.monotonic() < deadline, f"{len(self.notifies)} NOTIFY of {count}"
            await asyncio.sleep(0.01)
        return list(self.notifies)

    def close(self) -> None:
        self.sock.close()


class Member:
    def __init__(self, core: VoicemailCore, server: SipServer, queue: MessageQueue,
                 store: DirectoryMessageStore, control: str) -> None:  # fmt: skip
        self.core, self.server, self.queue, self.store = core, server, queue, store
        self.control = control
        self.signer = OrderSigner(new_key())

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.server.port

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A role order is signed with the member's key, as its agent signs it."""
        if path == "/role":
            data, headers = self.signer.sign(body)
        else:
            data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as s,
            s.post(self.control + path, data=data, headers=headers) as r,
        ):
            return r.status, await r.json()

    async def status(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(self.control + "/status") as r:
            body: dict[str, Any] = await r.json()
            return body

    async def wait_for(self, what: str, predicate: Any, within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)


@pytest.fixture
def mwi() -> Iterator[MwiListener]:
    listener = MwiListener()
    yield listener
    listener.close()


@pytest.fixture
async def member(tmp_path: Path, mwi: MwiListener) -> AsyncIterator[Member]:
    data = tmp_path / "data"
    prepare_data_dir(data)
    (tmp_path / "store").mkdir()
    db = MessageDatabase(data / "UnityDb.sqlite")
    core = VoicemailCore("vm-primary", SystemClock())
    store = DirectoryMessageStore(tmp_path / "store")
    queue = MessageQueue(store, data / "UnityMTA")
    server = SipServer(core, "127.0.0.1", 0, queue=queue, mwi_target=mwi.address)
    await server.start()
    keys: list[bytes] = []
    app = make_app(core, db, queue=queue, extra_status=server.status, order_key=lambda: keys[0])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    member = Member(core, server, queue, store, f"http://127.0.0.1:{port}")
    keys.append(member.signer.key)
    yield member
    await server.close()
    await runner.cleanup()
    db.close()
