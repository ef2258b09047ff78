"""Settings drift: a stable digest, and the names of the settings that differ."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pairwarden.replication import drift
from pairwarden.replication.drift import compare, settings_digest


def test_digest_ignores_key_order_and_whitespace(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"phoneLanguage": "en-US", "ports": {"count": 24}}))
    b.write_text('{ "ports": {"count": 24},\n "phoneLanguage": "en-US" }')
    assert settings_digest(a) == settings_digest(b)
    b.write_text(json.dumps({"phoneLanguage": "fr-FR", "ports": {"count": 24}}))
    assert settings_digest(a) != settings_digest(b)


def test_missing_file_is_empty_settings(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    assert settings_digest(missing) == settings_digest(empty)


def test_compare_names_differing_settings_with_dotted_nesting() -> None:
    a = {"phoneLanguage": "en-US", "ports": {"count": 24, "codec": "g711"}, "recording": "x"}
    b = {"phoneLanguage": "en-US", "ports": {"count": 48, "codec": "g711"}, "guiLanguage": "de"}
    assert compare(a, b) == ["guiLanguage", "ports.count", "recording"]
    assert compare(a, a) == []


def test_member_settings_from_one_file_are_its_keys(tmp_path: Path) -> None:
    (tmp_path / "member-settings.json").write_text('{"phoneLanguage": "en", "ports": {"count": 4}}')
    settings = drift.read_member_settings(tmp_path, ["member-settings.json"], [])
    assert settings == {"phoneLanguage": "en", "ports": {"count": 4}}
    digests = drift.setting_digests(settings)
    assert sorted(digests) == ["phoneLanguage", "ports.count"]
    assert drift.read_member_settings(tmp_path, ["absent.json"], []) == {}


def test_member_settings_from_several_sources_are_prefixed(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"x": 1}')
    (tmp_path / "b.conf").write_text("not json at all\n")
    command = [sys.executable, "-c", 'print(\'{"codec": "g711"}\')']
    settings = drift.read_member_settings(tmp_path, ["a.json", "b.conf"], command)
    assert settings == {
        "a.json:x": 1,
        "b.conf:b.conf": "not json at all\n",
        "command:codec": "g711",
    }


def test_a_failing_command_is_a_setting_not_a_crash(tmp_path: Path) -> None:
    failing = drift.read_member_settings(
        tmp_path, [], [sys.executable, "-c", "raise SystemExit(3)"]
    )
    assert failing == {"command": "exit 3"}
    missing = drift.read_member_settings(tmp_path, [], ["/nonexistent/program"])
    assert missing == {"command": "cannot run: FileNotFoundError"}
