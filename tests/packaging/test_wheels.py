"""What ships: the product's wheel holds the product only, and the rig's wheel the rig with the
files it needs at run time (the examples the demo applies). Built from this tree by pip."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IGNORED = (".venv", ".git", "build", "*.egg-info", "__pycache__", "tests", "e2e", "docs", "bench")
RIG_MODULES = ("sandbox", "localnode", "localcluster", "voicemail", "sipcaller", "sim", "demo")


def _wheel(tree: Path, out: Path) -> zipfile.ZipFile:
    """Build from a copy: setuptools leaves build/ and *.egg-info beside the sources."""
    source = out / "src"
    shutil.copytree(tree, source, ignore=shutil.ignore_patterns(*IGNORED))
    command = ["pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "--wheel-dir", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", *command, str(source)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return _wheel(ROOT, tmp_path_factory.mktemp("product"))


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return _wheel(ROOT / "testbed", tmp_path_factory.mktemp("rig"))


def _metadata(wheel: zipfile.ZipFile) -> dict[str, list[str]]:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    message = Parser().parsestr(wheel.read(name).decode())
    return {key: message.get_all(key) or [] for key in ("Name", "Requires-Dist")}


def test_product_wheel_holds_no_rig_module(product: zipfile.ZipFile) -> None:
    names = product.namelist()
    assert "pairwarden/engine/core.py" in names
    rig = [n for n in names if n.split("/")[0] == "pairwarden_testbed"]
    rig += [
        n
        for n in names
        for m in RIG_MODULES
        if n.startswith((f"pairwarden/{m}/", f"pairwarden/{m}.py"))
    ]
    assert rig == []


def test_product_wheel_needs_no_cel(product: zipfile.ZipFile) -> None:
    requires = _metadata(product)["Requires-Dist"]
    runtime = [r for r in requires if "extra ==" not in r]
    assert not [r for r in runtime if r.lower().startswith("cel-python")]
    assert any(r.startswith("kopf") for r in runtime)


def test_rig_wheel_ships_its_examples_and_command(rig: zipfile.ZipFile) -> None:
    names = rig.namelist()
    assert "pairwarden_testbed/examples/voicemail-pair.yaml" in names
    assert "pairwarden_testbed/sandbox/server.py" in names
    assert not [n for n in names if n.startswith("pairwarden/")]
    entry_points = rig.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "pairwarden-testbed = pairwarden_testbed.cli:main" in entry_points


def test_product_command_lists_no_rig_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pairwarden.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "agent: run the member agent sidecar" in done.stdout  # the commands, one "name:" each
    for command in ("sandbox", "demo", "voicemail"):
        assert f"{command}:" not in done.stdout
