"""Drift of the never-replicated settings, as the engine judges it from the two members'
reports: named in status.drift and the InSync condition, warned once per change."""

from __future__ import annotations

import json
from typing import Any

from tests.engine.test_decide import contacted, holding, make_spec, member, run

from pairwarden.engine import Warn, settings_drift
from pairwarden.protocol import MemberReport
from pairwarden.replication.drift import setting_digests


def reporting(settings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The report fields an agent derives from its member's settings."""
    digests = setting_digests(settings)
    text = json.dumps(digests, sort_keys=True, separators=(",", ":"))
    return {"settings_digest": str(hash(text)), "setting_digests": text, **extra}


SAME = {"phoneLanguage": "en", "ports": {"count": 24, "first": 1}}
OTHER = {"phoneLanguage": "de", "ports": {"count": 24, "first": 1}}


def test_two_members_that_differ_in_one_setting_then_agree_again() -> None:
    spec = make_spec()
    apart = run(spec, holding("primary"), member(**reporting(SAME)), contacted(**reporting(OTHER)))
    assert apart.status.drift.in_sync is False
    assert apart.status.drift.differing_settings == ["phoneLanguage"]
    insync = {c.type: c for c in apart.status.conditions}["InSync"]
    assert (insync.status, insync.reason) == ("False", "Drift")
    assert "phoneLanguage" in insync.message
    warnings = [a for a in apart.actions if isinstance(a, Warn) and a.reason == "SettingsDrift"]
    assert len(warnings) == 1 and "phoneLanguage" in warnings[0].message

    # The next look with the same drift warns no more.
    again = run(spec, apart.status, member(**reporting(SAME)), contacted(**reporting(OTHER)))
    assert not [a for a in again.actions if isinstance(a, Warn) and a.reason == "SettingsDrift"]

    agreed = run(spec, again.status, member(**reporting(SAME)), contacted(**reporting(SAME)))
    assert agreed.status.drift.in_sync is True and agreed.status.drift.differing_settings == []
    assert {c.type: c for c in agreed.status.conditions}["InSync"].status == "True"


def test_a_nested_setting_and_one_on_one_side_only_are_named() -> None:
    more = {**SAME, "ports": {"count": 48, "first": 1}, "recording": "on"}
    a, b = MemberReport(**reporting(SAME)), MemberReport(**reporting(more))
    assert settings_drift(a, b) == ["ports.count", "recording"]


def test_unknown_is_not_drift_and_an_older_agent_is_named_by_its_digest() -> None:
    assert settings_drift(MemberReport(), MemberReport(**reporting(SAME))) == []
    old_a, old_b = MemberReport(settings_digest="aa"), MemberReport(settings_digest="bb")
    assert settings_drift(old_a, old_b) == ["settingsDigest"]
    garbage = MemberReport(settings_digest="aa", setting_digests="[not json")
    assert settings_drift(garbage, old_b) == ["settingsDigest"]
