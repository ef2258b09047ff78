"""Label and field selectors, parsed once per request and matched per object.

Parse errors raise 400 BadRequest like the real server, so a typo in a selector never
silently matches everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import bad_request

_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_SET_OP = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the key, as in Kubernetes.
        return not present or labels[self.key] not in self.values


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    if depth != 0:
        raise bad_request(f"unable to parse requirement: unbalanced parentheses in {text!r}")
    return parts


def _check_key(key: str, raw: str) -> str:
    if not _KEY.match(key):
        raise bad_request(
            f"unable to parse requirement: {raw!r}: invalid label key {key!r}: name part must "
            "consist of alphanumeric characters, '-', '_' or '.'"
        )
    return key


def _check_value(value: str, raw: str) -> str:
    if not _VALUE.match(value) or len(value) > 63:
        raise bad_request(
            f"unable to parse requirement: {raw!r}: invalid label value: {value!r}: a valid "
            "label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'"
        )
    return value


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    if not text or not text.strip():
        return ()
    reqs: list[Requirement] = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            raise bad_request(f"unable to parse requirement: found '', in selector {text!r}")
        m = _SET_OP.match(part)
        if m:
            key, op, inner = m.group(1), m.group(2), m.group(3)
            values = [v.strip() for v in inner.split(",")]
            if values == [""]:
                raise bad_request(f"unable to parse requirement: {part!r}: values set is empty")
            vals = frozenset(_check_value(v, part) for v in values)
            reqs.append(Requirement(_check_key(key, part), op, vals))
            continue
        for op in ("!=", "==", "="):
            if op in part:
                key, _, value = part.partition(op)
                key, value = key.strip(), value.strip()
                norm = "!=" if op == "!=" else "="
                reqs.append(
                    Requirement(_check_key(key, part), norm, frozenset({_check_value(value, part)}))
                )
                break
        else:
            if part.startswith("!"):
                reqs.append(Requirement(_check_key(part[1:].strip(), part), "!exists"))
            elif " " in part or "(" in part or ")" in part:
                raise bad_request(
                    f"unable to parse requirement: found unexpected token in {part!r}, "
                    "expected: '=', '!=', '==', 'in', notin'"
                )
            else:
                reqs.append(Requirement(_check_key(part, part), "exists"))
    return tuple(reqs)


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        cur: Any = obj
        for step in self.path:
            cur = cur.get(step) if isinstance(cur, dict) else None
        text = _field_text(cur)
        return (text == self.value) == self.equal


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(text: str | None) -> tuple[FieldRequirement, ...]:
    if not text or not text.strip():
        return ()
    reqs: list[FieldRequirement] = []
    for raw in text.split(","):
        part = raw.strip()
        for op in ("!=", "==", "="):
            if op in part:
                key, _, value = part.partition(op)
                key = key.strip()
                if not key or not re.fullmatch(r"[A-Za-z0-9_.\-]+", key):
                    raise bad_request(f"invalid field selector: {part!r}")
                reqs.append(FieldRequirement(tuple(key.split(".")), op != "!=", value.strip()))
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
    return tuple(reqs)


@dataclass(frozen=True)
class Selector:
    """What a list or watch keeps: namespace (None = all), labels and fields."""

    namespace: str | None = None
    labels: tuple[Requirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.labels:
            labels = meta.get("labels") or {}
            if not all(r.matches(labels) for r in self.labels):
                return False
        return all(f.matches(obj) for f in self.fields)

    @property
    def exact_name(self) -> str | None:
        """The name if the field selector pins one (kubectl's `get NAME --watch`)."""
        for f in self.fields:
            if f.equal and f.path == ("metadata", "name"):
                return f.value
        return None


def parse_selector(
    namespace: str | None, label_selector: str | None, field_selector: str | None
) -> Selector:
    return Selector(
        namespace, parse_label_selector(label_selector), parse_field_selector(field_selector)
    )


# Field labels the real API server supports beyond metadata.name and metadata.namespace
# (each kind's field label conversion in kube-apiserver); any other is a 400.
_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)
FIELD_LABELS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        }
    ),
    ("", "events"): _EVENT_FIELDS,
    ("events.k8s.io", "events"): _EVENT_FIELDS,
    ("", "secrets"): frozenset({"type"}),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "nodes"): frozenset({"spec.unschedulable"}),
    ("", "replicationcontrollers"): frozenset({"status.replicas"}),
    ("apps", "replicasets"): frozenset({"status.replicas"}),
    ("batch", "jobs"): frozenset({"status.successful"}),
    ("certificates.k8s.io", "certificatesigningrequests"): frozenset({"spec.signerName"}),
}
COMMON_FIELD_LABELS = frozenset({"metadata.name", "metadata.namespace"})


def check_field_labels(group: str, plural: str, selector: Selector) -> None:
    """A field selector on a label the real server does not support for this resource is
    refused as it refuses it, not silently matched against the object."""
    own = FIELD_LABELS.get((group, plural))
    allowed = COMMON_FIELD_LABELS | (own or frozenset())
    for field in selector.fields:
        label = ".".join(field.path)
        if label in allowed:
            continue
        if own is None:  # the generic registry's wording (Leases, ConfigMaps, custom resources)
            only = '"metadata.name", "metadata.namespace"'
            raise bad_request(f'"{label}" is not a known field selector: only {only}')
        raise bad_request(f"field label not supported: {label}")
