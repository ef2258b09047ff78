"""`pairwarden crds`: write (or `--check`) the FailoverPair CRD generated from the models.

Pydantic emits JSON Schema with `$ref`, `anyOf` for optionals and titles; Kubernetes wants a
structural schema: every node typed, no references, `nullable` instead of a null branch.
`structural()` does that translation and nothing else, so the models stay the only source.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.api.models import (
    CATEGORIES,
    KIND,
    SHORT_NAMES,
    SINGULAR,
    FailoverPairSpec,
    FailoverPairStatus,
)

CRD_PATH = Path("crds") / f"{PLURAL}.{GROUP}.yaml"
_KEEP = {
    "type",
    "format",
    "description",
    "default",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "x-kubernetes-validations",
}


def structural(schema: dict[str, Any], *, nullable_optionals: bool) -> dict[str, Any]:
    """Translate one pydantic JSON Schema into a Kubernetes structural schema.

    In the spec, optional fields are not `nullable`: the API server then prunes an explicit
    null, so `has(self.x)` in CEL means "set". In the status, optionals are `nullable`.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}
            return merged
        return node

    def walk(node: dict[str, Any]) -> dict[str, Any]:
        node = resolve(node)
        nullable = False
        if "anyOf" in node:
            branches = [resolve(b) for b in node["anyOf"]]
            real = [b for b in branches if b.get("type") != "null"]
            if len(real) != 1:
                raise ValueError(f"cannot make a structural schema of anyOf {node['anyOf']}")
            nullable = len(real) != len(branches)
            node = {**real[0], **{k: v for k, v in node.items() if k != "anyOf"}}
        if "const" in node:
            node = {**node, "enum": [node["const"]]}
        out = {k: v for k, v in node.items() if k in _KEEP}
        if "enum" in out and "type" not in out:
            out["type"] = "string"
        if out.get("default", 0) is None:
            del out["default"]
        if node.get("type") == "object" or "properties" in node:
            out["type"] = "object"
            props = node.get("properties", {})
            if props:
                out["properties"] = {name: walk(sub) for name, sub in props.items()}
            required = node.get("required")
            if required:
                out["required"] = list(required)
            extra = node.get("additionalProperties")
            if isinstance(extra, dict):
                out["additionalProperties"] = walk(extra)
        if node.get("type") == "array":
            out["items"] = walk(node["items"])
        if nullable and nullable_optionals:
            out["nullable"] = True
        if "type" not in out:
            raise ValueError(f"untyped schema node: {node}")
        return out

    return walk(schema)


def _object_defaults(schema: dict[str, Any]) -> None:
    """Give every optional nested object `default: {}` so the API server fills its defaults."""
    for name, sub in schema.get("properties", {}).items():
        optional = name not in schema.get("required", [])
        fillable = "properties" in sub and "default" not in sub and not _has_required(sub)
        if sub.get("type") == "object" and optional and fillable:
            sub["default"] = {}
        _object_defaults(sub)


def _has_required(schema: dict[str, Any]) -> bool:
    return bool(schema.get("required"))


def spec_schema() -> dict[str, Any]:
    schema = structural(
        FailoverPairSpec.model_json_schema(by_alias=True, mode="validation"),
        nullable_optionals=False,
    )
    _object_defaults(schema)
    return schema


def status_schema() -> dict[str, Any]:
    schema = structural(
        FailoverPairStatus.model_json_schema(by_alias=True, mode="serialization"),
        nullable_optionals=True,
    )
    _strip_defaults(schema)
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def _strip_defaults(schema: dict[str, Any]) -> None:
    """The operator writes every status field it means; defaults there would only mislead."""
    schema.pop("default", None)
    for sub in schema.get("properties", {}).values():
        _strip_defaults(sub)
    if "items" in schema:
        _strip_defaults(schema["items"])


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        _column("Active", "string", ".status.activeMember"),
                        _column("Phase", "string", ".status.phase"),
                        _column("Epoch", "integer", ".status.epoch"),
                        # Why it serves or not (Serving, ServiceMissing, NoHolder, ...), and
                        # whether each member names one running pod (OnePodEach, PodMissing,
                        # PodUnresolved): a misconfigured pair shows it in `kubectl get fp`.
                        _column("Ready", "string", _reason_of("Ready")),
                        _column("Members", "string", _reason_of("MembersResolved")),
                        _column("Last Failover", "date", ".status.lastTransition.time"),
                        _column("Age", "date", ".metadata.creationTimestamp"),
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "An active/passive pair of voicemail servers.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": _described(
                                    {"type": "string"}, "pairwarden.io/v1alpha1."
                                ),
                                "kind": _described({"type": "string"}, "FailoverPair."),
                                # Only `type` here: the API server refuses anything
                                # else on metadata (1.20: "must not specify anything other
                                # than name and generateName"); kubectl explain shows
                                # ObjectMeta's own text.
                                "metadata": {"type": "object"},
                                "spec": _described(
                                    spec_schema(),
                                    "What the pair should be: its members, the callers' "
                                    "Service, heartbeat, failback, CPU, replication and "
                                    "licensing settings.",
                                ),
                                "status": _described(
                                    status_schema(),
                                    "What the operator observed and decided (written by it "
                                    "alone; the active Lease is the record of who is active).",
                                ),
                            },
                        }
                    },
                }
            ],
        },
    }


def _column(name: str, kind: str, path: str) -> dict[str, str]:
    return {"name": name, "type": kind, "jsonPath": path}


def _described(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """`schema` with `text` as its description, placed after its type."""
    return {"type": schema["type"], "description": text, **schema}


def _reason_of(condition: str) -> str:
    return f'.status.conditions[?(@.type=="{condition}")].reason'


class _NoAliasDumper(yaml.SafeDumper):
    """Shared sub-schemas are written out in full: anchors would confuse readers and tools."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_ORDER = ("type", "description", "format", "nullable", "default")


def _ordered(node: Any) -> Any:
    """Schema keys in a stable, readable order: type and description first."""
    if isinstance(node, dict):
        first = [k for k in _ORDER if k in node]
        rest = [k for k in node if k not in _ORDER]
        return {k: _ordered(node[k]) for k in (*first, *rest)}
    if isinstance(node, list):
        return [_ordered(v) for v in node]
    return node


CEL_KEY = "x-kubernetes-validations"


def without_cel(node: Any) -> Any:
    """The CRD with every CEL rule (`x-kubernetes-validations`) removed, for API servers older
    than 1.25: their kubectl refuses the unknown field and their server drops it silently.
    The operator checks the same rules itself (the models' validators) and refuses an invalid
    spec with SpecValid=False and an Event naming the field, so nothing is enforced less,
    only later: at reconcile instead of at admission."""
    if isinstance(node, dict):
        return {k: without_cel(v) for k, v in node.items() if k != CEL_KEY}
    if isinstance(node, list):
        return [without_cel(v) for v in node]
    return node


def render(*, cel: bool = True) -> str:
    header = "# Generated by `pairwarden crds` from pairwarden.api.models; do not edit.\n"
    if not cel:
        header += "# Without CEL rules, for Kubernetes < 1.25: the operator validates the spec.\n"
    crd = build_crd() if cel else without_cel(build_crd())
    body = yaml.dump(_ordered(crd), Dumper=_NoAliasDumper, sort_keys=False, width=100)
    return header + body


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", type=Path, default=CRD_PATH, help="where the CRD goes ('-': standard output)"
    )
    parser.add_argument(
        "--without-cel",
        action="store_true",
        help="leave out the CEL rules, for Kubernetes 1.16-1.24 (the operator still checks them)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 with a diff if the file is out of date"
    )


def run(args: argparse.Namespace) -> int:
    wanted = render(cel=not getattr(args, "without_cel", False))
    path: Path = args.output
    if str(path) == "-":
        sys.stdout.write(wanted)
        return 0
    if args.check:
        current = path.read_text() if path.exists() else ""
        if current == wanted:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            fromfile=str(path),
            tofile="generated",
        )
        sys.stdout.writelines(diff)
        print(f"{path} is out of date: run `pairwarden crds`", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(wanted)
    return 0
