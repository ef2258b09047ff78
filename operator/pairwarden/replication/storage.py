"""Durable writes, and batches that become visible together.

A batch is staged under `<root>/.pairwarden-replication/batches/<id>/` (same file system as
the tree, so renames are atomic). Commit writes `journal.json` listing every rename, fsyncs
it, applies the renames, then removes the journal. The journal's presence is the commit
point: on start `recover` rolls a journalled batch forward (every step is idempotent) and
discards one without a journal, so a kill -9 anywhere leaves the visible tree exactly as
before or exactly as after the batch.

Whether a step was done is read from what only that step makes, never from the tree, which
the later steps of the same batch may have changed (a deleted file's path may hold a new
directory): a delete is done once its trash entry exists, a put once its staged file is gone.
Each upload stages into a file of its own, so two uploads of one path never mix, and the
commit hashes every staged file again before it writes the journal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pairwarden import checkpoints
from pairwarden.atomicfile import fsync_dir, write_atomically
from pairwarden.replication.paths import STATE_DIR, PathRefused, check_file_path, resolve_inside

JOURNAL = "journal.json"


def staged_key(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:32]


# ------------------------------------------------------------------------- pure planning


@dataclass(frozen=True)
class Step:
    """One rename. `put`: staged file -> tree. `delete`: tree file -> the batch's trash."""

    op: Literal["put", "delete"]
    path: str
    src: str  # relative to the root
    dst: str

    def to_wire(self) -> dict[str, str]:
        return {"op": self.op, "path": self.path, "src": self.src, "dst": self.dst}

    @staticmethod
    def from_wire(data: dict[str, Any]) -> Step:
        op = data["op"]
        if op not in ("put", "delete"):
            raise ValueError(f"bad journal op {op!r}")
        return Step(op, str(data["path"]), str(data["src"]), str(data["dst"]))


def plan_steps(batch_rel: str, items: Sequence[dict[str, Any]]) -> list[Step]:
    """Deletes first (a file may become a directory), then puts, each sorted by path."""
    paths = [str(i["path"]) for i in items]
    if len(set(paths)) != len(paths):
        raise PathRefused(409, "conflict", "a path is both written and deleted in one batch")
    steps = []
    for item in sorted(items, key=lambda i: (i["op"] != "delete", i["path"])):
        key = staged_key(item["path"])
        if item["op"] == "delete":
            steps.append(Step("delete", item["path"], item["path"], f"{batch_rel}/trash/{key}"))
        else:
            steps.append(Step("put", item["path"], f"{batch_rel}/items/{key}.data", item["path"]))
    return steps


def step_done(step: Step, src_present: bool, dst_present: bool) -> bool:
    """A delete is done once its trash entry (made by this step only) exists; a put once
    its staged file (this batch's own) is gone. The tree path is no witness either way:
    after a file becomes a directory, the deleted path exists again."""
    return dst_present if step.op == "delete" else not src_present


def recovery_action(has_journal: bool) -> Literal["roll-forward", "discard"]:
    """The commit point is the durable journal: with it the batch happened, without it not."""
    return "roll-forward" if has_journal else "discard"


# -------------------------------------------------------------------------------- batches


class Batches:
    """Staging, commit and recovery of batches under one root (one writer at a time)."""

    def __init__(self, root: Path, directories: Sequence[str]) -> None:
        self.root = root
        self.directories = list(directories)
        self.base = root / STATE_DIR / "batches"

    def rel(self, batch: str) -> str:
        return f"{STATE_DIR}/batches/{batch}"

    def open(self) -> str:
        """A new batch; any other unfinished batch is recovered first (its writer is gone:
        the operator runs at most one replication Job per pair)."""
        self.recover()
        batch = secrets.token_hex(8)
        (self.base / batch / "items").mkdir(parents=True)
        (self.base / batch / "trash").mkdir()
        return batch

    def exists(self, batch: str) -> bool:
        return (self.base / batch / "items").is_dir() and not (self.base / batch / JOURNAL).exists()

    def part_path(self, batch: str, path: str) -> Path:
        """A staging file of its own for one upload of `path`: two concurrent uploads of one
        path write two files, and the last one accepted wins whole."""
        return self.base / batch / "items" / f"{staged_key(path)}.{secrets.token_hex(8)}.part"

    def accept(
        self, batch: str, path: str, part: Path, sha256: str, size: int, mtime_ns: int | None
    ) -> None:
        """A verified upload (`part`, fsynced by the caller) joins the batch. Callers
        serialise accepts (the file API's lock), so the data and its record match."""
        items = self.base / batch / "items"
        if not self.exists(batch):
            part.unlink(missing_ok=True)
            raise PathRefused(404, "no-batch", "the batch was committed or discarded")
        key = staged_key(path)
        data = items / f"{key}.data"
        if mtime_ns is not None:
            os.utime(part, ns=(mtime_ns, mtime_ns))
        os.replace(part, data)
        meta = {"op": "put", "path": path, "sha256": sha256, "size": size}
        write_atomically(items / f"{key}.json", json.dumps(meta).encode())

    def stage_delete(self, batch: str, path: str) -> None:
        items = self.base / batch / "items"
        key = staged_key(path)
        with contextlib.suppress(FileNotFoundError):
            (items / f"{key}.data").unlink()
        meta = {"op": "delete", "path": path}
        write_atomically(items / f"{key}.json", json.dumps(meta).encode())

    def discard(self, batch: str) -> None:
        shutil.rmtree(self.base / batch, ignore_errors=True)

    def _items(self, batch: str) -> list[dict[str, Any]]:
        items = []
        for meta in sorted((self.base / batch / "items").glob("*.json")):
            items.append(json.loads(meta.read_bytes()))
        return items

    def commit(self, batch: str) -> tuple[list[Step], dict[str, str]]:
        """Check everything that could fail, write the journal (the commit point), apply.
        Returns the steps and the sha256 of each path put."""
        items = self._items(batch)
        for item in items:  # validated again: the journal must only hold safe renames
            check_file_path(item["path"], self.directories)
            target = resolve_inside(self.root, item["path"])
            if item["op"] == "put":
                staged = self.base / batch / "items" / f"{staged_key(item['path'])}.data"
                if not staged.is_file():
                    raise PathRefused(409, "conflict", f"{item['path']!r} was not fully staged")
                if file_sha256(staged) != item["sha256"]:
                    raise PathRefused(409, "conflict", f"{item['path']!r} staged copy changed")
                deleted = {i["path"] for i in items if i["op"] == "delete"}
                for parent in Path(item["path"]).parents:
                    p = self.root / parent
                    if p.exists() and not p.is_dir() and str(parent) not in deleted:
                        raise PathRefused(409, "conflict", f"{str(parent)!r} is a file")
                if target.is_dir():
                    deleted = {i["path"] for i in items if i["op"] == "delete"}
                    inside = {
                        os.path.relpath(os.path.join(d, f), self.root)
                        for d, _, files in os.walk(target)
                        for f in files
                    }
                    if not inside <= deleted:
                        raise PathRefused(409, "conflict", f"{item['path']!r} is a directory")
        # A delete of a path that holds no file now moves nothing: left in the journal, its
        # replay could take a directory a later put of this batch made at that path.
        present = [i for i in items if i["op"] == "put" or _is_file(self.root / i["path"])]
        steps = plan_steps(self.rel(batch), present)
        checkpoints.reached("commit:before-journal")
        journal = {"steps": [s.to_wire() for s in steps]}
        write_atomically(self.base / batch / JOURNAL, json.dumps(journal).encode())
        checkpoints.reached("commit:after-journal")
        self._apply(batch, steps)
        hashes = {i["path"]: str(i["sha256"]) for i in items if i["op"] == "put"}
        return steps, hashes

    def _apply(self, batch: str, steps: Sequence[Step]) -> None:
        """Idempotent: `step_done` tells a step applied before a crash."""
        touched: set[Path] = set()
        for n, step in enumerate(steps, start=1):
            src, dst = self.root / step.src, self.root / step.dst
            src_present = _is_entry(src)
            if step_done(step, src_present, _is_entry(dst)) or not src_present:
                continue  # done before a crash; or a delete whose file went meanwhile
            if step.op == "delete":
                os.replace(src, dst)
                touched.add(src.parent)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                if dst.is_dir():
                    shutil.rmtree(dst)  # checked before the journal: only deleted files inside
                os.replace(src, dst)
                touched.add(dst.parent)
            checkpoints.reached(f"commit:after-rename:{n}")
        for d in touched:
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(d)
        (self.base / batch / JOURNAL).unlink()
        fsync_dir(self.base / batch)
        shutil.rmtree(self.base / batch, ignore_errors=True)

    def committing(self) -> list[str]:
        """Batches whose commit began and did not finish (a journal is left): until they are
        recovered the tree is half old, half new, and a reader must not start on it."""
        if not self.base.is_dir():
            return []
        return sorted(e.name for e in self.base.iterdir() if (e / JOURNAL).is_file())

    def recover(self) -> list[tuple[str, str]]:
        """Finish or forget every batch left by a previous process: [(batch, action)]."""
        done: list[tuple[str, str]] = []
        if not self.base.is_dir():
            return done
        for entry in sorted(self.base.iterdir()):
            journal = entry / JOURNAL
            action = recovery_action(journal.is_file())
            if action == "roll-forward":
                steps = [Step.from_wire(s) for s in json.loads(journal.read_bytes())["steps"]]
                self._apply(entry.name, steps)
            else:
                shutil.rmtree(entry, ignore_errors=True)
            done.append((entry.name, action))
        return done


def _is_entry(path: Path) -> bool:
    """Anything at `path`, a dangling symlink included; a file where a parent directory
    should be counts as nothing there."""
    try:
        path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _is_file(path: Path) -> bool:
    try:
        return path.is_file() or path.is_symlink()
    except OSError:
        return False


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
