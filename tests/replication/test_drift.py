"""Settings drift: a stable digest, and the names of the settings that differ."""

from __future__ import annotations

import json
from pathlib import Path

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
