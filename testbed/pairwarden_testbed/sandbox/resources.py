"""What the sandbox serves: the built-in resources operators, kubectl and the chart touch (every
kind `charts/pairwarden` renders but the Prometheus Operator's, which a cluster gets from that
operator's CRDs), plus the resources that CustomResourceDefinitions add while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schema import Schema

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUB_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    categories: tuple[str, ...] = ()
    schema: Schema | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    custom: bool = False
    storage_version: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def storage_api_version(self) -> str:
        """Custom resources are stored at the CRD's storage version, whichever one served."""
        if self.custom and self.storage_version:
            return f"{self.group}/{self.storage_version}"
        return self.api_version

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: all served versions of a resource share one store."""
        return (self.group, self.plural)

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _core(plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind.lower(), kind, namespaced, **kw)


BUILTINS: tuple[ResourceType, ...] = (
    _core(
        "namespaces", "Namespace", False, short_names=("ns",), subresources=frozenset({"status"})
    ),
    _core(
        "pods",
        "Pod",
        short_names=("po",),
        subresources=frozenset({"status"}),
        categories=("all",),
    ),
    _core(
        "services",
        "Service",
        short_names=("svc",),
        subresources=frozenset({"status"}),
        categories=("all",),
    ),
    _core("events", "Event", short_names=("ev",)),
    _core("secrets", "Secret"),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _core("endpoints", "Endpoints", short_names=("ep",)),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
    ResourceType(
        "batch",
        "v1",
        "jobs",
        "job",
        "Job",
        True,
        subresources=frozenset({"status"}),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        True,
        short_names=("deploy",),
        subresources=frozenset({"status"}),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        True,
        short_names=("sts",),
        subresources=frozenset({"status"}),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        True,
        short_names=("ds",),
        subresources=frozenset({"status"}),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        True,
        short_names=("rs",),
        subresources=frozenset({"status"}),
        categories=("all",),
    ),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        True,
        short_names=("pdb",),
        subresources=frozenset({"status"}),
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        True,
        short_names=("netpol",),
    ),
    _core("resourcequotas", "ResourceQuota", short_names=("quota",)),
    _core("limitranges", "LimitRange", short_names=("limits",)),
    ResourceType("events.k8s.io", "v1", "events", "event", "Event", True, short_names=("ev",)),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        subresources=frozenset({"status"}),
        categories=("api-extensions",),
    ),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True
    ),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False
    ),
    ResourceType(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        False,
    ),
    # Served (the chart renders its policy where discovery lists them, as on 1.30+) and
    # stored, never enforced: tests/chart evaluates the chart's policy's CEL itself.
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
        "validatingadmissionpolicy",
        "ValidatingAdmissionPolicy",
        False,
        subresources=frozenset({"status"}),
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "validatingadmissionpolicybinding",
        "ValidatingAdmissionPolicyBinding",
        False,
    ),
)


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = spec.get("versions") or []
    storage = next((v["name"] for v in versions if v.get("storage")), "")
    result = []
    for ver in versions:
        if not ver.get("served", True):
            continue
        subs = ver.get("subresources") or {}
        result.append(
            ResourceType(
                group=spec["group"],
                version=ver["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                subresources=frozenset(k for k in ("status", "scale") if k in subs),
                categories=tuple(names.get("categories") or ()),
                schema=(ver.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(ver.get("additionalPrinterColumns") or ()),
                custom=True,
                storage_version=storage,
            )
        )
    return result


class Registry:
    """Resource types by (group, version, plural) and by storage key."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._by_crd: dict[str, list[ResourceType]] = {}
        for rt in BUILTINS:
            self._types[(rt.group, rt.version, rt.plural)] = rt

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def install_crd(self, crd: dict[str, Any]) -> None:
        self.remove_crd(crd["metadata"]["name"])
        types = types_from_crd(crd)
        self._by_crd[crd["metadata"]["name"]] = types
        for rt in types:
            self._types[(rt.group, rt.version, rt.plural)] = rt

    def remove_crd(self, name: str) -> set[tuple[str, str]]:
        """Stop serving a CRD's resources; returns their storage keys."""
        removed = self._by_crd.pop(name, [])
        for rt in removed:
            self._types.pop((rt.group, rt.version, rt.plural), None)
        return {rt.key for rt in removed}

    def groups(self) -> dict[str, list[str]]:
        """Group name → served versions, preferred (storage, else first) version first."""
        result: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = result.setdefault(rt.group, [])
            if rt.version not in versions:
                if rt.version == (rt.storage_version or rt.version):
                    versions.insert(0, rt.version)
                else:
                    versions.append(rt.version)
        return result
