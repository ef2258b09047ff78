"""The file API over HTTP: authentication, refusals that touch nothing, verified uploads."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from pairwarden.replication.fileapi import (
    MTIME_HEADER,
    SHA_HEADER,
    STATE,
    make_app,
    make_token,
    serve,
)

from .helpers import DIRS, PAIR, TOKEN, member, seed, tree

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def staged(root: Path) -> list[Path]:
    return [p for p in (root / ".pairwarden-replication" / "batches").rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Basic abc"}, 401, "unauthorized"),
        ({"Authorization": "Bearer no-dot"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {make_token(PAIR, 'wrong')}"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {make_token('other', 'x')}"}, 403, "wrong-pair"),
    ],
)
async def test_tokens(tmp_path: Path, headers: dict[str, str], status: int, reason: str) -> None:
    async with member(tmp_path / "m") as url, aiohttp.ClientSession() as s:
        for method, path in (("GET", "/manifest"), ("POST", "/batches"), ("GET", "/db")):
            async with s.request(method, url + path, headers=headers) as resp:
                assert resp.status == status
                body = await resp.json()
                assert body["error"] == reason
                assert PAIR not in body["message"]  # a refusal never names the pair
        async with s.get(url + "/manifest", headers=AUTH) as resp:
            assert resp.status == 200


BAD_PATHS = [
    ("UnityMTA/../../etc/passwd", 400),
    ("/etc/passwd", 400),
    ("UnityMTA/a\x00b", 400),
    ("UnityMTA/./a", 400),
    ("Elsewhere/a", 403),
    (".pairwarden-replication/batches/x", 403),
    ("UnityMTA/escape/f", 403),  # a symlink to outside the tree
]


async def test_every_bad_path_is_a_4xx_and_touches_nothing(tmp_path: Path) -> None:
    root = tmp_path / "m"
    seed(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"secret")
    (root / "UnityMTA" / "escape").symlink_to(outside)
    before, outside_before = tree(root), (outside / "f").read_bytes()
    data = b"payload"
    sha = hashlib.sha256(data).hexdigest()
    async with member(root) as url, aiohttp.ClientSession(headers=AUTH) as s:
        async with s.post(url + "/batches") as resp:
            batch = (await resp.json())["batch"]
        for path, status in BAD_PATHS:
            q = {"path": path}
            requests = [
                s.get(url + "/files", params=q),
                s.put(url + f"/batches/{batch}/files", params=q, data=data,
                      headers={SHA_HEADER: sha}),
                s.delete(url + f"/batches/{batch}/files", params=q),
            ]  # fmt: skip
            for request in requests:
                async with request as resp:
                    assert resp.status == status, (path, resp.status)
                    assert "error" in await resp.json()
        async with s.post(url + f"/batches/{batch}/commit") as resp:
            assert resp.status == 200
            assert await resp.json() == {"batch": batch, "put": 0, "deleted": 0}
        async with s.get(url + "/files") as resp:
            assert resp.status == 400
    assert tree(root) == before
    assert (outside / "f").read_bytes() == outside_before
    assert list(outside.iterdir()) == [outside / "f"]


async def test_a_corrupted_upload_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "m"
    seed(root)
    before = tree(root)
    async with member(root) as url, aiohttp.ClientSession(headers=AUTH) as s:
        async with s.post(url + "/batches") as resp:
            batch = (await resp.json())["batch"]
        wrong = hashlib.sha256(b"what the source had").hexdigest()
        flipped = b"bits flipped in transit"
        async with s.put(url + f"/batches/{batch}/files", params={"path": "UnityMTA/n"},
                         data=flipped, headers={SHA_HEADER: wrong}) as resp:  # fmt: skip
            assert resp.status == 422
            assert (await resp.json())["error"] == "checksum-mismatch"
        assert staged(root) == []
        async with s.put(url + f"/batches/{batch}/files", params={"path": "UnityMTA/n"},
                         data=b"x", headers={SHA_HEADER: "nothex"}) as resp:  # fmt: skip
            assert resp.status == 400
        async with s.post(url + f"/batches/{batch}/commit") as resp:
            assert (await resp.json())["put"] == 0
    assert tree(root) == before


async def test_oversized_bodies_are_413_and_leave_nothing(tmp_path: Path) -> None:
    root = tmp_path / "m"
    seed(root)
    before = tree(root)
    big = b"x" * 5000
    sha = hashlib.sha256(big).hexdigest()

    async def chunked() -> object:  # no Content-Length: caught while streaming
        yield big

    async with member(root, max_body=4096) as url, aiohttp.ClientSession(headers=AUTH) as s:
        async with s.post(url + "/batches") as resp:
            batch = (await resp.json())["batch"]
        for body in (big, chunked()):
            async with s.put(url + f"/batches/{batch}/files", params={"path": "UnityMTA/big"},
                             data=body, headers={SHA_HEADER: sha}) as resp:  # fmt: skip
                assert resp.status == 413
        async with s.put(url + "/db", data=big, headers={SHA_HEADER: sha}) as resp:
            assert resp.status == 413
        assert staged(root) == []
    assert tree(root) == before
    assert not (root / "UnityDb.sqlite").exists()


async def test_download_and_settings(tmp_path: Path) -> None:
    root = tmp_path / "m"
    seed(root)
    (root / "member-settings.json").write_text('{"phoneLanguage": "en-US"}')
    async with member(root) as url, aiohttp.ClientSession(headers=AUTH) as s:
        async with s.get(url + "/files", params={"path": "UnityMTA/f003.bin"}) as resp:
            assert await resp.read() == (root / "UnityMTA/f003.bin").read_bytes()
        async with s.get(url + "/files", params={"path": "UnityMTA/nope"}) as resp:
            assert resp.status == 404
        async with s.get(url + "/settings") as resp:
            body = await resp.json()
            assert body["settings"] == {"phoneLanguage": "en-US"}
            assert len(body["digest"]) == 64


@asynccontextmanager
async def served(root: Path, body_timeout: float = 30.0) -> AsyncIterator[str]:
    app = make_app(root, DIRS, PAIR, TOKEN, 1 << 30)
    app[STATE].body_timeout = body_timeout
    runner, port = await serve(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}/replication"
    finally:
        await runner.cleanup()


async def _open(s: aiohttp.ClientSession, url: str) -> str:
    async with s.post(url + "/batches") as resp:
        return str((await resp.json())["batch"])


@pytest.mark.parametrize("mtime", ["9" * 5000, str(10**30), "-5", "1e9", "", "١٢"])
async def test_a_bad_mtime_header_is_400_and_stages_nothing(tmp_path: Path, mtime: str) -> None:
    root = tmp_path / "m"
    seed(root)
    data = b"payload"
    headers = {SHA_HEADER: hashlib.sha256(data).hexdigest(), MTIME_HEADER: mtime}
    async with member(root) as url, aiohttp.ClientSession(headers=AUTH) as s:
        batch = await _open(s, url)
        async with s.put(url + f"/batches/{batch}/files", params={"path": "UnityMTA/n"},
                         data=data, headers=headers) as resp:  # fmt: skip
            assert resp.status == 400
            assert (await resp.json())["error"] == "bad-header"
        assert staged(root) == []


async def test_concurrent_uploads_of_one_path_install_one_of_them_whole(tmp_path: Path) -> None:
    """The slow upload started first and finished last: it wins whole, never a mix."""
    root = tmp_path / "m"
    seed(root)
    slow, fast = b"S" * (3 << 20), b"F" * (3 << 20)
    go_on = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield slow[: 1 << 20]
        await go_on.wait()
        yield slow[1 << 20 :]

    async with member(root) as url, aiohttp.ClientSession(headers=AUTH) as s:
        batch = await _open(s, url)
        target = url + f"/batches/{batch}/files"

        async def put(body: object, sha: str) -> int:
            async with s.put(target, params={"path": "UnityMTA/x"}, data=body,
                             headers={SHA_HEADER: sha}) as resp:  # fmt: skip
                return resp.status

        first = asyncio.create_task(put(trickle(), hashlib.sha256(slow).hexdigest()))
        assert await put(fast, hashlib.sha256(fast).hexdigest()) == 201
        go_on.set()
        assert await first == 201
        async with s.post(url + f"/batches/{batch}/commit") as resp:
            assert resp.status == 200
    assert (root / "UnityMTA/x").read_bytes() == slow


async def test_a_stalled_database_upload_holds_no_lock_and_times_out(tmp_path: Path) -> None:
    root = tmp_path / "m"
    seed(root)
    stalled = asyncio.Event()

    async def stall() -> AsyncIterator[bytes]:
        yield b"first bytes of a database"
        stalled.set()
        await asyncio.Event().wait()  # a client that never sends the rest

    async with served(root, body_timeout=1.0) as url, aiohttp.ClientSession(headers=AUTH) as s:
        headers = {SHA_HEADER: hashlib.sha256(b"whatever").hexdigest()}
        slow = asyncio.create_task(s.put(url + "/db", data=stall(), headers=headers))
        await stalled.wait()
        async with asyncio.timeout(20):  # generous: a loaded machine; the lock is free
            async with s.get(url + "/manifest") as resp:
                assert resp.status == 200
            await _open(s, url)
        async with asyncio.timeout(30):
            with contextlib.suppress(aiohttp.ClientError):
                async with await slow as resp:
                    assert resp.status == 408
    assert not list((root / ".pairwarden-replication").glob("db-upload.*"))
    assert not (root / "UnityDb.sqlite").exists()
