"""The replicate path between two in-process members: only changes travel, deletes follow,
the database moves only when it changed, and the direction reverses after a failover."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import aiohttp

from pairwarden.replication.client import replicate
from pairwarden.replication.fileapi import make_app, make_token, serve

from .helpers import DIRS, PAIR, TOKEN, member, seed, tree, write

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def add_message(root: Path, body: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(root / "UnityDb.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO messages (body) VALUES (?)", (body,))
    db.close()


def messages(root: Path) -> list[str]:
    db = sqlite3.connect(root / "UnityDb.sqlite")
    try:
        return [r[0] for r in db.execute("SELECT body FROM messages ORDER BY id")]
    finally:
        db.close()


async def test_only_changes_travel_and_deletes_follow(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    seed(a, 40)
    async with member(a) as ua, member(b) as ub:
        first = await replicate(ua, ub, TOKEN)
        assert first.ok and first.files == 40 and tree(b) == tree(a)
        assert first.bytes == first.bytes_changed
        write(a, {"UnityMTA/f003.bin": b"changed", "Snapshot/new/x.bin": b"new"})
        (a / "Stream Files/f002.bin").unlink()
        second = await replicate(ua, ub, TOKEN)
        assert (second.files, second.deleted, second.bytes) == (2, 1, len(b"changed") + 3)
        assert tree(b) == tree(a)
        third = await replicate(ua, ub, TOKEN)
        assert (third.files, third.deleted, third.bytes) == (0, 0, 0)


async def test_failover_then_replication_in_the_new_direction(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    seed(a, 10)
    add_message(a, "left on the primary")
    async with member(a) as ua, member(b) as ub:
        assert (await replicate(ua, ub, TOKEN, database=True)).db_copied
        # failover: B is active now and takes calls and changes prompts
        add_message(b, "left on the secondary")
        write(b, {"Localize/Prompts/greeting.wav": b"new greeting"})
        back = await replicate(ub, ua, TOKEN, database=True)
        assert back.ok and back.files == 1 and back.db_copied
    assert tree(a) == tree(b)
    assert messages(a) == ["left on the primary", "left on the secondary"]


async def test_database_snapshot_only_when_changed(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    seed(a, 2)
    add_message(a, "one")
    async with member(a) as ua, member(b) as ub, aiohttp.ClientSession(headers=AUTH) as s:
        first = await replicate(ua, ub, TOKEN, database=True, files=False)
        again = await replicate(ua, ub, TOKEN, database=True, files=False)
        async with s.get(ua + "/db") as resp:
            backups_before = (await resp.json())["backups"]
        add_message(a, "two")
        changed = await replicate(ua, ub, TOKEN, database=True, files=False)
        async with s.get(ua + "/db") as resp:
            info = await resp.json()
    assert first.db_copied and not again.db_copied and changed.db_copied
    assert backups_before == 1  # the second run reused the snapshot: data_version unchanged
    assert info["backups"] == 2
    assert messages(b) == ["one", "two"]
    assert not (b / "UnityDb.sqlite-wal").exists()


async def test_a_target_database_changed_locally_is_replaced(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    add_message(a, "one")
    async with member(a) as ua, member(b) as ub:
        assert (await replicate(ua, ub, TOKEN, database=True, files=False)).db_copied
        add_message(b, "written on the target while it was active")
        assert (await replicate(ua, ub, TOKEN, database=True, files=False)).db_copied
    assert messages(b) == ["one"]


async def test_failures_are_reported_not_raised(tmp_path: Path) -> None:
    async with member(tmp_path / "a") as ua, member(tmp_path / "b") as ub:
        report = await replicate(ua, ub, make_token("other", "x"))
    assert not report.ok
    assert report.error is not None and "403" in report.error and "wrong-pair" in report.error
    json.dumps(report.to_wire())


async def test_settings_drift_is_reported(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, {"member-settings.json": b'{"guiLanguage": "en", "ports": {"count": 24}}'})
    write(b, {"member-settings.json": b'{"guiLanguage": "en", "ports": {"count": 12}}'})
    async with member(a) as ua, member(b) as ub:
        report = await replicate(ua, ub, TOKEN, files=False)
    assert report.differing_settings == ["ports.count"]


async def test_the_first_run_waits_for_the_token_to_reach_the_target(tmp_path: Path) -> None:
    """A new pair: the target's agent does not hold the Secret's token yet (the kubelet has
    not synced the volume). The run waits for it instead of failing `no-token`."""

    a, b = tmp_path / "a", tmp_path / "b"
    seed(a, 5)
    asked: list[int] = []

    def arriving() -> str | None:
        asked.append(1)
        return TOKEN if len(asked) > 3 else None

    runner, port = await serve(make_app(b, DIRS, PAIR, arriving), "127.0.0.1", 0)
    try:
        async with member(a) as ua:
            report = await replicate(
                ua, f"http://127.0.0.1:{port}/replication", TOKEN, token_wait=30
            )
            assert report.ok, report.error
            assert tree(b) == tree(a) and len(asked) > 3
            # Without the wait (or once it runs out) the refusal is reported, as before.
            runner2, port2 = await serve(make_app(b, DIRS, PAIR, lambda: None), "127.0.0.1", 0)
            try:
                target = f"http://127.0.0.1:{port2}/replication"
                refused = await replicate(ua, target, TOKEN, token_wait=0.2)
            finally:
                await runner2.cleanup()
            assert not refused.ok and "no-token" in (refused.error or "")
    finally:
        await runner.cleanup()


async def test_a_target_holding_the_active_lease_takes_no_replication(tmp_path: Path) -> None:
    """A Job ordered before a failover may start after it (a pod starts seconds later on a
    real node) and copy the old way round: the new active member refuses its batch and its
    database (409 target-active), so what callers left there since stays. Once it is the
    standby again, the same copy goes through."""

    a, b = tmp_path / "a", tmp_path / "b"
    seed(a, 5)
    add_message(a, "old")
    write(b, {"UnityMTA/left-by-a-caller.wav": b"new message"})
    add_message(b, "left on the new active member")
    before = tree(b)
    active = [True]
    app = make_app(b, DIRS, PAIR, TOKEN, writable=lambda: not active[0])
    runner, port = await serve(app, "127.0.0.1", 0)
    target = f"http://127.0.0.1:{port}/replication"
    try:
        async with member(a) as source:
            refused = await replicate(source, target, TOKEN, database=True)
            assert not refused.ok and "target-active" in (refused.error or "")
            assert tree(b) == before and messages(b) == ["left on the new active member"]
            active[0] = False
            done = await replicate(source, target, TOKEN, database=True)
    finally:
        await runner.cleanup()
    assert done.ok, done.error
    assert tree(b) == tree(a) and messages(b) == ["old"]
