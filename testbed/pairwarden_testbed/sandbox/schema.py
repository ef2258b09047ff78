"""Structural OpenAPI v3 schemas of custom resources: defaulting, pruning, validation and
`x-kubernetes-validations` CEL rules, reported the way the real API server words them.

Order per write, as in the real server: drop nulls of non-nullable fields, apply defaults,
prune unknown fields, then validate (schema keywords, then CEL).
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from typing import Any

import celpy
from celpy.adapter import json_to_cel

from .errors import Cause

Schema = dict[str, Any]
_META_KEYS = ("apiVersion", "kind", "metadata")


def _child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: Any) -> str:
    """A value as Go's `%#v` shows it in field errors: scalars literally, else the type."""
    if isinstance(value, dict | list):
        return f'"{_type_name(value)}"'
    return json.dumps(value)


def _properties(schema: Schema) -> dict[str, Schema]:
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def _additional(schema: Schema) -> Schema | None:
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def apply_defaults(value: Any, schema: Schema, root: bool = False) -> Any:
    """Fill `default`s of absent fields and drop nulls the schema does not allow."""
    if isinstance(value, dict):
        props = _properties(schema)
        for key in list(value):
            sub = props.get(key) or _additional(schema)
            if value[key] is None and sub is not None and not sub.get("nullable"):
                del value[key]
        for key, sub in props.items():
            if root and key in _META_KEYS:
                continue
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
        extra = _additional(schema)
        if extra is not None:
            for key in value:
                if key not in props:
                    value[key] = apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


def prune(value: Any, schema: Schema, path: str, pruned: list[str], root: bool = False) -> Any:
    """Drop fields the schema does not know unless it preserves unknown fields; records the
    dropped paths so `fieldValidation=Strict` can refuse them."""
    if isinstance(value, dict):
        if schema.get("x-kubernetes-embedded-resource"):
            root = True
        props = _properties(schema)
        extra = _additional(schema)
        keep = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
            "additionalProperties"
        ) in (True,)
        for key in list(value):
            if root and key in _META_KEYS:
                continue
            sub = props.get(key) or extra
            if sub is not None:
                value[key] = prune(value[key], sub, _child_path(path, key), pruned)
            elif not keep:
                pruned.append(_child_path(path, key))
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(v, schema["items"], f"{path}[{i}]", pruned) for i, v in enumerate(value)]
    return value


def _type_ok(value: Any, schema: Schema) -> bool:
    if value is None:
        return bool(schema.get("nullable"))
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    wanted = schema.get("type")
    if not wanted:
        return True
    actual = _type_name(value)
    if wanted == "integer" and isinstance(value, float):
        return value.is_integer()  # 10.0 is an integer to the real server (a whole JSON number)
    return actual == wanted or (wanted == "number" and actual == "integer")


def _keyword_errors(value: Any, schema: Schema, path: str) -> list[Cause]:
    errors: list[Cause] = []
    shown = _show(value)
    label = path or "body"

    def bad(text: str) -> None:
        errors.append(Cause(path, "FieldValueInvalid", f"Invalid value: {shown}: {text}"))

    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        errors.append(
            Cause(
                path,
                "FieldValueNotSupported",
                f"Unsupported value: {shown}: supported values: {allowed}",
            )
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema:
            if schema.get("exclusiveMinimum") is True and value <= schema["minimum"]:
                bad(f"{label} in body should be greater than {schema['minimum']}")
            elif value < schema["minimum"]:
                bad(f"{label} in body should be greater than or equal to {schema['minimum']}")
        if "maximum" in schema:
            if schema.get("exclusiveMaximum") is True and value >= schema["maximum"]:
                bad(f"{label} in body should be less than {schema['maximum']}")
            elif value > schema["maximum"]:
                bad(f"{label} in body should be less than or equal to {schema['maximum']}")
        if "multipleOf" in schema and value % schema["multipleOf"]:
            bad(f"{label} in body should be a multiple of {schema['multipleOf']}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            bad(f"{label} in body should be at least {schema['minLength']} chars long")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(
                Cause(
                    path,
                    "FieldValueTooLong",
                    f"Too long: may not be more than {schema['maxLength']} bytes",
                )
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            bad(f"{label} in body should match '{schema['pattern']}'")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(
                Cause(
                    path,
                    "FieldValueTooMany",
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            bad(f"{label} in body should have at least {schema['minItems']} items")
    if isinstance(value, dict):
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            bad(f"{label} in body should have at most {schema['maxProperties']} properties")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            bad(f"{label} in body should have at least {schema['minProperties']} properties")
    return errors


@lru_cache(maxsize=1024)
def compile_rule(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def rule_errors(schema: Schema, path: str = "") -> list[Cause]:
    """CEL rules that do not compile, checked when a CRD is written."""
    errors: list[Cause] = []
    for i, item in enumerate(schema.get("x-kubernetes-validations") or []):
        try:
            compile_rule(str(item.get("rule", "")))
        except Exception as exc:  # celpy raises its own parse error types
            errors.append(
                Cause(
                    f"{path}.x-kubernetes-validations[{i}].rule",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(item.get('rule'))}: compilation failed: {exc}",
                )
            )
    for key, sub in _properties(schema).items():
        errors += rule_errors(sub, f"{path}.properties[{key}]")
    for name in ("items", "additionalProperties"):
        if isinstance(schema.get(name), dict):
            errors += rule_errors(schema[name], f"{path}.{name}")
    return errors


_NO_OLD = object()


def _cel_errors(value: Any, old: Any, schema: Schema, path: str) -> list[Cause]:
    errors: list[Cause] = []
    for item in schema.get("x-kubernetes-validations") or []:
        rule = str(item.get("rule", ""))
        transition = "oldSelf" in rule
        if transition and old is _NO_OLD and not item.get("optionalOldSelf"):
            continue
        activation: dict[str, Any] = {"self": json_to_cel(value)}
        if transition:
            activation["oldSelf"] = json_to_cel(None if old is _NO_OLD else old)
        message = item.get("message") or f"failed rule: {rule}"
        field_path = str(item.get("fieldPath") or "")
        try:
            result = compile_rule(rule).evaluate(activation)
            ok = bool(result) if isinstance(result, celpy.celtypes.BoolType) else False
        except Exception as exc:  # evaluation errors (missing keys...) fail the rule
            # as the real server words it: at the rule's own node (fieldPath is for a false
            # result only), naming the rule by its message when it has one
            error, named = exc.args[0] if exc.args else exc, item.get("message") or rule
            ok, message, field_path = False, f"{error} evaluating rule: {named}", ""
        if not ok:
            field = path + field_path
            field = field.lstrip(".")
            reason = str(item.get("reason") or "FieldValueInvalid")
            prefix = {
                "FieldValueForbidden": "Forbidden",
                "FieldValueRequired": "Required value",
                "FieldValueDuplicate": f"Duplicate value: {_show(value)}",
            }.get(reason, f"Invalid value: {_show(value)}")
            errors.append(Cause(field, reason, f"{prefix}: {message}"))
    return errors


def validate(
    value: Any, schema: Schema, path: str = "", old: Any = _NO_OLD, root: bool = False
) -> list[Cause]:
    """All schema violations of `value`, deepest fields included, CEL rules last."""
    if not _type_ok(value, schema):
        wanted = schema.get("type") or "int-or-string"
        shown = f'"{_type_name(value)}"'
        return [
            Cause(
                path,
                "FieldValueTypeInvalid" if value is not None else "FieldValueRequired",
                f"Invalid value: {shown}: {path or 'body'} in body must be of type {wanted}: "
                f"{shown}",
            )
        ]
    if value is None:
        return []
    errors = _keyword_errors(value, schema, path)
    if isinstance(value, dict):
        props = _properties(schema)
        for key in schema.get("required") or []:
            if key not in value:
                errors.append(Cause(_child_path(path, key), "FieldValueRequired", "Required value"))
        extra = _additional(schema)
        for key, item in value.items():
            if root and key in _META_KEYS:
                continue
            sub = props.get(key) or extra
            if sub is None:
                continue
            child_old = old.get(key, _NO_OLD) if isinstance(old, dict) else _NO_OLD
            child_path = _child_path(path, key) if key in props else f"{path}[{key}]"
            errors += validate(item, sub, child_path, child_old)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    if not errors:
        errors += _cel_errors(value, old, schema, path)
    return errors


def normalise(
    obj: dict[str, Any], schema: Schema, old: dict[str, Any] | None
) -> tuple[dict[str, Any], list[str], list[Cause]]:
    """Default, prune and validate a whole custom resource; returns it, the pruned paths and
    the errors (empty when valid)."""
    apply_defaults(obj, schema, root=True)
    pruned: list[str] = []
    prune(obj, schema, "", pruned, root=True)
    errors = validate(obj, schema, "", old if old is not None else _NO_OLD, root=True)
    return obj, pruned, errors
