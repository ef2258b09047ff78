"""Request bodies (JSON or YAML) in, JSON out. YAML is read without timestamp or other
implicit conversions so a YAML body means exactly what the same JSON would.

Hostile bodies are refused with a 400 Status, as the real server refuses them, before anything
is stored: NaN and Infinity (not JSON; stored, they would make every later list invalid),
integers outside int64, nesting deeper than MAX_DEPTH, and YAML whose aliases expand past the
body limit (a few hundred bytes of nested aliases can stand for megabytes)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from . import protobuf
from .errors import ApiError, bad_request

PROTOBUF = "application/vnd.kubernetes.protobuf"
MAX_DEPTH = 200  # far beyond any Kubernetes object; far below Python's recursion limit
INT64 = (-(1 << 63), (1 << 63) - 1)


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


def decode(content_type: str, raw: bytes, max_size: int | None = None) -> Any:
    """Parse a body; malformed input is a 400 BadRequest with the parser's complaint. Protobuf
    is read for the built-in kinds kubectl's typed commands send (see `protobuf`).
    `max_size`: the most bytes the decoded value may take as JSON (aliases expanded)."""
    if content_type.startswith(PROTOBUF):
        return protobuf.decode(raw)
    if content_type.endswith("cbor"):
        raise ApiError(415, f'the body of the request was in an unknown format ("{content_type}")')
    text = raw.decode("utf-8", errors="replace")
    try:
        if is_yaml(content_type):
            try:
                value = yaml.load(text, Loader=_PlainLoader)
            except yaml.YAMLError as exc:
                raise bad_request(f"error converting YAML to JSON: yaml: {exc}") from exc
        else:
            try:
                value = json.loads(text, parse_constant=_no_constant)
            except (json.JSONDecodeError, ValueError) as exc:
                raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
    except RecursionError:
        raise bad_request(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    check_value(value, max_size or len(raw) * 64 + 4096)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def check_value(value: Any, max_size: int) -> None:
    """Walk a decoded body once, iteratively (aliases walked once per use, as JSON would
    repeat them): 400 for NaN/Infinity, integers outside int64, depth over MAX_DEPTH, or
    more than `max_size` bytes, counted roughly as JSON would spell it."""
    size = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise bad_request(f"the body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            size += 2 + len(item)
            for key, child in item.items():
                size += len(str(key)) + 3
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            size += 2 + len(item)
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, bool) or item is None:
            size += 5  # before int: a bool is an int
        elif isinstance(item, int):
            if not INT64[0] <= item <= INT64[1]:
                raise bad_request("a number in the body is out of range for int64")
            size += len(str(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise bad_request("json: unsupported value: NaN or Infinity")
            size += len(repr(item))
        if size > max_size:
            raise ApiError(413, f"Request entity too large: limit is {max_size}")


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    docs = yaml.load_all(path.read_text(), Loader=_PlainLoader)
    return [d for d in docs if isinstance(d, dict)]
