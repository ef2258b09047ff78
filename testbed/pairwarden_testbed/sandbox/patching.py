"""The four PATCH flavours: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge
and a server-side-apply approximation. All work on deep copies: a failed patch changes nothing.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import jsonpointer

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


def _patch_failed(message: str) -> ApiError:
    return ApiError(422, message, "Invalid")


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902, by the jsonpatch library (kopf's own). A failed `test` is a 422, which is how
    kopf detects a concurrent change; a path that is not there is a 422 too, as on the real
    server, and a malformed operation a 400."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {json.dumps(op)}")
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"missing value for operation {op['op']!r}")
    try:
        return jsonpatch.apply_patch(target, ops)  # on a deep copy: a failed patch changes nothing
    except jsonpatch.JsonPatchTestFailed as exc:
        raise _patch_failed(f"testing value failed: test operation does not apply: {exc}") from exc
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as exc:
        raise _patch_failed(f"doc is missing path: {exc}") from exc
    except jsonpatch.InvalidJsonPatch as exc:
        raise bad_request(f"invalid JSON patch: {exc}") from exc


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
