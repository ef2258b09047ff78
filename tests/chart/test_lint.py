"""`helm lint` through helm-sdkpy, treated strictly: any warning or error fails."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import helm_sdkpy

CHART = Path(__file__).resolve().parents[2] / "charts" / "pairwarden"
# Helm's lint severities: 1 info, 2 warning, 3 error.
WARNING = 2


def _lint(path: Path) -> dict[str, Any]:
    config = helm_sdkpy.Configuration(namespace="pairwarden")
    result: dict[str, Any] = asyncio.run(helm_sdkpy.Lint(config).run(str(path)))
    return result


def _problems(result: dict[str, Any]) -> list[tuple[int, str]]:
    return [
        (m["Severity"], m["Path"]) for m in result.get("Messages") or [] if m["Severity"] >= WARNING
    ]


def test_chart_lints_without_warnings() -> None:
    result = _lint(CHART)
    assert result["TotalChartsLinted"] == 1
    assert _problems(result) == []
    assert not result.get("Errors")


def test_lint_catches_a_broken_template(tmp_path: Path) -> None:
    """The lint really renders templates: an undefined nested value is an error."""
    broken = tmp_path / "pairwarden"
    shutil.copytree(CHART, broken)
    with (broken / "templates" / "service.yaml").open("a") as f:
        f.write("\n{{ .Values.noSuchKey.field }}\n")
    assert (3, "templates/") in _problems(_lint(broken))
