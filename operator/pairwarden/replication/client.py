"""The replicate path: compare two members' manifests, copy what changed into one batch on
the target, commit it, then copy the database snapshot if it differs from what the target
installed last. Callable from tests (`replicate`), wrapped by `pairwarden replicate`."""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

from pairwarden import checkpoints
from pairwarden.protocol import ReplicationReport
from pairwarden.replication.drift import compare
from pairwarden.replication.fileapi import MTIME_HEADER, SHA_HEADER
from pairwarden.replication.manifest import Entry, Plan, diff

CHUNK = 1 << 20
# A new pair's first Job may start before the kubelet has put the new token Secret into the
# agents' volumes (it syncs mounted Secrets about once a minute): wait this long for it.
TOKEN_WAIT = 120.0
TOKEN_POLL = 1.0


class ReplicationError(RuntimeError):
    """A failed run; the message says which member and what it answered."""


class _Member:
    def __init__(self, session: aiohttp.ClientSession, base: str, role: str) -> None:
        self.session = session
        self.base = base.rstrip("/")
        self.role = role

    async def fail(self, resp: aiohttp.ClientResponse, what: str) -> ReplicationError:
        try:
            body = await resp.json(content_type=None)
            detail = f"{body.get('error')}: {body.get('message')}"
        except (ValueError, aiohttp.ClientError, AttributeError):
            detail = (await resp.text())[:200]
        return ReplicationError(f"{what} on {self.role} {self.base}: HTTP {resp.status} {detail}")

    async def json(self, method: str, path: str, what: str, **kw: Any) -> Any:
        try:
            async with self.session.request(method, self.base + path, **kw) as resp:
                if resp.status >= 400:
                    raise await self.fail(resp, what)
                return await resp.json()
        except aiohttp.ClientConnectionError as exc:
            raise ReplicationError(f"{what} on {self.role} {self.base}: {exc}") from exc


async def _manifest(member: _Member, dirs: Sequence[str] | None) -> list[Entry]:
    params = [("dir", d) for d in dirs] if dirs else None
    data = await member.json("GET", "/manifest", "manifest", params=params)
    return [Entry.from_wire(e) for e in data["entries"]]


async def _stream(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for chunk in resp.content.iter_chunked(CHUNK):
        yield chunk


async def _copy_file(src: _Member, dst: _Member, batch: str, entry: Entry) -> int | None:
    """Bytes sent, or None when the file changed or vanished on the source since its
    manifest (the target refuses the checksum; the next run carries the new content)."""
    params = {"path": entry.path}
    async with src.session.get(src.base + "/files", params=params) as got:
        if got.status == 404:
            return None
        if got.status >= 400:
            raise await src.fail(got, f"download {entry.path!r}")
        headers = {SHA_HEADER: entry.sha256, MTIME_HEADER: str(entry.mtime_ns)}
        if got.content_length is not None:
            headers["Content-Length"] = str(got.content_length)
        url = f"{dst.base}/batches/{batch}/files"
        async with dst.session.put(url, params=params, data=_stream(got), headers=headers) as put:
            if put.status == 422:
                return None
            if put.status >= 400:
                raise await dst.fail(put, f"upload {entry.path!r}")
            return int((await put.json())["size"])


async def _files(
    src: _Member,
    dst: _Member,
    dirs: Sequence[str] | None,
    report: ReplicationReport,
    concurrency: int,
) -> None:
    source, target = await asyncio.gather(_manifest(src, dirs), _manifest(dst, dirs))
    plan: Plan = diff(source, target)
    report.bytes_changed = plan.bytes_to_copy
    if plan.empty:
        return
    batch = str((await dst.json("POST", "/batches", "open batch"))["batch"])
    try:
        gate = asyncio.Semaphore(concurrency)
        uploads = 0

        async def one(entry: Entry) -> None:
            nonlocal uploads
            async with gate:
                sent = await _copy_file(src, dst, batch, entry)
            if sent is None:
                report.skipped.append(entry.path)
                return
            report.files += 1
            report.bytes += sent
            uploads += 1
            checkpoints.reached(f"replicate:after-upload:{uploads}")

        await asyncio.gather(*(one(e) for e in plan.copy))
        for path in plan.delete:
            await dst.json(
                "DELETE", f"/batches/{batch}/files", f"delete {path!r}", params={"path": path}
            )
        done = await dst.json("POST", f"/batches/{batch}/commit", "commit")
        report.deleted = int(done["deleted"])
    except BaseException:
        try:  # best effort: the target also discards it when the next batch opens
            async with dst.session.delete(f"{dst.base}/batches/{batch}"):
                pass
        except (aiohttp.ClientError, OSError, asyncio.CancelledError):
            pass
        raise


async def _database(src: _Member, dst: _Member, report: ReplicationReport) -> None:
    src_info, dst_info = await asyncio.gather(
        src.json("GET", "/db", "database info"), dst.json("GET", "/db", "database info")
    )
    snap = src_info.get("snapshot")
    if snap is None:
        return
    report.db_version = str(snap["version"])
    installed = dst_info.get("installed")
    if installed is not None and installed.get("sha256") == snap["sha256"]:
        return
    async with src.session.get(src.base + "/db/snapshot") as got:
        if got.status >= 400:
            raise await src.fail(got, "database snapshot")
        headers = {SHA_HEADER: got.headers[SHA_HEADER]}
        if got.content_length is not None:
            headers["Content-Length"] = str(got.content_length)
        async with dst.session.put(dst.base + "/db", data=_stream(got), headers=headers) as put:
            if put.status >= 400:
                raise await dst.fail(put, "database install")
            body = await put.json()
    report.db_copied = True
    report.db_bytes = int(body["installed"]["size"])
    report.db_version = str(body["installed"]["version"])


async def _settings(src: _Member, dst: _Member, report: ReplicationReport) -> None:
    a, b = await asyncio.gather(
        src.json("GET", "/settings", "settings"), dst.json("GET", "/settings", "settings")
    )
    report.differing_settings = compare(a["settings"], b["settings"])


async def _token_arrived(member: _Member) -> bool:
    """False only while the member answers `no-token` (it has no replication token yet)."""
    try:
        async with member.session.get(member.base + "/settings") as resp:
            if resp.status != 503:
                return True
            body = await resp.json(content_type=None)
            return not (isinstance(body, dict) and body.get("error") == "no-token")
    except (aiohttp.ClientError, ValueError, OSError, TimeoutError):
        return True  # a real fault: the run itself reports it


async def await_token(members: Sequence[_Member], wait: float, poll: float = TOKEN_POLL) -> None:
    """Wait up to `wait` seconds for every member to hold the pair's token, so the first Job
    of a new pair neither fails nor raises a Warning while the Secret is on its way."""
    deadline = time.monotonic() + wait
    for member in members:
        for _ in range(max(1, math.ceil(wait / poll))):  # polled: the token is another's write
            if await _token_arrived(member) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(poll)


async def replicate(
    source: str,
    target: str,
    token: str,
    *,
    directories: Sequence[str] | None = None,
    files: bool = True,
    database: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    concurrency: int = 8,
    request_timeout: float = 3600.0,
    token_wait: float = TOKEN_WAIT,
) -> ReplicationReport:
    """One replication run from `source` to `target` (file API base URLs, e.g.
    `http://10.1.2.3:8082/replication`). A member's failure does not raise: the report
    says `ok: false` and `error` names the member, the step and its answer."""
    report = ReplicationReport(source, target)
    began = time.monotonic()
    headers = {"Authorization": f"Bearer {token.strip()}"}
    connector = aiohttp.TCPConnector(ssl=ssl_context if ssl_context is not None else True)
    client_timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=10)
    async with aiohttp.ClientSession(
        headers=headers, connector=connector, timeout=client_timeout
    ) as session:
        src, dst = _Member(session, source, "source"), _Member(session, target, "target")
        try:
            await await_token((src, dst), token_wait)
            if files:
                await _files(src, dst, directories, report, concurrency)
            if database:
                await _database(src, dst, report)
            await _settings(src, dst, report)
        except ReplicationError as exc:
            report.error = str(exc)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            report.error = f"{type(exc).__name__}: {exc}"
    report.duration_seconds = round(time.monotonic() - began, 3)
    report.ok = report.error is None
    return report
