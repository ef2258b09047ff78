"""Manifest diff (pure) and the incremental hash cache."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pairwarden.replication.manifest import RACY_NS, Entry, Scanner, diff

from .helpers import DIRS, seed, write

names = st.sampled_from([f"UnityMTA/{c}" for c in "abcdefgh"])
contents = st.sampled_from(["h1", "h2", "h3"])
trees = st.dictionaries(names, contents)


def entries(t: dict[str, str]) -> list[Entry]:
    return [Entry(p, 1, 0, h) for p, h in t.items()]


@given(trees, trees)
def test_applying_the_plan_makes_the_target_equal_the_source(
    src: dict[str, str], dst: dict[str, str]
) -> None:
    plan = diff(entries(src), entries(dst))
    result = dict(dst)
    for path in plan.delete:
        del result[path]
    for e in plan.copy:
        result[e.path] = e.sha256
    assert result == src
    # and nothing unchanged is copied
    assert all(dst.get(e.path) != e.sha256 for e in plan.copy)


def test_mtime_alone_does_not_cause_a_copy() -> None:
    plan = diff([Entry("UnityMTA/a", 1, 5, "h")], [Entry("UnityMTA/a", 1, 9, "h")])
    assert plan.empty


def _age(root: Path) -> None:
    """Make every file old enough to be cached (not 'racy')."""
    old = 1_600_000_000 * 10**9
    for dirpath, _, files in os.walk(root):
        for f in files:
            os.utime(Path(dirpath) / f, ns=(old, old))


def test_unchanged_files_are_not_rehashed_even_after_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "m"
    seed(root, 20)
    _age(root)
    cache = root / ".pairwarden-replication" / "cache.json"
    first = Scanner(root, DIRS, cache)
    cold = first.scan()
    assert first.hashed == 20
    warm = Scanner(root, DIRS, cache)  # a new process: the cache comes from disk
    assert warm.scan() == cold
    assert warm.hashed == 0
    write(root, {"UnityMTA/f003.bin": b"changed"})
    _age(root)
    after = warm.scan()
    assert warm.hashed == 1
    assert {e.path for e in after} == {e.path for e in cold}


def test_recently_modified_files_are_hashed_again(tmp_path: Path) -> None:
    root = tmp_path / "m"
    seed(root, 3)  # fresh mtimes: within RACY_NS of now
    scanner = Scanner(root, DIRS, root / "c.json")
    scanner.scan()
    scanner.scan()
    assert RACY_NS > 0 and scanner.hashed == 6


def test_symlinks_are_not_listed(tmp_path: Path) -> None:
    root = tmp_path / "m"
    seed(root, 2)
    os.symlink("/etc/passwd", root / "UnityMTA" / "pw")
    listed = {e.path for e in Scanner(root, DIRS, root / "c.json").scan()}
    assert "UnityMTA/pw" not in listed and len(listed) == 2
