"""`make test`'s image step (`hack/node.sh images`, node.prepare_images): a build that fails
leaves its reason where tests/realnode's skip finds it, a build that succeeds clears it, and a
machine where no node can run builds nothing. hack/images.sh is replaced by a script that
says what it was asked (the real build takes minutes; tests/realnode runs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pairwarden_testbed import node


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in hack/images.sh with its cache in tmp_path: `archives` prints its archives'
    directory, `build` fails with the message in $FAIL when that is set; each call is logged."""
    script = tmp_path / "images.sh"
    script.write_text(
        f'echo "$@" >>{tmp_path}/calls\n'
        f'case "$1" in archives) echo {tmp_path}/cache/archives ;;\n'
        '  build) [ -z "$FAIL" ] || { echo "images: error: $FAIL" >&2; exit 1; } ;;\n'
        "esac\n"
    )
    monkeypatch.setattr(node, "IMAGES_SCRIPT", script)
    monkeypatch.setattr(node, "cannot_run", lambda: None)
    return tmp_path


def test_a_failed_build_is_kept_for_the_skip_and_a_good_one_clears_it(
    images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL", "debootstrap failed (log: x)")
    with pytest.raises(node.NodeError, match="debootstrap failed"):
        node.prepare_images()
    failure = node.images_build_failure()
    assert failure is not None and "images: error: debootstrap failed (log: x)" in failure
    monkeypatch.delenv("FAIL")
    assert node.prepare_images() >= 0
    assert node.images_build_failure() is None


def test_nothing_is_built_where_no_node_can_run(
    images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node, "cannot_run", lambda: "a real node needs root")
    with pytest.raises(node.NodeError, match="a real node needs root"):
        node.prepare_images()
    assert not (images / "calls").exists()  # hack/images.sh was not even asked
