"""Running a sandbox from Python: `Sandbox` on its own loop in a background thread (tests,
benchmarks, the demo), `AsyncSandbox` inside an already running loop."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pairwarden_testbed.lifecycle import Service

from .admin import Fault
from .server import ApiServer, Settings

T = TypeVar("T")


class _Controls:
    """What both forms offer; `_call` runs a function on the server's loop.

    data_dir: where objects persist across restarts (None: memory only); crds_dir: extra
    CRDs to serve; port: 0 for any free one."""

    server: ApiServer

    def __init__(
        self,
        data_dir: str | Path | None = None,
        crds_dir: str | Path | None = None,
        port: int = 0,
        settings: Settings | None = None,
    ) -> None:
        self._args = (data_dir, crds_dir, settings)
        self._port = port
        self._tmp = Path(tempfile.mkdtemp(prefix="pairwarden-sandbox-"))

    def _call(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def kubeconfig_path(self) -> Path:
        return self.kubeconfig_for("admin")

    def kubeconfig_for(self, user: str) -> Path:
        """A kubeconfig whose token identifies `user` in `stats()["by_user"]`: one of the
        rig's own identities, a superuser (system:masters) like `admin`."""
        path = self._tmp / f"{user}.kubeconfig"
        if not path.exists():
            self._call(lambda: self.server.write_kubeconfig(path, user))
        return path

    def stats(self) -> dict[str, Any]:
        """`requests["verb resource"]`, `users[user]`, `by_user[user]["verb resource"]`,
        `resourceVersion`, `watchers`."""

        def snap() -> dict[str, Any]:
            data = self.server.stats.snapshot()
            data["resourceVersion"] = self.server.store.rv
            data["watchers"] = self.server.store.watcher_count()
            return data

        return self._call(snap)

    def reset_stats(self) -> None:
        self._call(self.server.stats.reset)

    def inject_fault(
        self,
        verb: str = "*",
        resource: str = "*",
        name: str | None = None,
        status: int = 500,
        count: int = 1,
        namespace: str | None = None,
        message: str = "",
        delay: float = 0.0,
        fraction: float = 1.0,
        seconds: float | None = None,
        user: str | None = None,
        spare: str | None = None,
    ) -> None:
        """Fail the next `count` requests matching verb (get, list, watch, create, update,
        patch, delete, deletecollection or *), resource (plural, `plural/status`,
        `plural.group` or *), name and namespace, with `status` and a Status body, after
        holding each for `delay` seconds (a slow API, or a client timeout). Status 0 serves
        the request after the delay (every request slow); `fraction` takes only that share of
        the matching requests (a 5xx storm); `seconds` ends the fault that long after now;
        `user` limits it to one identity's requests (`kubeconfig_for(user)`), `spare` keeps
        one identity's out of it."""
        fault = Fault(
            verb,
            resource,
            name,
            namespace,
            status,
            count,
            message,
            delay,
            fraction,
            seconds,
            user=user,
            spare=spare,
        )
        self._call(lambda: self.server.faults.add(fault))

    def end_watches(self) -> int:
        """End every open watch stream now (a server dropping slow clients): each client
        watches again; with `compact` first, it must list again (410 Gone)."""
        return self._call(self.server.store.end_watches)

    def lag_watches(self, seconds: float, user: str | None = None) -> None:
        """Hold every watch event `seconds` before it is written (0: no lag): a server
        behind its clients, which ends no stream and says nothing. `user`: only the watches
        of that identity (a slow client the server is behind for)."""

        def lag() -> None:
            self.server.settings.watch_lag = seconds
            self.server.settings.watch_lag_user = user

        self._call(lag)

    def clear_faults(self) -> None:
        self._call(self.server.faults.clear)

    def pending_faults(self) -> list[dict[str, Any]]:
        """The injected faults not yet used up, each with the count it has left."""
        return self._call(self.server.faults.pending)

    def compact(self) -> None:
        """Drop all watch history: resuming from an earlier resourceVersion gets 410."""
        self._call(self.server.store.compact)


class Sandbox(_Controls, Service):
    """`with Sandbox() as sb:` an API server on 127.0.0.1 served from a background thread."""

    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Sandbox:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self.server = ApiServer(*self._args)
                loop.run_until_complete(self.server.start(port=self._port))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
            loop.close()

        self._thread = threading.Thread(target=main, name="pairwarden-sandbox", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def _call(self, fn: Callable[[], T]) -> T:
        assert self._loop is not None, "sandbox is not running"

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop = None
        shutil.rmtree(self._tmp, ignore_errors=True)


class AsyncSandbox(_Controls):
    """`async with AsyncSandbox() as sb:` the same server on the caller's running loop."""

    def _call(self, fn: Callable[[], T]) -> T:
        return fn()

    async def start(self) -> AsyncSandbox:
        self.server = ApiServer(*self._args)
        await self.server.start(port=self._port)
        return self

    async def stop(self) -> None:
        await self.server.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    async def __aenter__(self) -> AsyncSandbox:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
