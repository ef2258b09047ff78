"""Batches: a crash at every step of a commit recovers to exactly before or exactly after."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pairwarden import checkpoints
from pairwarden.replication.paths import PathRefused
from pairwarden.replication.storage import Batches, plan_steps, recovery_action

from .helpers import DIRS, seed, tree, write


class Crash(BaseException):
    pass


def test_recovery_action_is_decided_by_the_journal() -> None:
    assert recovery_action(True) == "roll-forward"
    assert recovery_action(False) == "discard"


def test_deletes_come_before_puts_and_a_path_cannot_be_both() -> None:
    steps = plan_steps("b", [{"op": "put", "path": "UnityMTA/a"},
                             {"op": "delete", "path": "UnityMTA/z"}])  # fmt: skip
    assert [s.op for s in steps] == ["delete", "put"]
    with pytest.raises(PathRefused):
        plan_steps("b", [{"op": "put", "path": "U/a"}, {"op": "delete", "path": "U/a"}])


def _stage(batches: Batches, batch: str, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        part = batches.part_path(batch, path)
        part.write_bytes(data)
        batches.accept(batch, path, part, hashlib.sha256(data).hexdigest(), len(data), None)


CHANGES = {"UnityMTA/f000.bin": b"new-0", "Snapshot/new/deep.bin": b"new-deep",
           "Stream Files/f002.bin": b"new-2"}  # fmt: skip
DELETES = ["Snapshot/f001.bin", "UnityMTA/f003.bin"]
POINTS = ["commit:before-journal", "commit:after-journal"] + [
    f"commit:after-rename:{n}" for n in range(1, len(CHANGES) + len(DELETES) + 1)
]


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_anywhere_in_commit_recovers_to_before_or_after(
    tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "m"
    seed(root, 8)
    before = tree(root)
    assert set(DELETES) <= set(before)
    after = {k: v for k, v in before.items() if k not in DELETES}
    after.update({k: hashlib.sha256(v).hexdigest() for k, v in CHANGES.items()})

    def crash_at(where: str) -> None:
        if where == point:
            raise Crash(where)

    monkeypatch.setattr(checkpoints, "_listeners", [crash_at])
    batches = Batches(root, DIRS)
    batch = batches.open()
    _stage(batches, batch, CHANGES)
    for path in DELETES:
        batches.stage_delete(batch, path)
    with pytest.raises(Crash):
        batches.commit(batch)
    actions = Batches(root, DIRS).recover()  # the restarted process
    expected = before if point == "commit:before-journal" else after
    assert tree(root) == expected
    assert actions == [(batch, "discard" if expected is before else "roll-forward")]
    assert not any((root / ".pairwarden-replication" / "batches").iterdir())


def test_a_file_may_become_a_directory_in_one_batch(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root, {"UnityMTA/x": b"file"})
    batches = Batches(root, DIRS)
    batch = batches.open()
    batches.stage_delete(batch, "UnityMTA/x")
    _stage(batches, batch, {"UnityMTA/x/y": b"inside"})
    batches.commit(batch)
    assert (root / "UnityMTA/x/y").read_bytes() == b"inside"


def test_a_put_onto_a_directory_with_kept_files_is_refused_before_anything_moves(
    tmp_path: Path,
) -> None:
    root = tmp_path / "m"
    write(root, {"UnityMTA/x/keep": b"k"})
    batches = Batches(root, DIRS)
    batch = batches.open()
    _stage(batches, batch, {"UnityMTA/x": b"file"})
    with pytest.raises(PathRefused) as info:
        batches.commit(batch)
    assert info.value.status == 409
    assert (root / "UnityMTA/x/keep").read_bytes() == b"k"


# A file becomes a directory (conv -> conv/inner) and a directory becomes a file
# (tree/leaf -> tree), beside ordinary puts and deletes.
TYPE_BEFORE = {"Snapshot/conv": b"a file", "UnityMTA/tree/leaf": b"in a dir",
               "UnityMTA/keep": b"kept", "Snapshot/gone": b"deleted"}  # fmt: skip
TYPE_PUTS = {"Snapshot/conv/inner": b"now a dir", "UnityMTA/tree": b"now a file",
             "UnityMTA/keep": b"changed"}  # fmt: skip
TYPE_DELETES = ["Snapshot/conv", "UnityMTA/tree/leaf", "Snapshot/gone", "Snapshot/never-was"]
TYPE_POINTS = ["commit:before-journal", "commit:after-journal"] + [
    f"commit:after-rename:{n}" for n in range(1, 7)
]


def _type_change_batch(root: Path) -> tuple[Batches, str, dict[str, str], dict[str, str]]:
    write(root, TYPE_BEFORE)
    before = tree(root)
    after = {k: v for k, v in before.items() if k not in TYPE_DELETES}
    after.update({k: hashlib.sha256(v).hexdigest() for k, v in TYPE_PUTS.items()})
    batches = Batches(root, DIRS)
    batch = batches.open()
    _stage(batches, batch, TYPE_PUTS)
    for path in TYPE_DELETES:
        batches.stage_delete(batch, path)
    return batches, batch, before, after


@pytest.mark.parametrize("point", TYPE_POINTS)
@pytest.mark.parametrize("restarts", [1, 2])
def test_a_crash_in_a_commit_that_changes_types_recovers_to_before_or_after(
    tmp_path: Path, point: str, restarts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaying the journal must not read "the source is gone" from the tree: after a
    file became a directory the deleted path exists again (the trash entry says done)."""
    root = tmp_path / "m"

    def crash_at(where: str) -> None:
        if where == point:
            raise Crash(where)

    monkeypatch.setattr(checkpoints, "_listeners", [crash_at])
    batches, batch, before, after = _type_change_batch(root)
    with pytest.raises(Crash):
        batches.commit(batch)
    monkeypatch.setattr(checkpoints, "_listeners", [])
    for _ in range(restarts):  # a restart that is itself killed after recovery replays again
        Batches(root, DIRS).recover()
    assert tree(root) == (before if point == "commit:before-journal" else after)
    assert not any((root / ".pairwarden-replication" / "batches").iterdir())


def test_a_staged_file_changed_after_its_upload_fails_the_commit(tmp_path: Path) -> None:
    root = tmp_path / "m"
    seed(root, 4)
    before = tree(root)
    batches = Batches(root, DIRS)
    batch = batches.open()
    _stage(batches, batch, {"UnityMTA/x": b"verified"})
    staged = next((batches.base / batch / "items").glob("*.data"))
    staged.write_bytes(b"mixed by another writer")
    with pytest.raises(PathRefused) as info:
        batches.commit(batch)
    assert info.value.status == 409 and tree(root) == before


def test_two_uploads_of_one_path_stage_two_files(tmp_path: Path) -> None:
    batches = Batches(tmp_path / "m", DIRS)
    batch = batches.open()
    assert batches.part_path(batch, "UnityMTA/a") != batches.part_path(batch, "UnityMTA/a")
