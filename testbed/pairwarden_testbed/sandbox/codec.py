"""Request bodies (JSON or YAML) in, JSON out. YAML is read without timestamp or other
implicit conversions so a YAML body means exactly what the same JSON would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from . import protobuf
from .errors import ApiError, bad_request

PROTOBUF = "application/vnd.kubernetes.protobuf"


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, like Kubernetes' YAML-to-JSON step."""


_PlainLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def is_yaml(content_type: str) -> bool:
    return content_type.endswith("yaml")


def decode(content_type: str, raw: bytes) -> Any:
    """Parse a body; malformed input is a 400 BadRequest with the parser's complaint. Protobuf
    is read for the built-in kinds kubectl's typed commands send (see `protobuf`)."""
    if content_type.startswith(PROTOBUF):
        return protobuf.decode(raw)
    if content_type.endswith("cbor"):
        raise ApiError(415, f'the body of the request was in an unknown format ("{content_type}")')
    text = raw.decode("utf-8", errors="replace")
    if is_yaml(content_type):
        try:
            return yaml.load(text, Loader=_PlainLoader)
        except yaml.YAMLError as exc:
            raise bad_request(f"error converting YAML to JSON: yaml: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    docs = yaml.load_all(path.read_text(), Loader=_PlainLoader)
    return [d for d in docs if isinstance(d, dict)]
