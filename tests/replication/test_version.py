import os
from pathlib import Path

from pairwarden.replication.version import fingerprint

DIRS = ["Support", "UnityMTA"]


def test_the_version_moves_with_any_change_and_only_then(tmp_path: Path) -> None:
    (tmp_path / "Support").mkdir()
    (tmp_path / "Support" / "a.txt").write_text("one")
    first = fingerprint(tmp_path, DIRS)
    assert fingerprint(tmp_path, DIRS) == first
    (tmp_path / "Other").mkdir()
    (tmp_path / "Other" / "ignored.txt").write_text("not replicated")
    assert fingerprint(tmp_path, DIRS) == first
    (tmp_path / "Support" / "a.txt").write_text("two")
    os.utime(tmp_path / "Support" / "a.txt", ns=(1, 2_000_000_000))
    changed = fingerprint(tmp_path, DIRS)
    assert changed != first
    (tmp_path / "UnityDb.sqlite").write_bytes(b"db")
    assert fingerprint(tmp_path, DIRS) != changed
