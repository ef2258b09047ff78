"""The four PATCH flavours: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge
and a server-side-apply approximation. All work on deep copies: a failed patch changes nothing.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .errors import ApiError, bad_request

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE, JSON_PATCH, STRATEGIC, APPLY)

# Lists that strategic merge treats as maps keyed by a field (k8s.io/api patchMergeKey tags).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
# Primitive lists that strategic merge unions instead of replacing.
MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    return [_unescape(t) for t in path.split("/")[1:]] if path else []


def _patch_failed(message: str) -> ApiError:
    return ApiError(422, message, "Invalid")


def _parent(doc: Any, tokens: list[str], path: str) -> tuple[Any, str]:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict) and tok in cur:
            cur = cur[tok]
        elif isinstance(cur, list) and tok.isdigit() and int(tok) < len(cur):
            cur = cur[int(tok)]
        else:
            raise _patch_failed(f"doc is missing path: {path!r}: missing value")
    return cur, tokens[-1]


def _get(doc: Any, path: str) -> Any:
    cur = doc
    for tok in _pointer(path):
        if isinstance(cur, dict) and tok in cur:
            cur = cur[tok]
        elif isinstance(cur, list) and tok.isdigit() and int(tok) < len(cur):
            cur = cur[int(tok)]
        else:
            raise _patch_failed(f"doc is missing path: {path!r}: missing value")
    return cur


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise _patch_failed("cannot remove the whole document")
    parent, last = _parent(doc, tokens, path)
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise _patch_failed(f"doc is missing path: {path!r}: missing value")


def _add(doc: Any, path: str, value: Any, replace: bool) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _patch_failed(f"doc is missing key: {path!r}: missing value")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise _patch_failed(f"unable to access invalid index: {last} in {path!r}")
    else:
        raise _patch_failed(f"doc is missing path: {path!r}: missing value")
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902. A failed `test` is a 422, which is how kopf detects a concurrent change."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {json.dumps(op)}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"missing value for operation {kind!r}")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=False)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "move":
            value = _remove(doc, op.get("from", ""))
            doc = _add(doc, path, value, replace=False)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op.get("from", ""))), replace=False)
        elif kind == "test":
            actual = _get(doc, path)
            if actual != op["value"]:
                raise _patch_failed(
                    f"testing value {path} failed: test operation does not apply: is "
                    f"{json.dumps(actual)}, expected {json.dumps(op['value'])}"
                )
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    return doc


def _list_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def _merge_keyed(target: list[Any], patch: list[Any], key: str) -> list[Any]:
    result = copy.deepcopy(target)
    index = {item.get(key): i for i, item in enumerate(result) if isinstance(item, dict)}
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item!r} does not contain declared merge key: {key}")
        directive = item.get("$patch")
        if directive == "delete":
            if item[key] in index:
                result[index.pop(item[key])] = None
            continue
        if item[key] in index:
            pos = index[item[key]]
            result[pos] = strategic_merge(result[pos], item)
        else:
            index[item[key]] = len(result)
            result.append(strategic_merge({}, item))
    return [r for r in result if r is not None]


def strategic_merge(target: Any, patch: Any) -> Any:
    """Merge patch plus keyed-list merging, `$patch`, `$retainKeys` and
    `$deleteFromPrimitiveList/` directives; `$setElementOrder/` is accepted and ignored."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = [v for v in result[name] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            list_key = _list_key(key, result[key] + value)
            if list_key:
                result[key] = _merge_keyed(result[key], value, list_key)
            elif key in MERGED_PRIMITIVE_LISTS:
                result[key] = result[key] + [v for v in value if v not in result[key]]
            else:
                result[key] = copy.deepcopy(value)
        elif isinstance(value, list):
            result[key] = [
                strategic_merge({}, v) if isinstance(v, dict) else copy.deepcopy(v)
                for v in value
                if not (isinstance(v, dict) and v.get("$patch") == "delete")
            ]
        else:
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def apply_patch(target: Any, intent: Any) -> Any:
    """Server-side apply, approximated: the applied configuration merges over the live object
    like a strategic merge without deletions (field ownership is not tracked)."""
    if not isinstance(intent, dict):
        raise bad_request("apply patch must be an object")
    return strategic_merge(target, intent)
