"""The TCP line protocol callers use (a stand-in for SIP until it comes).

    caller: CALL <caller-id>        server: ANSWERED <pod> <epoch>  |  REFUSED standby (closes)
    caller: MESSAGE <text>          server: STORED <message-id>
    caller: BYE                     server: BYE (closes)

A call stays in progress until BYE or disconnect, whatever role orders arrive meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from pairwarden_testbed.voicemail.core import VoicemailCore
from pairwarden_testbed.voicemail.store import MessageDatabase

FIRST_LINE_TIMEOUT = 10.0


class CallFrontend(Protocol):
    """A way calls reach the core; SIP will be a second implementation."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LineCallServer:
    def __init__(self, core: VoicemailCore, store: MessageDatabase, host: str, port: int) -> None:
        self._core = core
        self._store = store
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def close(self) -> None:
        """Stop listening and drop calls in progress (the process is stopping)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await asyncio.wait_for(reader.readline(), FIRST_LINE_TIMEOUT)
        verb, _, caller = first.decode(errors="replace").strip().partition(" ")
        if verb != "CALL":
            await _send(writer, "ERROR expected CALL")
            return
        answer = self._core.offer(caller)
        if answer.call is None:
            await _send(writer, "REFUSED standby")
            return
        call = answer.call
        try:
            await _send(writer, f"ANSWERED {self._core.pod} {call.epoch}")
            while line := await reader.readline():
                verb, _, rest = line.decode(errors="replace").strip().partition(" ")
                if verb == "BYE":
                    await _send(writer, "BYE")
                    return
                if verb == "MESSAGE":
                    msg_id = await asyncio.to_thread(
                        self._store.add, call.caller, rest, self._core.pod, call.epoch
                    )
                    await _send(writer, f"STORED {msg_id}")
                else:
                    await _send(writer, "ERROR unknown command")
        finally:
            self._core.hang_up(call)


async def _send(writer: asyncio.StreamWriter, line: str) -> None:
    writer.write(line.encode() + b"\n")
    await writer.drain()
