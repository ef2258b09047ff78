"""The file API each member's agent serves (mounted under `/replication/`): manifest,
download, staged upload with checksum verification, staged delete, batch commit, database
snapshot and install, and the member's non-replicated settings.

Authentication: `Authorization: Bearer <pair>.<secret>`, one token per pair (the Secret
`<pair>-replication-token`). No or malformed or wrong token: 401. A well-formed token naming
another pair: 403, so a Job pointed at the wrong pair's member fails loudly, not silently;
no answer names a pair (the refused client learns nothing it did not send).
Every error is JSON `{"error": <reason>, "message": ...}` and leaves the tree untouched.

No client holds the writer lock while it sends: an upload streams into a staging file of its
own without the lock (each body read has BODY_TIMEOUT), and only the short, local steps that
follow (accept, commit, install) take it. Headers are validated and bounded before anything
is staged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import secrets
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from pairwarden.protocol import DEFAULT_SETTINGS_FILE
from pairwarden.replication import drift
from pairwarden.replication.db import Database, SnapshotInfo
from pairwarden.replication.manifest import Scanner
from pairwarden.replication.paths import (
    STATE_DIR,
    PathRefused,
    check_directories,
    check_file_path,
    resolve_inside,
)
from pairwarden.replication.storage import Batches

SHA_HEADER = "X-Pairwarden-Sha256"
MTIME_HEADER = "X-Pairwarden-Mtime-Ns"
VERSION_HEADER = "X-Pairwarden-Db-Version"
DEFAULT_MAX_BODY = 4 << 30
# Seconds a body may go without sending a byte: a stalled client gives up its request (408)
# and its staging file, never anything another client waits for.
BODY_TIMEOUT = 30.0
# Seconds a connection may take to send a whole request line and headers (from its opening,
# or from the end of its previous response), and may stay idle between requests: a client
# trickling headers (slowloris) is closed then, holding no more than a socket till then.
HEADER_TIMEOUT = 10.0
MAX_MTIME_NS = (1 << 63) - 1  # what os.utime takes
_MTIME_RE = re.compile(r"^[0-9]{1,19}$")
CHUNK = 1 << 20
_BATCH_RE = re.compile(r"^[0-9a-f]{16}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def split_token(token: str) -> tuple[str, str] | None:
    """`<pair>.<secret>` -> (pair, secret); the secret (token_urlsafe) holds no dot."""
    pair, dot, secret = token.strip().rpartition(".")
    return (pair, secret) if dot and pair and secret else None


def make_token(pair: str, secret: str) -> str:
    return f"{pair}.{secret}"


def _error(status: int, reason: str, message: str) -> web.Response:
    return web.json_response({"error": reason, "message": message}, status=status)


# The token itself, or a function reading it at each request: a Secret mounted into a pod
# can appear or change after the agent started.
Token = str | Callable[[], str | None]


class FileApi:
    """The state behind the routes; one per served root."""

    def __init__(
        self,
        root: Path,
        directories: list[str],
        pair: str,
        token: Token,
        max_body: int,
        writable: Callable[[], bool] = lambda: True,
    ) -> None:
        self.writable = writable
        self.body_timeout = BODY_TIMEOUT
        self.root = root
        self.directories = check_directories(directories)
        self.pair = pair
        self.token = token
        self.max_body = max_body
        self.state = root / STATE_DIR
        self.state.mkdir(parents=True, exist_ok=True)
        self.scanner = Scanner(root, self.directories, self.state / "manifest-cache.json")
        self.batches = Batches(root, self.directories)
        self.db = Database(root)
        self.lock = asyncio.Lock()  # one writer: uploads, commits and installs serialise
        self.recovered = self.batches.recover()
        for stale in self.state.glob("db-upload.*.part"):  # a killed process's receive
            stale.unlink(missing_ok=True)

    # ---------------------------------------------------------------------- auth, errors

    def check_writable(self) -> None:
        """A member that holds the active Lease takes no replication writes: a Job ordered
        before a role change may start after it (a pod starts seconds later on a real node)
        and would copy the old direction, deleting what the new active member has written
        since. Checked under the lock, right before the tree or the database changes."""
        if not self.writable():
            raise PathRefused(
                409, "target-active", "this member holds the active Lease: no replication writes"
            )

    def authorise(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return _error(401, "unauthorized", "missing bearer token")
        parts = split_token(presented)
        if parts is None:
            return _error(401, "unauthorized", "malformed token (expected <pair>.<secret>)")
        if not hmac.compare_digest(parts[0].encode(), self.pair.encode()):
            return _error(403, "wrong-pair", "the token is for another pair")
        expected = (self.token() if callable(self.token) else self.token) or ""
        if not expected.strip():
            return _error(503, "no-token", "this member has no replication token yet")
        if not hmac.compare_digest(presented.strip().encode(), expected.strip().encode()):
            return _error(401, "unauthorized", "wrong token")
        return None

    def file_path(self, request: web.Request) -> tuple[str, Path]:
        raw = request.query.get("path")
        if raw is None:
            raise PathRefused(400, "bad-path", "missing ?path=")
        clean = check_file_path(raw, self.directories)
        return clean, resolve_inside(self.root, clean)

    def batch_id(self, request: web.Request) -> str:
        batch = request.match_info["batch"]
        if not _BATCH_RE.match(batch) or not self.batches.exists(batch):
            raise PathRefused(404, "no-batch", f"no open batch {batch!r}")
        return batch

    def expected_sha(self, request: web.Request) -> str:
        sha = request.headers.get(SHA_HEADER, "").lower()
        if not _SHA_RE.match(sha):
            raise PathRefused(400, "bad-checksum", f"{SHA_HEADER} must be 64 hex digits")
        return sha

    def mtime(self, request: web.Request) -> int | None:
        """The optional modification time to stamp: decimal nanoseconds that os.utime takes,
        else 400 before anything is staged."""
        raw = request.headers.get(MTIME_HEADER)
        if raw is None:
            return None
        if not _MTIME_RE.match(raw) or int(raw) > MAX_MTIME_NS:
            raise PathRefused(400, "bad-header", f"{MTIME_HEADER} must be 0..{MAX_MTIME_NS}")
        return int(raw)

    def check_length(self, request: web.Request) -> None:
        if request.content_length is not None and request.content_length > self.max_body:
            raise PathRefused(413, "too-large", f"body over {self.max_body} bytes")

    async def receive(self, request: web.Request, dest: Path, sha: str) -> int:
        """Stream the body into `dest`, verify its SHA-256, fsync. On any failure `dest` is
        removed: nothing half-written stays staged."""
        h = hashlib.sha256()
        size = 0
        pending = bytearray()
        f = await asyncio.to_thread(open, dest, "wb")
        try:
            try:
                while chunk := await self.read_some(request):
                    size += len(chunk)
                    if size > self.max_body:
                        raise PathRefused(413, "too-large", f"body over {self.max_body} bytes")
                    h.update(chunk)
                    pending += chunk
                    if len(pending) >= CHUNK:  # batch small network reads into one write
                        await asyncio.to_thread(f.write, bytes(pending))
                        pending.clear()
                await asyncio.to_thread(_finish, f, bytes(pending))
            finally:
                await asyncio.to_thread(f.close)
            if h.hexdigest() != sha:
                raise PathRefused(422, "checksum-mismatch", f"body SHA-256 {h.hexdigest()}")
        except BaseException:
            await asyncio.to_thread(dest.unlink, missing_ok=True)
            raise
        return size

    async def read_some(self, request: web.Request) -> bytes:
        """The next piece of the body (b"" at its end), or 408 after `body_timeout` idle."""
        try:
            async with asyncio.timeout(self.body_timeout):
                return await request.content.readany()
        except TimeoutError:
            raise PathRefused(408, "timeout", f"no body data for {self.body_timeout} s") from None


def _finish(f: BinaryIO, tail: bytes) -> None:
    f.write(tail)
    f.flush()
    os.fsync(f.fileno())


STATE = web.AppKey("replication", FileApi)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    api = request.app[STATE]
    denied = api.authorise(request)
    if denied is not None:
        return denied
    try:
        return await handler(request)
    except PathRefused as exc:
        return _error(exc.status, exc.reason, str(exc))


async def manifest(request: web.Request) -> web.Response:
    api = request.app[STATE]
    only = request.query.getall("dir", None)
    if only is not None:
        only = check_directories(only)
        if missing := [d for d in only if d not in api.directories]:
            raise PathRefused(403, "outside-directories", f"not replicated: {missing}")
    async with api.lock:
        before = api.scanner.hashed
        entries = await asyncio.to_thread(api.scanner.scan, only)
    return web.json_response(
        {
            "directories": only if only is not None else api.directories,
            "entries": [e.to_wire() for e in entries],
            "hashed": api.scanner.hashed - before,
        }
    )


async def download(request: web.Request) -> web.StreamResponse:
    api = request.app[STATE]
    _, path = api.file_path(request)
    if not path.is_file():
        raise PathRefused(404, "not-found", "no such file")
    return web.FileResponse(path, chunk_size=CHUNK)


async def open_batch(request: web.Request) -> web.Response:
    api = request.app[STATE]
    async with api.lock:
        api.check_writable()
        batch = await asyncio.to_thread(api.batches.open)
    return web.json_response({"batch": batch}, status=201)


async def upload(request: web.Request) -> web.Response:
    api = request.app[STATE]
    clean, _ = api.file_path(request)
    batch = api.batch_id(request)
    sha = api.expected_sha(request)
    api.check_length(request)
    mtime = api.mtime(request)
    part = api.batches.part_path(batch, clean)
    size = await api.receive(request, part, sha)
    async with api.lock:  # the data and its record land together, after the client is done
        await asyncio.shield(
            asyncio.to_thread(api.batches.accept, batch, clean, part, sha, size, mtime)
        )
    return web.json_response({"path": clean, "size": size, "sha256": sha}, status=201)


async def stage_delete(request: web.Request) -> web.Response:
    api = request.app[STATE]
    clean, _ = api.file_path(request)
    batch = api.batch_id(request)
    await asyncio.to_thread(api.batches.stage_delete, batch, clean)
    return web.json_response({"path": clean, "staged": "delete"}, status=202)


async def commit(request: web.Request) -> web.Response:
    api = request.app[STATE]
    batch = api.batch_id(request)
    async with api.lock:
        api.check_writable()
        # shielded: a client that disconnects mid-commit must not cancel the renames
        steps, _ = await asyncio.shield(asyncio.to_thread(api.batches.commit, batch))
    put = sum(1 for s in steps if s.op == "put")
    return web.json_response({"batch": batch, "put": put, "deleted": len(steps) - put})


async def discard(request: web.Request) -> web.Response:
    api = request.app[STATE]
    batch = api.batch_id(request)
    async with api.lock:
        await asyncio.to_thread(api.batches.discard, batch)
    return web.json_response({"batch": batch, "discarded": True})


async def db_info(request: web.Request) -> web.Response:
    api = request.app[STATE]
    snap = await asyncio.to_thread(api.db.snapshot)
    installed = await asyncio.to_thread(api.db.installed)
    return web.json_response(
        {
            "snapshot": snap.to_wire() if snap else None,
            "installed": installed.to_wire() if installed else None,
            "backups": api.db.backups,
        }
    )


async def db_snapshot(request: web.Request) -> web.StreamResponse:
    api = request.app[STATE]
    snap = await asyncio.to_thread(api.db.snapshot)
    if snap is None:
        raise PathRefused(404, "no-database", "no database on this member")
    # Opened before answering: a concurrent newer snapshot renames over the path, not this fd.
    f = await asyncio.to_thread(open, api.db.snapshot_path, "rb")
    try:
        headers = {SHA_HEADER: snap.sha256, VERSION_HEADER: snap.version}
        resp = web.StreamResponse(headers=headers)
        resp.content_type = "application/vnd.sqlite3"
        resp.content_length = snap.size
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        await asyncio.to_thread(f.close)


async def db_install(request: web.Request) -> web.Response:
    api = request.app[STATE]
    sha = api.expected_sha(request)
    api.check_length(request)
    # Received without the lock, into a file of this request's own.
    part = api.state / f"db-upload.{secrets.token_hex(8)}.part"
    size = await api.receive(request, part, sha)
    info = SnapshotInfo(sha, size)
    async with api.lock:
        try:
            api.check_writable()
        except PathRefused:
            part.unlink(missing_ok=True)
            raise
        await asyncio.shield(asyncio.to_thread(api.db.install, part, info))
    return web.json_response({"installed": info.to_wire()})


async def settings(request: web.Request) -> web.Response:
    api = request.app[STATE]
    path = api.root / DEFAULT_SETTINGS_FILE
    try:
        data = drift.load_settings(path)
    except ValueError as exc:
        raise PathRefused(500, "bad-settings", str(exc)) from exc
    return web.json_response(
        {"settings": data, "digest": hashlib.sha256(drift.canonical(data)).hexdigest()}
    )


def make_app(
    root: Path,
    directories: list[str],
    pair: str,
    token: Token,
    max_body: int = DEFAULT_MAX_BODY,
    writable: Callable[[], bool] = lambda: True,
) -> web.Application:
    """The file API for the data directory `root` (also holding UnityDb.sqlite and
    member-settings.json). Recovers any batch a previous process left. `writable` says whether
    batches and database installs are taken now (the agent: not while it holds the active
    Lease; refused with 409 `target-active`). Mount it with
    `parent.add_subapp("/replication/", make_app(...))`; TLS is the site's (`ssl_context`)."""
    api = FileApi(root, directories, pair, token, max_body, writable)
    app = web.Application(middlewares=[_guard], client_max_size=1 << 20)
    app[STATE] = api
    app.router.add_get("/manifest", manifest)
    app.router.add_get("/files", download)
    app.router.add_post("/batches", open_batch)
    app.router.add_put("/batches/{batch}/files", upload)
    app.router.add_delete("/batches/{batch}/files", stage_delete)
    app.router.add_post("/batches/{batch}/commit", commit)
    app.router.add_delete("/batches/{batch}", discard)
    app.router.add_get("/db", db_info)
    app.router.add_get("/db/snapshot", db_snapshot)
    app.router.add_put("/db", db_install)
    app.router.add_get("/settings", settings)

    async def _close(_: web.Application) -> None:
        api.db.close()

    app.on_cleanup.append(_close)
    return app


def header_bounded_runner(
    app: web.Application, header_timeout: float = HEADER_TIMEOUT, lingering_time: float = 10.0
) -> web.AppRunner:
    """A runner whose connections must complete each request's headers within
    `header_timeout`. aiohttp has no header timeout by that name, but (from 3.11, pinned
    here) its keep-alive timer starts when a connection opens and again after each response,
    is not reset by arriving bytes, and closes the connection if no whole request has
    arrived by then: a keep-alive timeout is a header timeout. A request being handled (a
    slow upload's body) is never cut by it: bodies have BODY_TIMEOUT. `lingering_time`: how
    long the unread rest of a refused request's body is still read and dropped before the
    connection closes, so that the client reads the refusal rather than a reset (aiohttp's
    default, 10 s)."""
    return web.AppRunner(
        app, access_log=None, keepalive_timeout=header_timeout, lingering_time=lingering_time
    )


async def start_site(
    runner: web.AppRunner, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> int:
    """Listen on host:port (0: any free port); the bound port."""
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else port


async def serve(
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    header_timeout: float = HEADER_TIMEOUT,
) -> tuple[web.AppRunner, int]:
    """Run a file API on its own (tests, the benchmark, `python -m ...serve`), mounted under
    `/replication/` exactly as the agent mounts it. Returns the runner and the bound port."""
    root = web.Application(client_max_size=1 << 20)
    root.add_subapp("/replication/", app)
    runner = header_bounded_runner(root, header_timeout)
    await runner.setup()
    return runner, await start_site(runner, host, port, ssl_context)
