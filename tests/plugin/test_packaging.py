"""The plugin installs on its own and shows one version: the krew manifest and the chart follow
pyproject's version, and the commands kubectl looks for are declared entry points."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _project() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project: dict[str, object] = data["project"]
    return project


def test_krew_manifest_follows_the_version_and_names_the_plugin_command() -> None:
    manifest = yaml.safe_load((ROOT / "plugins" / "krew" / "pairwarden.yaml").read_text())
    version = str(_project()["version"])
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "pairwarden"
    assert manifest["spec"]["version"] == f"v{version}"
    (platform,) = manifest["spec"]["platforms"]
    assert platform["bin"] == "kubectl-pairwarden"
    assert f"v{version}/kubectl-pairwarden-{version}.tar.gz" in platform["uri"]


def test_entry_points_put_the_plugin_and_its_completion_on_path() -> None:
    scripts = _project()["scripts"]
    assert isinstance(scripts, dict)
    assert scripts["kubectl-pairwarden"] == "pairwarden.plugin:main"
    assert scripts["kubectl_complete-pairwarden"] == "pairwarden.plugin:complete_main"


def test_one_supported_kubernetes_story() -> None:
    """The oldest supported Kubernetes is said once in the code (MIN_KUBERNETES) and the same
    in the chart's kubeVersion, the README and docs/install.md."""
    from pairwarden import MIN_KUBERNETES

    chart = yaml.safe_load((ROOT / "charts" / "pairwarden" / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={MIN_KUBERNETES}.0-0"
    for doc in ("README.md", "docs/install.md"):
        text = (ROOT / doc).read_text()
        assert f"{MIN_KUBERNETES} and later" in text, f"{doc} does not say the supported range"
        assert ">=1.28" not in text, f"{doc} still names the chart's old range"


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((ROOT / "charts" / "pairwarden" / "Chart.yaml").read_text())
    assert chart["appVersion"] == _project()["version"]
