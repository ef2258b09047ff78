"""Drift of the never-replicated settings, from the outside: two members whose
`member-settings.json` differ in one setting are reported (status.drift, InSync=False, a
Warning Event naming it), and in sync again once they agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2e.conftest import start
from e2e.scenarios import reasons, status

from pairwarden.atomicfile import write_atomically
from pairwarden_testbed.localcluster import LocalCluster, wait_until

SETTINGS = {"phoneLanguage": "en-US", "ports": {"count": 24}, "recording": "on"}


def _write(cluster: LocalCluster, member: str, settings: dict[str, Any]) -> None:
    path = Path(cluster.data_dir(f"vm-{member}")) / "member-settings.json"
    write_atomically(path, json.dumps(settings).encode())


def _drift(cluster: LocalCluster) -> tuple[bool, list[str], str]:
    current = status(cluster)
    drift = current.get("drift") or {}
    insync = next((c for c in current.get("conditions") or [] if c["type"] == "InSync"), {})
    return (
        bool(drift.get("inSync", True)),
        list(drift.get("differingSettings") or []),
        insync.get("status", ""),
    )


def test_two_members_that_differ_in_one_setting_then_agree_again(cluster: LocalCluster) -> None:
    start(cluster)
    for member in ("primary", "secondary"):
        _write(cluster, member, SETTINGS)
    wait_until(lambda: _drift(cluster) == (True, [], "True"), timeout=30)

    _write(cluster, "secondary", {**SETTINGS, "phoneLanguage": "de-DE"})
    wait_until(lambda: _drift(cluster) == (False, ["phoneLanguage"], "False"), timeout=30)
    wait_until(lambda: "SettingsDrift" in reasons(cluster), timeout=15)
    warning = next(e for e in cluster.events() if e.reason == "SettingsDrift")
    assert warning.type == "Warning" and "phoneLanguage" in warning.message

    _write(cluster, "secondary", SETTINGS)
    wait_until(lambda: _drift(cluster) == (True, [], "True"), timeout=30)
