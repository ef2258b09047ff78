"""The committed CRD is exactly what the models generate, is structural, and its schema and
CEL rules accept the example and reject each invalid one (evaluated here with celpy)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from pairwarden.api import crd

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / crd.CRD_PATH
EXAMPLE = ROOT / "examples" / "failoverpair.yaml"
INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.read_text() == crd.render(), "run `pairwarden crds` and commit the result"


def test_check_mode_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text("old\n")
    assert crd.run(argparse.Namespace(output=stale, check=True)) == 1
    assert "+apiVersion: apiextensions.k8s.io/v1" in capsys.readouterr().out
    assert crd.run(argparse.Namespace(output=stale, check=False)) == 0
    assert crd.run(argparse.Namespace(output=stale, check=True)) == 0


def test_variant_without_cel_for_servers_before_1_25(capsys: pytest.CaptureFixture[str]) -> None:
    """`pairwarden crds --without-cel --output -`: the same CRD, every CEL rule gone (1.20's
    kubectl refuses the field); the models' validators refuse what the rules refused."""
    args = argparse.Namespace(output=Path("-"), check=False, without_cel=True)
    assert crd.run(args) == 0
    variant = yaml.safe_load(capsys.readouterr().out)
    assert crd.CEL_KEY not in repr(variant)
    assert crd.CEL_KEY in repr(_document())
    assert variant == crd.without_cel(_document())
    assert crd.without_cel(variant) == variant


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        found += _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _nodes(schema["additionalProperties"], f"{path}[*]")
    if "items" in schema:
        found += _nodes(schema["items"], f"{path}[]")
    return found


def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMMITTED.read_text())
    return loaded


def _schema() -> dict[str, Any]:
    version = _document()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_crd_is_structural() -> None:
    for path, node in _nodes(_schema()):
        assert "type" in node, f"{path} has no type"
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "title", "$defs"):
            assert forbidden not in node, f"{path} has {forbidden}"


def test_crd_names_columns_and_status_subresource() -> None:
    spec = _document()["spec"]
    assert spec["group"] == "pairwarden.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["fp"]
    assert spec["names"]["categories"] == ["pairwarden"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Active", "Phase", "Epoch", "Ready", "Members", "Last Failover", "Age"]
    status = _schema()["properties"]["status"]
    assert "x-kubernetes-preserve-unknown-fields" not in str(status)
    assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


# ------------------------------------------------------ a small API-server-like validator


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: fill absent fields, then recurse."""
    if schema.get("type") == "object" and isinstance(value, dict):
        props = schema.get("properties", {})
        out = dict(value)
        for name, sub in props.items():
            if name not in out and "default" in sub:
                out[name] = sub["default"]
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if schema.get("type") == "array" and isinstance(value, list):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def validate(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """OpenAPI checks used by the CRD, then its CEL rules on the (defaulted) object."""
    errors: list[str] = []
    kind = schema["type"]
    python = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
    if (kind in python and not isinstance(value, python[kind])) or (
        kind == "integer" and isinstance(value, bool)
    ):
        return [f"{path}: expected {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: unsupported value {value!r}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: should be >= {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: should be <= {schema['maximum']}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: too short")
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.append(f"{path}: too few properties")
    if kind == "object":
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: Required value")
        for name, item in value.items():
            if name in props:
                errors += validate(props[name], item, f"{path}.{name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate(schema["additionalProperties"], item, f"{path}.{name}")
            elif props:
                errors.append(f"{path}.{name}: unknown field")
    if kind == "array":
        for i, item in enumerate(value):
            errors += validate(schema["items"], item, f"{path}[{i}]")
    if not errors:
        errors += _cel(schema, value, path)
    return errors


def _cel(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    environment = celpy.Environment()
    errors = []
    for rule in schema.get("x-kubernetes-validations", []):
        program = environment.program(environment.compile(rule["rule"]))
        where = path + rule.get("fieldPath", "")
        try:
            result = program.evaluate({"self": celpy.json_to_cel(value)})
        except celpy.CELEvalError:  # the API server counts an evaluation error as a failure
            result = False
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and result):
            errors.append(f"{where}: {rule['message']}")
    return errors


def spec_errors(spec: dict[str, Any]) -> list[str]:
    schema = _schema()["properties"]["spec"]
    return validate(schema, apply_defaults(schema, spec), "spec")


def test_crd_accepts_the_full_example() -> None:
    assert spec_errors(yaml.safe_load(EXAMPLE.read_text())["spec"]) == []


def test_crd_defaults_fill_a_minimal_spec() -> None:
    schema = _schema()["properties"]["spec"]
    minimal = {"members": {"primary": {"podName": "a"}, "secondary": {"podName": "b"}}}
    filled = apply_defaults(schema, {**minimal, "service": "vm"})
    assert filled["heartbeat"] == {
        "intervalMs": 1000,
        "missedBeforeFailover": 30,
        "renewalsPerWindow": 3,
    }
    assert filled["failback"] == {"type": "Manual"}
    assert len(filled["replication"]["directories"]) == 6


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_crd_rejects_each_invalid_example(path: Path) -> None:
    text = path.read_text()
    errors = spec_errors(yaml.safe_load(text)["spec"])
    if "# enforced-by: operator" in text:
        assert errors == [], "documented as operator-only; the CRD should accept it"
        return
    # `# expect: FIELD[: MESSAGE]`: one error names exactly that field (a user reads which
    # field to fix), and says the rule's own message where the example gives it.
    field, _, message = text.split("# expect:")[1].splitlines()[0].strip().partition(": ")
    named = [e.partition(": ")[2] for e in errors if e.partition(": ")[0] == field]
    assert named, f"{path.name}: no error names {field}: {errors}"
    assert any(message in e for e in named), f"{path.name}: {field} without {message!r}: {errors}"


def _undescribed(node: dict[str, Any], path: str) -> list[str]:
    """Every property under `node` without a description (what `kubectl explain` shows as
    `<no description>`), as a dotted path."""
    missing: list[str] = []
    for name, sub in (node.get("properties") or {}).items():
        here = f"{path}.{name}"
        if not sub.get("description"):
            missing.append(here)
        missing += _undescribed(sub, here)
    if isinstance(node.get("items"), dict):
        missing += _undescribed(node["items"], path + "[]")
    if isinstance(node.get("additionalProperties"), dict):
        missing += _undescribed(node["additionalProperties"], path + "{}")
    return missing


@pytest.mark.parametrize("cel", [True, False], ids=["with-cel", "without-cel"])
def test_every_field_of_the_generated_crd_has_a_description(cel: bool) -> None:
    """`kubectl explain failoverpair.spec` (and every field under it) shows a description."""
    document = yaml.safe_load(crd.render(cel=cel))
    schema = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # metadata: the API server forbids anything but its type there (it is ObjectMeta).
    assert _undescribed(schema, "failoverpair") == ["failoverpair.metadata"]
    assert _undescribed({"properties": {"x": {"type": "object"}}}, "t") == ["t.x"], "it can fail"
