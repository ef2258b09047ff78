"""Discovery documents (`/api`, `/apis`, resource lists), built from the live registry so a
new CRD shows up at once. Served as the legacy JSON kinds; clients fall back to them when
the aggregated form is not offered."""

from __future__ import annotations

from typing import Any

from .resources import ALL_VERBS, SUB_VERBS, Registry, ResourceType

VERSION_INFO = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-pairwarden-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group(n, v) for n, v in sorted(registry.groups().items()) if n]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = registry.groups().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def _entry(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(ALL_VERBS),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    return entry


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = sorted(
        (t for t in registry.all() if t.group == group and t.version == version),
        key=lambda t: t.plural,
    )
    if not types:
        return None
    resources = []
    for rt in types:
        resources.append(_entry(rt))
        for sub in sorted(rt.subresources):
            resources.append(
                {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind if sub == "status" else "Scale",
                    "verbs": list(SUB_VERBS),
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": types[0].api_version,
        "resources": resources,
    }


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root(registry: Registry) -> dict[str, Any]:
    """The OpenAPI v3 index. kubectl reads it to learn that the server validates fields
    itself (`fieldValidation`), and then skips its client-side schema download."""
    gvs = {(t.group, t.version) for t in registry.all()}
    return {
        "paths": {
            _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}"}
            for g, v in sorted(gvs)
        }
    }


def schema_name(rt: ResourceType) -> str:
    """The component name the real server uses: reversed group, version, kind."""
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{rt.version}.{rt.kind}"


_TYPE_FIELDS: dict[str, Any] = {
    "apiVersion": {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of "
        "an object.",
    },
    "kind": {
        "type": "string",
        "description": "Kind is a string value representing the REST resource this object "
        "represents.",
    },
    "metadata": {
        "type": "object",
        "description": "Standard object's metadata (name, namespace, labels, annotations).",
    },
}


def kind_schema(rt: ResourceType) -> dict[str, Any]:
    """The schema `kubectl explain` reads: a CRD's own, with the type fields the real server
    adds; for a built-in only its top level (the sandbox keeps no built-in schemas)."""
    if rt.schema is not None:
        schema = dict(rt.schema)
        schema["properties"] = {**_TYPE_FIELDS, **(schema.get("properties") or {})}
    else:
        schema = {
            "type": "object",
            "description": f"{rt.kind} ({rt.api_version}). The sandbox API server keeps no "
            "schema for built-in kinds: see the Kubernetes API reference for its fields.",
            "properties": {
                **_TYPE_FIELDS,
                "spec": {"type": "object", "description": f"Desired state of the {rt.kind}."},
                "status": {"type": "object", "description": f"Observed state of the {rt.kind}."},
            },
        }
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    return {**schema, "x-kubernetes-group-version-kind": [gvk]}


def openapi_v3_group_version(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """A per-group-version document: one PATCH operation per kind, tagged with its
    group-version-kind and the `fieldValidation` query parameter (kubectl then validates on
    the server), and each kind's schema for `kubectl explain`."""
    types = [t for t in registry.all() if t.group == group and t.version == version]
    if not types:
        return None
    param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
    paths = {}
    for rt in types:
        ns = "namespaces/{namespace}/" if rt.namespaced else ""
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        paths[f"/{_gv_path(group, version)}/{ns}{rt.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "parameters": [param],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION_INFO["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {schema_name(rt): kind_schema(rt) for rt in types}},
    }
