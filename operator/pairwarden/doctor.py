"""`kubectl pairwarden doctor PAIR`: every misconfiguration the pair's status and the cluster
show, each with its fix. Pure (`findings`) but for reading who watches the namespace.

Who watches a namespace: the operator writes kopf's peering object at start and renews its
entry in it (`status.<peer>.lastseen` + `lifetime`, kopf's keep-alive): a ClusterKopfPeering
when it watches every namespace, a KopfPeering in each namespace it watches (the chart's
`operator.watch.*`). A pair with no status whose namespace no live peering entry covers is
one no operator reconciles. An operator run with `--standalone` writes no peering object:
then only the missing status speaks, and the finding says both possibilities.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pairwarden.protocol import parse_time

PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"
DEFAULT_PEERING = "pairwarden"  # the chart's operator.peering.name and the operator's default
# A pair younger than this may simply not have been looked at yet (the operator's first step
# follows its creation within a second or two; more under load).
FIRST_LOOK_SECONDS = 30.0
# The plugin's clock and the operator's may differ a little: a peer seen this much after its
# deadline still counts as alive.
CLOCK_SLACK = timedelta(seconds=10)


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or waiting) and what to do about it."""

    problem: str
    fix: str


def live_peers(peering_status: Mapping[str, Any] | None, now: datetime) -> int:
    """Entries of a kopf peering object whose keep-alive has not expired (pure)."""
    alive = 0
    for entry in (peering_status or {}).values():
        if not isinstance(entry, Mapping):
            continue
        seen = parse_time(str(entry.get("lastseen") or ""))
        lifetime = entry.get("lifetime")
        if seen is None or not isinstance(lifetime, int | float):
            continue
        if seen + timedelta(seconds=lifetime) + CLOCK_SLACK >= now:
            alive += 1
    return alive


def watched(peerings: Iterable[Mapping[str, Any]], name: str, now: datetime) -> bool:
    """Whether a live operator (peering `name`) covers the namespace, from the
    ClusterKopfPeerings and the namespace's KopfPeerings as listed (pure)."""
    return any(
        live_peers(p.get("status"), now) > 0
        for p in peerings
        if (p.get("metadata") or {}).get("name") == name
    )


def read_watched(api: client.ApiClient, namespace: str, name: str, now: datetime) -> bool | None:
    """`watched` from the cluster; None when the peerings cannot be read (no permission, or
    kopf's peering CRDs are absent: no operator with peering ever ran here)."""
    custom = client.CustomObjectsApi(api)
    try:
        cluster = custom.list_cluster_custom_object(
            PEERING_GROUP, PEERING_VERSION, "clusterkopfpeerings"
        )
        local = custom.list_namespaced_custom_object(
            PEERING_GROUP, PEERING_VERSION, namespace, "kopfpeerings"
        )
    except ApiException:
        return None
    return watched([*cluster.get("items", []), *local.get("items", [])], name, now)


def _conditions(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in status.get("conditions") or []}


def _unwatched(namespace: str, age: float | None, covered: bool | None) -> list[Finding]:
    """A pair without status: nobody reconciles it (yet)."""
    if age is not None and age < FIRST_LOOK_SECONDS:
        return [
            Finding(
                f"no status yet ({age:.0f}s old)",
                "wait a moment: the operator writes one within seconds of its first look",
            )
        ]
    settings = (
        "helm upgrade <release> charts/pairwarden --reuse-values --set "
        f"operator.watch.allNamespaces=true (or add {namespace} to operator.watch.namespaces), "
        f"and add {namespace} to memberNamespaces (its replication ServiceAccount)"
    )
    if covered is False:
        return [
            Finding(
                f"no operator watches namespace {namespace}: the pair has no status and no "
                f"live pairwarden operator's peering covers {namespace}",
                f"see memberNamespaces / watchNamespaces: {settings}; or start the operator "
                "(kubectl get pods -A -l app.kubernetes.io/component=operator)",
            )
        ]
    if covered is True:
        return [
            Finding(
                f"an operator watches namespace {namespace} but has written no status",
                "read its log (kubectl logs -l app.kubernetes.io/component=operator -A): "
                "it may lack permission in this namespace (a Role per watched namespace)",
            )
        ]
    return [
        Finding(
            "the pair has no status: no operator has reconciled it (kopf's peering objects "
            "could not be read to tell whether one watches this namespace)",
            f"check that the operator runs and watches {namespace} (memberNamespaces / "
            f"watchNamespaces): {settings}",
        )
    ]


def _member_fix(reason: str) -> str:
    if reason == "PodMissing":
        return (
            "create the member pods (kubectl get pods -n NAMESPACE), or correct "
            "spec.members.<member>.podName / .selector to name a running pod in the pair's "
            "namespace (a pod being replaced clears this by itself)"
        )
    return "make spec.members.<member> name exactly one running pod of its own"


def _ready_fix(reason: str, service: str) -> str | None:
    fixes = {
        "ServiceMissing": f"create the Service {service} in the pair's namespace, or correct "
        "spec.service to name the callers' Service",
        "SeveralPodsSelected": f"the Service {service} must select the active member alone: "
        "pairwarden sets its selector; remove labels other pods share",
        "NoHolder": "no member can take the role: see MembersResolved and the member rows of "
        "`kubectl pairwarden status`",
    }
    return fixes.get(reason)


def findings(
    pair: Mapping[str, Any], covered: bool | None, now: datetime
) -> list[Finding]:  # fmt: skip
    """Every finding for one pair, most basic first (pure). `covered`: whether a live
    operator watches its namespace (None: unknown)."""
    meta, spec = pair.get("metadata") or {}, pair.get("spec") or {}
    status: Mapping[str, Any] = pair.get("status") or {}
    namespace = str(meta.get("namespace") or "")
    created = parse_time(str(meta.get("creationTimestamp") or ""))
    age = (now - created).total_seconds() if created else None
    if not status.get("conditions"):
        return _unwatched(namespace, age, covered)
    found: list[Finding] = []
    conditions = _conditions(status)
    spec_valid = conditions.get("SpecValid")
    if spec_valid is not None and spec_valid.get("status") == "False":
        found.append(
            Finding(
                f"the spec is invalid: {spec_valid.get('message')}",
                "kubectl edit fp: correct the field named (docs/api.md lists every field)",
            )
        )
    members = conditions.get("MembersResolved")
    if members is not None and members.get("status") == "False":
        reason = str(members.get("reason"))
        found.append(Finding(f"members: {members.get('message')}", _member_fix(reason)))
    ready = conditions.get("Ready")
    if ready is not None and ready.get("status") == "False":
        fix = _ready_fix(str(ready.get("reason")), str(spec.get("service") or "?"))
        if fix is not None:
            found.append(Finding(f"not ready: {ready.get('message')}", fix))
    if spec.get("paused"):
        found.append(
            Finding(
                "manual mode: no automatic failover, no replication", "kubectl pairwarden resume"
            )
        )
    for kind, wrong, fix in (
        ("LicensingOK", "False", "let the secondary reach the primary (licensing clocks)"),
        ("InSync", "False", "make the per-member settings named the same on both members"),
        ("FlappingHeld", "True", "discretionary moves resume when the damping period ends"),
        ("ReplicationHealthy", "False", "see the message and the replication Job's pod log"),
        ("FailbackScheduled", "True", "kubectl pairwarden failback moves the role back now"),
    ):
        condition = conditions.get(kind)
        if condition is not None and condition.get("status") == wrong:
            found.append(Finding(f"{kind}: {condition.get('message')}", fix))
    return found


def render(pair: Mapping[str, Any], found: list[Finding]) -> str:
    """The doctor's report as text (pure)."""
    meta = pair.get("metadata") or {}
    where = f"FailoverPair {meta.get('namespace')}/{meta.get('name')}"
    if not found:
        return f"{where}: no findings"
    lines = [f"{where}: {len(found)} finding{'s' if len(found) > 1 else ''}"]
    for item in found:
        lines += [f"- {item.problem}", f"  fix: {item.fix}"]
    return "\n".join(lines)
