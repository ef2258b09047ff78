"""Settings that are never replicated (the reference's "Data That Is Not Replicated"): each
member keeps them in `<data-dir>/member-settings.json`, and drift between members is reported.

The agent publishes `settings_digest` in its Lease annotation `pairwarden.io/settings-digest`
(equal digests: in sync, no further reads). A digest cannot say *which* setting differs, so
the file API serves the settings themselves (`GET /settings`) and `compare` names them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SETTINGS_FILE = "member-settings.json"
# The reference's list, as the top-level keys of the settings file.
KNOWN_SETTINGS = (
    "registry",
    "recording",
    "phoneLanguage",
    "guiLanguage",
    "ports",
    "integration",
    "mediaMasterServerName",
)


def load_settings(path: Path) -> dict[str, Any]:
    """The settings object; a missing file is no settings. A malformed one raises ValueError."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: settings must be a JSON object")
    return data


def canonical(settings: dict[str, Any]) -> bytes:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def settings_digest(path: Path) -> str:
    """Stable SHA-256 of the settings (key order and whitespace do not matter)."""
    return hashlib.sha256(canonical(load_settings(path))).hexdigest()


def compare(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Names of differing settings, sorted; nested objects give dotted names
    (`ports.count`), lists and scalars compare whole. A setting on one side only differs."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            out.extend(compare(left, right, f"{name}."))
        elif key not in a or key not in b or left != right:
            out.append(name)
    return out
