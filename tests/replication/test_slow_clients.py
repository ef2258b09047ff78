"""Clients that trickle their headers (slowloris) are closed by the file API within its header
timeout, and a normal request is answered meanwhile. Run from outside: the server in its own
process, 200 raw TCP clients each sending one header line every 0.2 s, forever."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.parse
from pathlib import Path

from tests.replication.helpers import TOKEN, MemberProcess, seed

CLIENTS = 200
HEADER_TIMEOUT = 1.0
# Closed within the header timeout plus a generous allowance for a loaded machine; the
# measured worst case is printed (under -s) for the record.
BOUND = HEADER_TIMEOUT + 20.0


async def _trickle(host: str, port: int, stop_after: float) -> float | None:
    """Seconds until the server closed the connection, or None if it never did."""
    opened = time.monotonic()  # before the server's accept: its timer starts after this
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /replication/manifest HTTP/1.1\r\nHost: x\r\n")
    try:
        while time.monotonic() - opened < stop_after:
            try:
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                    return time.monotonic() - opened
            except TimeoutError:
                continue
            except ConnectionError:
                return time.monotonic() - opened
        return None
    finally:
        writer.close()


async def _normal_request(url: str) -> tuple[int, float]:
    parts = urllib.parse.urlsplit(url)
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"GET {parts.path}/manifest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    head = (await reader.readline()).decode()
    await reader.read()
    writer.close()
    return int(head.split()[1]), time.monotonic() - started


async def test_200_header_tricklers_are_closed_and_a_normal_request_answers(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    seed(tmp_path / "root")
    member = MemberProcess(
        tmp_path / "root", token_file, args=("--header-timeout", str(HEADER_TIMEOUT))
    )
    try:
        parts = urllib.parse.urlsplit(member.url)
        assert parts.hostname is not None and parts.port is not None
        tricklers = [
            asyncio.create_task(_trickle(parts.hostname, parts.port, BOUND)) for _ in range(CLIENTS)
        ]
        await asyncio.sleep(0)  # the tricklers connect first
        status, seconds = await _normal_request(member.url)
        closed = await asyncio.gather(*tricklers)
    finally:
        member.stop()
    assert status == 200
    assert seconds < BOUND
    assert None not in closed, f"{closed.count(None)} of {CLIENTS} still open after {BOUND} s"
    times = [t for t in closed if t is not None]
    worst = max(times)
    assert min(times) >= HEADER_TIMEOUT - 0.01  # closed by the timeout, not at once
    print(json.dumps({"clients": CLIENTS, "worst_close_s": round(worst, 2), "normal_s": seconds}))


async def _exchange(url: str, head: str, body_parts: list[bytes], gap: float) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head.encode())
    for part in body_parts:
        await asyncio.sleep(gap)
        writer.write(part)
        await writer.drain()
    status = int((await reader.readline()).decode().split()[1])
    reply = await reader.read()
    writer.close()
    return status, reply.partition(b"\r\n\r\n")[2]


async def test_a_slow_body_is_not_cut_by_the_header_timeout(tmp_path: Path) -> None:
    """The header timeout bounds headers only: an upload whose body takes longer than it
    (but never idles BODY_TIMEOUT) is received whole."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    seed(tmp_path / "root")
    member = MemberProcess(
        tmp_path / "root", token_file, args=("--header-timeout", str(HEADER_TIMEOUT))
    )
    path = urllib.parse.urlsplit(member.url).path
    auth = f"Host: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n"
    data = [b"x" * 1000] * 5
    sha = hashlib.sha256(b"".join(data)).hexdigest()
    try:
        opened, reply = await _exchange(
            member.url, f"POST {path}/batches HTTP/1.1\r\n{auth}Content-Length: 0\r\n\r\n", [], 0
        )
        assert opened == 201
        batch = json.loads(reply)["batch"]
        started = time.monotonic()
        status, reply = await _exchange(
            member.url,
            f"PUT {path}/batches/{batch}/files?path=Snapshot/slow.bin HTTP/1.1\r\n{auth}"
            f"X-Pairwarden-Sha256: {sha}\r\nContent-Length: 5000\r\n\r\n",
            data,
            gap=HEADER_TIMEOUT / 2,
        )
    finally:
        member.stop()
    assert time.monotonic() - started > HEADER_TIMEOUT  # the body outlasted the timeout
    assert status == 201, reply
    assert json.loads(reply)["size"] == 5000
