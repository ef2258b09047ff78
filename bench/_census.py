"""What a pair costs the API server while nothing happens: the objects of the benchmark's
namespace by kind (how many per pair, bytes per object as JSON on the wire, of which
`metadata.managedFields`), and the watches the API server serves by kind (kube-apiserver's
`apiserver_registered_watchers`; the sandbox has no such gauge).

Read by bench/scale.py once steady state has been measured, printed at once, kept in the run's
JSON. A list is one request per kind; the figures do not depend on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from pairwarden import GROUP, PLURAL, VERSION

# (kind, list path with {ns}): what the operator, the bench and the control plane make per pair
KINDS = (
    ("FailoverPair", f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/{PLURAL}"),
    ("Lease", "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"),
    ("Pod", "/api/v1/namespaces/{ns}/pods"),
    ("Service", "/api/v1/namespaces/{ns}/services"),
    ("Endpoints", "/api/v1/namespaces/{ns}/endpoints"),
    ("EndpointSlice", "/apis/discovery.k8s.io/v1beta1/namespaces/{ns}/endpointslices"),
    ("Event", "/api/v1/namespaces/{ns}/events"),
    ("Secret", "/api/v1/namespaces/{ns}/secrets"),
    ("ServiceAccount", "/api/v1/namespaces/{ns}/serviceaccounts"),
    ("Role", "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
    ("RoleBinding", "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
    ("Job", "/apis/batch/v1/namespaces/{ns}/jobs"),
    ("NetworkPolicy", "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
)


@dataclass
class KindCost:
    objects: int = 0
    bytes: int = 0  # every object's JSON, summed
    managed_fields: int = 0  # of which metadata.managedFields

    def per_object(self) -> tuple[float, float]:
        n = max(1, self.objects)
        return self.bytes / n, self.managed_fields / n


@dataclass
class Census:
    pairs: int
    kinds: dict[str, KindCost] = field(default_factory=dict)
    watchers: dict[str, int] = field(default_factory=dict)  # kind -> watches served

    def per_pair_bytes(self) -> float:
        return sum(k.bytes for k in self.kinds.values()) / max(1, self.pairs)

    def per_pair_managed(self) -> float:
        return sum(k.managed_fields for k in self.kinds.values()) / max(1, self.pairs)

    def as_json(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "kinds": {k: vars(c) for k, c in self.kinds.items()},
            "watchers": self.watchers,
        }


def object_cost(obj: dict[str, Any]) -> tuple[int, int]:
    """(bytes of the object as compact JSON, bytes of its managedFields)."""
    compact = (",", ":")
    whole = len(json.dumps(obj, separators=compact))
    managed = (obj.get("metadata") or {}).get("managedFields")
    return whole, len(json.dumps(managed, separators=compact)) if managed else 0


async def take(admin: aiohttp.ClientSession, namespace: str, pairs: int) -> Census:
    census = Census(pairs)
    for kind, template in KINDS:
        async with admin.get(template.format(ns=namespace)) as response:
            if response.status != 200:  # not served here (the sandbox serves fewer kinds)
                await response.read()
                continue
            items = (await response.json()).get("items") or []
        cost = census.kinds.setdefault(kind, KindCost())
        for item in items:
            whole, managed = object_cost(item)
            cost.objects += 1
            cost.bytes += whole
            cost.managed_fields += managed
    async with admin.get("/metrics") as response:
        text = await response.text() if response.status == 200 else ""
    census.watchers = registered_watchers(text)
    return census


def registered_watchers(metrics: str) -> dict[str, int]:
    """kube-apiserver's `apiserver_registered_watchers{group,kind,version}` by kind (0s left
    out); {} from a server without the gauge."""
    found: dict[str, int] = {}
    for line in metrics.splitlines():
        if not line.startswith("apiserver_registered_watchers{"):
            continue
        labels, _, value = line.rpartition(" ")
        kind = labels.split('kind="', 1)[1].split('"', 1)[0] if 'kind="' in labels else "?"
        if int(float(value)):
            found[kind] = found.get(kind, 0) + int(float(value))
    return found


def print_census(census: Census, backend: str) -> None:
    print(
        f"  per-pair cost on {backend} at {census.pairs} pairs: "
        f"{census.per_pair_bytes() / 1024:.1f} KiB of objects per pair, "
        f"{census.per_pair_managed() / 1024:.1f} KiB of it managedFields"
    )
    for kind, cost in census.kinds.items():
        if not cost.objects:
            continue
        size, managed = cost.per_object()
        print(
            f"    {kind:<15} {cost.objects / census.pairs:5.2f} per pair, "
            f"{size:7.0f} B each ({managed:6.0f} B managedFields)"
        )
    if census.watchers:
        detail = ", ".join(f"{k} {n}" for k, n in sorted(census.watchers.items()))
        print(f"    watches served by kind: {detail}")
