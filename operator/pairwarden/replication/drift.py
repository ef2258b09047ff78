"""Settings that are never replicated (the reference's "Data That Is Not Replicated"): each
member keeps them in `<data-dir>/member-settings.json`, and drift between members is reported.

The agent publishes `settings_digest` in its Lease annotation `pairwarden.io/settings-digest`
(equal digests: in sync, no further reads). A digest cannot say *which* setting differs, so
the file API serves the settings themselves (`GET /settings`) and `compare` names them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Any top-level key of the settings file is compared; the reference's own list is registry,
# recording, phoneLanguage, guiLanguage, ports, integration and mediaMasterServerName.


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


COMMAND_TIMEOUT = 5.0


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves by dotted name, as `compare` names them: nested objects open up, lists and
    scalars stay whole."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def setting_digests(settings: Mapping[str, Any]) -> dict[str, str]:
    """A short digest per setting: what an agent publishes, so the operator can name the
    settings that differ without reading either member's files."""
    return {
        name: hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]
        for name, value in sorted(flatten(settings).items())
    }


def _as_settings(text: bytes, name: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    return dict(data) if isinstance(data, dict) else {name: text.decode(errors="replace")}


def read_member_settings(
    root: Path, files: Sequence[str], command: Sequence[str]
) -> dict[str, Any]:
    """The member's own settings from the files and command the pair's spec names. With one
    source, its keys are the settings; with several, each key is prefixed by its source
    (`<file>:` or `command:`). A missing file contributes nothing (a member without it
    differs from one with it); a failing command contributes its error."""
    sources: list[tuple[str, dict[str, Any]]] = []
    for name in files:
        path = root / name
        try:
            sources.append((name, _as_settings(path.read_bytes(), name)))
        except OSError:
            continue
    if command:
        try:
            done = subprocess.run(
                list(command), capture_output=True, timeout=COMMAND_TIMEOUT, check=False
            )
            output = done.stdout if done.returncode == 0 else f"exit {done.returncode}".encode()
        except (OSError, subprocess.TimeoutExpired) as exc:
            output = f"cannot run: {type(exc).__name__}".encode()
        sources.append(("command", _as_settings(output, "command")))
    if len(sources) == 1 and (len(files) + bool(command)) == 1:
        return sources[0][1]
    return {f"{source}:{key}": value for source, data in sources for key, value in data.items()}
