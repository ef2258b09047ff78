"""Path validation: every malformed or escaping name is refused with the right status."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pairwarden.replication.paths import (
    PathRefused,
    check_directories,
    check_file_path,
    check_relative,
    resolve_inside,
)

DIRS = ["UnityMTA", "Localize/Prompts"]


@pytest.mark.parametrize(
    "bad",
    ["", "/etc/passwd", "UnityMTA/../../x", "UnityMTA/./a", "UnityMTA//a", "UnityMTA/a/",
     "UnityMTA\\a", "C:/x", "UnityMTA/a\x00b", "..", "UnityMTA/" + "x" * 300],
)  # fmt: skip
def test_malformed_paths_are_400(bad: str) -> None:
    with pytest.raises(PathRefused) as info:
        check_file_path(bad, DIRS)
    assert info.value.status == 400


@pytest.mark.parametrize("outside", ["Other/x", "UnityMTA", "Localize/x", "UnityMTAx/a"])
def test_names_outside_the_directories_are_403(outside: str) -> None:
    with pytest.raises(PathRefused) as info:
        check_file_path(outside, DIRS)
    assert (info.value.status, info.value.reason) == (403, "outside-directories")


def test_good_paths_pass_unchanged() -> None:
    assert check_file_path("Localize/Prompts/en/a b.wav", DIRS) == "Localize/Prompts/en/a b.wav"
    assert check_relative("a/b") == ["a", "b"]


def test_state_dir_cannot_be_configured() -> None:
    with pytest.raises(PathRefused):
        check_directories([".pairwarden-replication"])


def test_symlinks_escaping_or_inside_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "UnityMTA").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "UnityMTA" / "link")
    os.symlink(outside / "f", root / "UnityMTA" / "file-link")
    for rel in ("UnityMTA/link/f", "UnityMTA/file-link"):
        with pytest.raises(PathRefused) as info:
            resolve_inside(root, rel)
        assert info.value.status == 403
    assert resolve_inside(root, "UnityMTA/new") == Path(os.path.realpath(root)) / "UnityMTA/new"
