"""A network link between one agent and the API server that a test can cut and heal.

A cut is a blackhole, as in a real partition: connections stay open but no byte crosses, and
new connections are accepted but never forwarded, so clients see timeouts, not errors. Healing
aborts the connections that were held (their bytes were dropped) and forwards new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pairwarden_testbed.localnode.loop import LoopThread

log = logging.getLogger(__name__)


class _Conn:
    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task = asyncio.current_task()
        self.open = asyncio.Event()  # set while bytes may cross
        self.open.set()

    def abort(self) -> None:
        self.client.transport.abort()
        if self.upstream is not None:
            self.upstream.transport.abort()
        if self.task is not None:
            self.task.cancel()


class NetworkLink:
    def __init__(
        self, target_host: str, target_port: int, listen_host: str = "127.0.0.1", name: str = ""
    ) -> None:
        self.name = name or f"link-{target_host}:{target_port}"
        self._target = (target_host, target_port)
        self._loop = LoopThread(self.name)
        self._cut = False
        self._conns: set[_Conn] = set()
        self._server = self._loop.run(asyncio.start_server(self._accept, listen_host, 0))
        self.host, self.port = self._server.sockets[0].getsockname()[:2]

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def cut(self) -> None:
        """Blackhole the link: existing and new connections stall."""
        self._loop.run(self._set_cut(True))
        log.info("%s cut", self.name)

    def heal(self) -> None:
        self._loop.run(self._set_cut(False))
        log.info("%s healed", self.name)

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            conns = list(self._conns)
            for conn in conns:
                conn.abort()
            # Let the cancelled forwarders finish before the loop stops under them.
            tasks = [c.task for c in conns if c.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self._loop.run(shutdown())
        self._loop.stop()

    async def _set_cut(self, cut: bool) -> None:
        self._cut = cut
        for conn in list(self._conns):
            if cut:
                conn.open.clear()
            elif not conn.open.is_set():
                conn.abort()  # its bytes were dropped: the stream cannot resume

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        self._conns.add(conn)
        try:
            if self._cut:
                conn.open.clear()
                await asyncio.Event().wait()  # accepted, never answered; heal() aborts it
            up_reader, conn.upstream = await asyncio.open_connection(*self._target)
            await asyncio.gather(
                self._forward(conn, reader, conn.upstream), self._forward(conn, up_reader, writer)
            )
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(conn)
            writer.transport.abort()
            if conn.upstream is not None:
                conn.upstream.transport.abort()

    @staticmethod
    async def _forward(
        conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if not conn.open.is_set():
                    await asyncio.Event().wait()  # dropped; wait to be aborted
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
