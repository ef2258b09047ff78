"""The pydantic models: defaults, camelCase wire format, and errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pairwarden.api import FailoverPairSpec, SpecError, parse_spec, parse_status
from pairwarden.api.models import DEFAULT_DIRECTORIES, FailbackWindow, FailoverPairStatus

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "failoverpair.yaml"
INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))

MINIMAL: dict[str, Any] = {
    "members": {"primary": {"podName": "vm-0"}, "secondary": {"podName": "vm-1"}},
    "service": "voicemail",
}


def expectation(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            return line.removeprefix("# expect:").strip()
    raise AssertionError(f"{path} has no '# expect:' line")


def test_defaults_are_the_reference_settings() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.heartbeat.interval_ms == 1000
    assert spec.heartbeat.missed_before_failover == 30
    assert spec.heartbeat.window_seconds == 30.0
    assert spec.heartbeat.renew_period_seconds == 10.0
    assert spec.failback.type == "Manual" and spec.failback.window is None
    assert spec.force_failover_on_inactive_call is False
    assert spec.replication.database_interval_seconds == 60
    assert tuple(spec.replication.directories) == DEFAULT_DIRECTORIES
    assert spec.licensing.never_contacted_grace_seconds == 4 * 3600
    assert spec.licensing.max_seconds_since_contact == 60 * 86400
    assert spec.paused is False


def test_the_agents_reading_of_an_empty_spec_is_the_models_defaults() -> None:
    """The agent reads the spec without the models (agent.core.settings_from_spec); both take
    their defaults from protocol, and this pins that an empty spec means the same to both."""
    from pairwarden.agent.core import settings_from_spec

    spec = parse_spec(MINIMAL)
    agent = settings_from_spec(MINIMAL)
    assert agent == settings_from_spec({}) == settings_from_spec(None)
    assert agent.sizing == spec.heartbeat.sizing
    cpu, licensing = spec.excessive_cpu, spec.licensing
    assert (agent.cpu_enabled, agent.cpu_threshold, agent.cpu_duration) == (
        cpu.enabled,
        cpu.threshold_percent,
        cpu.duration_seconds,
    )
    assert (agent.never_contacted_grace, agent.max_since_contact) == (
        licensing.never_contacted_grace_seconds,
        licensing.max_seconds_since_contact,
    )
    assert agent.settings_files == tuple(spec.member_settings.files)
    assert agent.settings_command == tuple(spec.member_settings.command)
    assert agent.force_failover == spec.force_failover_on_inactive_call


def test_wire_format_is_camel_case_and_round_trips() -> None:
    spec = parse_spec(MINIMAL)
    wire = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire["heartbeat"]["missedBeforeFailover"] == 30
    assert "missed_before_failover" not in wire["heartbeat"]
    assert parse_spec(wire) == spec


def test_full_example_is_valid_and_uses_every_field() -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    spec = parse_spec(document["spec"])
    assert spec.failback.window is not None
    assert spec.failback.window.time_zone == "Europe/Paris"
    assert spec.members.secondary.selector is not None

    def fields(model: type[Any], data: dict[str, Any], prefix: str) -> list[str]:
        missing = []
        for name, info in model.model_fields.items():
            alias = info.alias or name
            if alias not in data:
                missing.append(prefix + alias)
        return missing

    assert fields(FailoverPairSpec, document["spec"], "spec.") == []


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_each_invalid_example_is_rejected_naming_the_field(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    with pytest.raises(SpecError) as caught:
        parse_spec(document["spec"])
    assert expectation(path) in str(caught.value)


def test_unknown_fields_are_rejected_by_name() -> None:
    with pytest.raises(SpecError, match=r"spec\.heartbeat\.intervalMS"):
        parse_spec({**MINIMAL, "heartbeat": {"intervalMS": 500}})


def test_window_wrapping_midnight() -> None:
    window = FailbackWindow(start="23:00", end="01:00", time_zone="UTC")
    assert window.contains(datetime(2026, 1, 5, 23, 30, tzinfo=UTC))
    assert window.contains(datetime(2026, 1, 6, 0, 59, tzinfo=UTC))
    assert not window.contains(datetime(2026, 1, 6, 1, 0, tzinfo=UTC))
    assert not window.contains(datetime(2026, 1, 5, 22, 59, tzinfo=UTC))


def test_window_follows_the_pairs_time_zone_across_dst() -> None:
    window = FailbackWindow(start="02:00", end="03:00", time_zone="America/New_York")
    # Winter: 02:30 EST is 07:30 UTC. Summer: 02:30 EDT is 06:30 UTC.
    assert window.contains(datetime(2026, 1, 15, 7, 30, tzinfo=UTC))
    assert not window.contains(datetime(2026, 1, 15, 6, 30, tzinfo=UTC))
    assert window.contains(datetime(2026, 7, 15, 6, 30, tzinfo=UTC))
    assert not window.contains(datetime(2026, 7, 15, 7, 30, tzinfo=UTC))
    # 2026-03-08: 02:00-03:00 local does not exist; the window is empty that night.
    spring = [datetime(2026, 3, 8, 6, m, tzinfo=UTC) for m in range(0, 60, 5)]
    spring += [datetime(2026, 3, 8, 7, m, tzinfo=UTC) for m in range(0, 60, 5)]
    assert not any(window.contains(t) for t in spring)


def test_status_round_trips_and_tolerates_garbage() -> None:
    status = FailoverPairStatus(active_member="secondary", epoch=3)
    wire = status.to_wire()
    assert wire["activeMember"] == "secondary"
    assert parse_status(wire) == status
    assert parse_status({"epoch": "not a number"}) == FailoverPairStatus()
    assert parse_status(None) == FailoverPairStatus()
