"""Kubernetes protobuf request bodies, read into the JSON the rest of the sandbox stores.

kubectl's typed commands (`kubectl create namespace|configmap|secret|serviceaccount`) and
Helm's release store (Secrets, created and deleted with DeleteOptions) send
their object as `application/vnd.kubernetes.protobuf` and do not retry with JSON when the
server answers 415 (client-go falls back only for CBOR), so a server that kubectl can use must
read protobuf for built-ins, as the real one does. This module reads the envelope (the magic
`k8s\\0` and a `runtime.Unknown`) and the few kinds those commands create, from field tables
that follow the upstream `generated.proto` files (k8s.io/api core/v1, apimachinery meta/v1).
A kind without a table is a 415 that names the kinds it knows and the way around it (JSON:
`kubectl apply` sends JSON). Answers are always JSON, which kubectl also accepts.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError

MAGIC = b"k8s\x00"


@dataclass(frozen=True)
class Field:
    """One field of a message: its JSON name, how its value reads, and whether it repeats.

    `kind` is string, bytes (base64 in JSON), int, bool, time (meta/v1 Time as RFC 3339),
    message (`message` gives the table), or map (`value` is string or bytes)."""

    name: str
    kind: str
    message: Mapping[int, Field] | None = None
    repeated: bool = False
    value: str = "string"
    pointer: bool = False  # Go writes it only when set, so a zero value is meant


Message = Mapping[int, "Field"]

TYPE_META: Message = {1: Field("apiVersion", "string"), 2: Field("kind", "string")}
UNKNOWN: Message = {
    1: Field("typeMeta", "message", TYPE_META),
    2: Field("raw", "raw"),
    3: Field("contentEncoding", "string"),
    4: Field("contentType", "string"),
}
OWNER_REFERENCE: Message = {
    1: Field("kind", "string"),
    3: Field("name", "string"),
    4: Field("uid", "string"),
    5: Field("apiVersion", "string"),
    6: Field("controller", "bool"),
    7: Field("blockOwnerDeletion", "bool"),
}
OBJECT_META: Message = {
    1: Field("name", "string"),
    2: Field("generateName", "string"),
    3: Field("namespace", "string"),
    5: Field("uid", "string"),
    6: Field("resourceVersion", "string"),
    7: Field("generation", "int"),
    8: Field("creationTimestamp", "time"),
    9: Field("deletionTimestamp", "time"),
    10: Field("deletionGracePeriodSeconds", "int"),
    11: Field("labels", "map"),
    12: Field("annotations", "map"),
    13: Field("ownerReferences", "message", OWNER_REFERENCE, repeated=True),
    14: Field("finalizers", "string", repeated=True),
}
METADATA = Field("metadata", "message", OBJECT_META)
OBJECT_REFERENCE: Message = {
    1: Field("kind", "string"),
    2: Field("namespace", "string"),
    3: Field("name", "string"),
    4: Field("uid", "string"),
    5: Field("apiVersion", "string"),
    6: Field("resourceVersion", "string"),
    7: Field("fieldPath", "string"),
}

DELETE_OPTIONS: Message = {
    1: Field("gracePeriodSeconds", "int", pointer=True),
    2: Field(
        "preconditions",
        "message",
        {
            1: Field("uid", "string", pointer=True),
            2: Field("resourceVersion", "string", pointer=True),
        },
    ),
    3: Field("orphanDependents", "bool"),
    4: Field("propagationPolicy", "string"),
    5: Field("dryRun", "string", repeated=True),
}

KINDS: dict[tuple[str, str], Message] = {
    # the body of a DELETE from client-go's typed clients (helm uninstall deletes its Secret)
    ("v1", "DeleteOptions"): DELETE_OPTIONS,
    ("meta.k8s.io/v1", "DeleteOptions"): DELETE_OPTIONS,
    ("v1", "Namespace"): {
        1: METADATA,
        2: Field("spec", "message", {1: Field("finalizers", "string", repeated=True)}),
        3: Field("status", "message", {1: Field("phase", "string")}),
    },
    ("v1", "ConfigMap"): {
        1: METADATA,
        2: Field("data", "map"),
        3: Field("binaryData", "map", value="bytes"),
        4: Field("immutable", "bool"),
    },
    ("v1", "Secret"): {
        1: METADATA,
        2: Field("data", "map", value="bytes"),
        3: Field("type", "string"),
        4: Field("stringData", "map"),
        5: Field("immutable", "bool"),
    },
    ("v1", "ServiceAccount"): {
        1: METADATA,
        2: Field("secrets", "message", OBJECT_REFERENCE, repeated=True),
        3: Field("imagePullSecrets", "message", {1: Field("name", "string")}, repeated=True),
        4: Field("automountServiceAccountToken", "bool"),
    },
}


def unsupported(detail: str) -> ApiError:
    known = ", ".join(dict.fromkeys(kind for _, kind in KINDS))
    return ApiError(
        415,
        f"the body of the request was in an unknown format - the sandbox reads protobuf "
        f"bodies of {known} only ({detail}); send JSON or YAML instead (kubectl apply does)",
        "UnsupportedMediaType",
    )


def decode(raw: bytes) -> dict[str, Any]:
    """The JSON object a protobuf request body stands for."""
    if not raw.startswith(MAGIC):
        raise unsupported("the body does not start with the k8s protobuf magic number")
    try:
        envelope = read_message(raw[len(MAGIC) :], UNKNOWN)
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise unsupported(f"malformed envelope: {exc}") from exc
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    table = KINDS.get((api_version, kind))
    if table is None:
        raise unsupported(f"got {api_version or '?'} {kind or '?'}")
    try:
        body = read_message(envelope.get("raw", b""), table)
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise unsupported(f"malformed {kind}: {exc}") from exc
    return {"apiVersion": api_version, "kind": kind, **body}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of one message: ints for varints, bytes otherwise."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("length past the end of the message")
            out.append((number, data[pos : pos + size]))
            pos += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            out.append((number, data[pos : pos + width]))
            pos += width
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _time(data: bytes) -> str:
    seconds = dict(_fields(data)).get(1, 0)
    if not isinstance(seconds, int) or not seconds:
        return ""  # the zero Time: JSON leaves it out
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "int":
        assert isinstance(value, int)
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind == "bool":
        return bool(value)
    if not isinstance(value, bytes):
        raise ValueError(f"expected a length-delimited {kind}")
    if kind == "string":
        return value.decode("utf-8")
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "time":
        return _time(value)
    return value  # raw: the nested object's bytes, read by the caller


def read_message(data: bytes, table: Message) -> dict[str, Any]:
    """Read one message by its field table; fields the table does not know are skipped, as
    a real server's generated code skips them. Go's protobuf code writes every non-pointer
    field, zero or not; the zero strings, numbers and times are left out here, as Go's JSON
    (`omitempty`) leaves them out."""
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        field = table.get(number)
        if field is None:
            continue
        if field.kind == "map":
            if not isinstance(value, bytes):
                raise ValueError(f"{field.name}: expected a map entry")
            entry = dict(_fields(value))
            key = _scalar("string", entry.get(1, b""))
            out.setdefault(field.name, {})[key] = _scalar(field.value, entry.get(2, b""))
            continue
        if field.kind == "message":
            if not isinstance(value, bytes) or field.message is None:
                raise ValueError(f"{field.name}: expected a message")
            item: Any = read_message(value, field.message)
        else:
            item = _scalar(field.kind, value)
            if not field.pointer and (item == "" or (field.kind == "int" and item == 0)):
                continue
        if field.repeated:
            out.setdefault(field.name, []).append(item)
        else:
            out[field.name] = item
    return out
