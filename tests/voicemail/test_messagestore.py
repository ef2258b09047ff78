"""The directory message store and the UMR queue in front of it (no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pairwarden_testbed.voicemail.messagestore import (
    DirectoryMessageStore,
    Message,
    MessageQueue,
    StoreOffline,
    safe_name,
)


def message(mailbox: str = "1000", **kw: object) -> Message:
    return Message(mailbox=mailbox, caller="sip:a@h", audio=b"RIFF-fake", duration_ms=20,
                   pod="vm-primary", epoch=1, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_deliver_is_idempotent_by_id_and_counts_per_mailbox(tmp_path: Path) -> None:
    store = DirectoryMessageStore(tmp_path)
    m = message()
    assert store.deliver(m) == m.id
    assert store.deliver(m) == m.id  # delivered twice (both members drained it): stored once
    store.deliver(message())
    store.deliver(message("2000"))
    assert (store.count("1000"), store.count("2000"), store.count("3000")) == (2, 1, 0)
    assert not list(tmp_path.rglob(".*"))  # no temporary files left behind


def test_a_missing_root_is_offline_and_never_created(tmp_path: Path) -> None:
    store = DirectoryMessageStore(tmp_path / "not-mounted")
    assert not store.online()
    with pytest.raises(StoreOffline):
        store.deliver(message())
    assert not (tmp_path / "not-mounted").exists()


def test_the_offline_toggle_refuses_delivery(tmp_path: Path) -> None:
    store = DirectoryMessageStore(tmp_path)
    store.forced_offline = True
    with pytest.raises(StoreOffline):
        store.deliver(message())
    store.forced_offline = False
    assert store.online() and store.count("1000") == 0


def test_names_cannot_escape_the_store() -> None:
    assert safe_name("../../etc/passwd") == "_.._etc_passwd"
    assert "/" not in safe_name("a/b") and safe_name("") == "_" and safe_name("..") == "_"


def test_queue_holds_messages_while_offline_and_drains_in_order(tmp_path: Path) -> None:
    store = DirectoryMessageStore(tmp_path / "store")
    queue = MessageQueue(store, tmp_path / "UnityMTA")
    delivered: list[str] = []
    queue.listeners.append(lambda m: delivered.append(m.id))
    first, second = message(), message()
    assert queue.submit(first) == "queued" and queue.submit(second) == "queued"
    assert queue.queued() == 2 and queue.drain() == 0 and delivered == []
    (tmp_path / "store").mkdir()  # the volume is back
    assert queue.drain() == 2
    assert delivered == [first.id, second.id] and queue.queued() == 0
    assert store.count("1000") == 2
    assert queue.submit(message()) == "delivered" and store.count("1000") == 3


def test_a_half_written_queue_entry_is_not_drained(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    queue = MessageQueue(DirectoryMessageStore(tmp_path / "store"), tmp_path / "UnityMTA")
    queue.dir.mkdir()
    (queue.dir / "abc.wav").write_bytes(b"audio without its metadata yet")
    (queue.dir / "bad.json").write_text("{not json")
    assert queue.drain() == 0
