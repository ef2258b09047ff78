"""Every accepted spec works or says why: numbers are bounded so no arithmetic overflows,
replicated directories stay inside the data directory, selectors are Kubernetes labels."""

from __future__ import annotations

from typing import Any

import pytest

from pairwarden.api.crd import build_crd
from pairwarden.api.models import MAX_SECONDS, SpecError, parse_spec


def spec(**extra: Any) -> dict[str, Any]:
    return {
        "members": {"primary": {"podName": "vm-0"}, "secondary": {"podName": "vm-1"}},
        "service": "calls",
        **extra,
    }


def selector(labels: dict[str, str]) -> dict[str, Any]:
    return spec(
        members={"primary": {"podName": "vm-0"}, "secondary": {"selector": {"matchLabels": labels}}}
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param(
            spec(licensing={"maxSecondsSinceContact": 10**12}),
            "spec.licensing.maxSecondsSinceContact",
            id="contact-1e12",
        ),
        pytest.param(
            spec(licensing={"neverContactedGraceSeconds": 10**12}),
            "spec.licensing.neverContactedGraceSeconds",
            id="grace-1e12",
        ),
        pytest.param(
            spec(replication={"directories": ["../../etc"]}),
            "spec.replication.directories",
            id="dot-dot",
        ),
        pytest.param(
            spec(replication={"directories": ["/"]}), "spec.replication.directories.0", id="root"
        ),
        pytest.param(
            spec(replication={"directories": ["."]}), "spec.replication.directories", id="dot"
        ),
        pytest.param(
            spec(replication={"directories": ["a//b"]}),
            "spec.replication.directories",
            id="empty-component",
        ),
        pytest.param(
            spec(replication={"directories": [".pairwarden-replication"]}),
            "spec.replication.directories",
            id="reserved",
        ),
        pytest.param(
            spec(replication={"directories": ["a\x00b"]}),
            "spec.replication.directories.0",
            id="nul",
        ),
        pytest.param(
            spec(replication={"directories": ["Snapshot", "Snapshot"]}),
            "spec.replication.directories",
            id="twice",
        ),
        pytest.param(
            selector({"app": "bad value!"}),
            "spec.members.secondary.selector.matchLabels.app",
            id="label-value",
        ),
        pytest.param(
            selector({"bad key!": "x"}),
            "spec.members.secondary.selector.matchLabels",
            id="label-key",
        ),
        pytest.param(
            selector({"a" * 64: "x"}),
            "spec.members.secondary.selector.matchLabels",
            id="label-name-64",
        ),
        pytest.param(
            selector({"app": "v" * 64}),
            "spec.members.secondary.selector.matchLabels.app",
            id="label-value-64",
        ),
    ],
)
def test_refused_naming_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    assert f"{field}:" in str(caught.value), str(caught.value)


def test_good_values_at_the_bounds_are_accepted() -> None:
    parse_spec(spec(licensing={"maxSecondsSinceContact": MAX_SECONDS}))
    parse_spec(spec(replication={"directories": ["Stream Files", "Localize/Prompts", "a.b/..c"]}))
    parse_spec(selector({"example.com/app": "voice-mail_1.0", "tier": ""}))


def test_every_number_in_the_crd_spec_has_a_maximum() -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        found = []
        if node.get("type") in ("integer", "number") and "maximum" not in node:
            found.append(path)
        for name, sub in (node.get("properties") or {}).items():
            found += walk(sub, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += walk(node[key], f"{path}[]")
        return found

    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(schema["properties"]["spec"], "spec") == []
