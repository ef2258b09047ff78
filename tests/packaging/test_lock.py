"""The hashed locks (requirements/, `make lock`) agree with the pyproject pins: a pin changed in
one place and not the other fails here, not in an image build."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of each entry of a lock file."""
    out: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        if match := _ENTRY.match(line):
            current = _name(match.group(1))
            out[current] = (match.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = out[current]
            out[current] = (version, hashes + 1)
    return out


def pins(pyproject: Path, extra: str | None = None) -> dict[str, str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    listed = list(project["dependencies"])
    if extra:
        listed += project["optional-dependencies"][extra]
    return {_name(p.split("==")[0]): p.split("==")[1] for p in listed}


PRODUCT = ROOT / "pyproject.toml"
RIG = ROOT / "testbed" / "pyproject.toml"
CASES = {
    "operator.txt": pins(PRODUCT),
    "testbed.txt": {**pins(PRODUCT), **pins(RIG)},
    "dev.txt": {**pins(PRODUCT, "test"), **pins(RIG)},
}


@pytest.mark.parametrize("lock", sorted(CASES))
def test_every_pin_is_locked_at_its_version_with_hashes(lock: str) -> None:
    entries = locked(LOCKS / lock)
    for name, version in CASES[lock].items():
        assert entries.get(name, ("missing", 0))[0] == version, f"{lock}: {name}: run make lock"
    assert all(hashes for _, hashes in entries.values()), f"{lock}: an entry without a hash"


def test_the_product_lock_holds_no_rig_dependency() -> None:
    """The operator and agent images install requirements/operator.txt: no cel-python."""
    assert "cel-python" not in locked(LOCKS / "operator.txt")
    assert "cel-python" in locked(LOCKS / "testbed.txt")


def test_the_build_backend_is_locked_within_the_build_systems_range() -> None:
    (version, hashes) = locked(LOCKS / "build.txt")["setuptools"]
    required = tomllib.loads(PRODUCT.read_text())["build-system"]["requires"]
    assert required == ["setuptools>=75"] and int(version.split(".")[0]) >= 75 and hashes


def test_the_images_and_the_venv_install_from_the_locks_with_hashes() -> None:
    dockerfile = (ROOT / "images" / "Dockerfile").read_text()
    for lock in ("build", "operator", "testbed"):
        assert f"--require-hashes -r requirements/{lock}.txt" in dockerfile
    assert "--no-build-isolation" in dockerfile  # the locked setuptools builds our wheels
    assert "!requirements/" in (ROOT / ".dockerignore").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements/dev.txt -r requirements/build.txt" in makefile
