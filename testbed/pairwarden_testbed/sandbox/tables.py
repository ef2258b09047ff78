"""`meta.k8s.io/v1 Table` responses: what `kubectl get` prints, including a CRD's
additionalPrinterColumns (so `kubectl get failoverpairs` shows what the CRD promises)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from .resources import ResourceType

Obj = dict[str, Any]
_FILTER = re.compile(r"^\?\(@\.([\w.]+)\s*==\s*['\"]?([^'\"]*)['\"]?\)$")


def human_age(timestamp: str | None, now: datetime | None = None) -> str:
    """Go's duration.HumanDuration, which kubectl uses for AGE."""
    if not timestamp:
        return "<unknown>"
    try:  # any RFC 3339 time: status fields carry fractions and offsets, metadata does not
        created = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    secs = int(((now or datetime.now(UTC)) - created).total_seconds())
    if secs < 0:
        return "0s"
    mins, hours, days = secs // 60, secs // 3600, secs // 86400
    if secs < 120:
        return f"{secs}s"
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d" if days < 365 * 8 else f"{days // 365}y"


def jsonpath(obj: Any, path: str) -> Any:
    """The JSONPath subset printer columns use: `.a.b`, `[0]`, `[?(@.type=="Ready")]`."""
    cur = obj
    for part in re.findall(r"\.([^.\[\]]+)|\[([^\]]+)\]", path.strip().lstrip("{").rstrip("}")):
        name, index = part
        if name:
            cur = cur.get(name) if isinstance(cur, dict) else None
        elif index.isdigit():
            cur = cur[int(index)] if isinstance(cur, list) and int(index) < len(cur) else None
        else:
            m = _FILTER.match(index)
            if not (m and isinstance(cur, list)):
                return None
            field, wanted = m.groups()
            cur = next((i for i in cur if str(jsonpath(i, "." + field)) == wanted), None)
        if cur is None:
            return None
    return cur


def _cell(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "date":
        return human_age(str(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _builtin_columns(rt: ResourceType) -> list[tuple[str, str, str]]:
    """(name, type, jsonPath) for the built-ins people look at."""
    return {
        "Pod": [("Status", "string", ".status.phase"), ("IP", "string", ".status.podIP")],
        "Service": [
            ("Type", "string", ".spec.type"),
            ("Cluster-IP", "string", ".spec.clusterIP"),
        ],
        "Lease": [("Holder", "string", ".spec.holderIdentity")],
        "Namespace": [("Status", "string", ".status.phase")],
        "Job": [("Status", "string", ".status.conditions[0].type")],
        "Event": [("Reason", "string", ".reason"), ("Message", "string", ".message")],
    }.get(rt.kind, [])


def columns(rt: ResourceType) -> list[tuple[str, str, str]]:
    if rt.custom:
        cols = [
            (str(c["name"]), str(c.get("type", "string")), str(c["jsonPath"]))
            for c in rt.printer_columns
        ]
        # The API server serves a default Age column only when the CRD names no columns.
        return cols or [("Age", "date", ".metadata.creationTimestamp")]
    return [*_builtin_columns(rt), ("Age", "date", ".metadata.creationTimestamp")]


def to_table(rt: ResourceType, objs: list[Obj], list_rv: str | None, include: str) -> Obj:
    cols = columns(rt)
    definitions = [
        {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}
    ] + [
        {
            "name": n,
            "type": "string" if t == "date" else t,
            "format": "",
            "description": n,
            "priority": 0,
        }
        for n, t, _ in cols
    ]
    rows = []
    for obj in objs:
        row: Obj = {
            "cells": [obj["metadata"]["name"]] + [_cell(jsonpath(obj, p), t) for _, t, p in cols]
        }
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    meta = {"resourceVersion": list_rv} if list_rv else {}
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": definitions,
        "rows": rows,
    }
