"""Member pods carry labels naming their pair, member and role (the Service selects on them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from pairwarden.controller.client import MERGE_PATCH
from pairwarden.kube import absent_as_none
from pairwarden.protocol import member_labels

labels_for = member_labels
FROM_CACHE = "0"  # a list's resourceVersion: any version the API server's watch cache holds


@dataclass(frozen=True)
class Resolution:
    """The pod a member names, as read: `problem` says why it names no single running pod
    (the field is named, for the condition and the Event)."""

    name: str | None
    running: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None
    exists: bool = True  # False: the pod named by podName is not there at all


def _running(pod: Any) -> bool:
    phase = pod.status.phase if pod.status else None
    return phase == "Running" and pod.metadata.deletion_timestamp is None


async def resolve_member(
    api: client.ApiClient,
    namespace: str,
    field_path: str,
    pod_name: str | None,
    selector: dict[str, str] | None,
) -> Resolution:
    """Read the member's pod: by name (absent or not running is the pod being gone, which the
    engine fails over on), or the one running pod its selector matches (several is an error
    in the spec, named by `field_path`)."""
    core = client.CoreV1Api(api)
    if pod_name:
        pod = await absent_as_none(core.read_namespaced_pod(pod_name, namespace))
        if pod is None:
            return Resolution(pod_name, exists=False)
        return Resolution(pod_name, _running(pod), dict(pod.metadata.labels or {}))
    if not selector:
        return Resolution(None, problem=f"{field_path}: names no pod")
    pods = (await core.list_namespaced_pod(namespace, label_selector=selector_text(selector))).items
    running = sorted((p for p in pods if _running(p)), key=lambda p: str(p.metadata.name))
    if len(running) > 1:
        names = ", ".join(str(p.metadata.name) for p in running[:5])
        return Resolution(
            None, problem=f"{field_path}.selector matches {len(running)} running pods ({names})"
        )
    if running:
        pod = running[0]
        return Resolution(str(pod.metadata.name), True, dict(pod.metadata.labels or {}))
    return Resolution(None)


async def selected(
    api: client.ApiClient, namespace: str, selector: Mapping[str, str]
) -> tuple[str, ...]:
    """The running pods a Service's selector matches (what kube-proxy would route to).

    Read with resourceVersion "0", from the API server's watch cache: every step of every pair
    makes this list, and without it kube-apiserver reads and decodes every pod of the namespace
    from etcd to filter them (a cost of pairs x pods, quadratic in the pairs of a namespace).
    The cache may lag etcd by a moment; a stale answer is corrected at the next look, and the
    reads that decide a failover (the member pods by name, the Leases) stay fresh."""
    if not selector:
        return ()
    found = await client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=selector_text(selector), resource_version=FROM_CACHE
    )
    return tuple(sorted(str(p.metadata.name) for p in found.items if _running(p)))


def selector_text(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


async def label(
    api: client.ApiClient, namespace: str, pod: str, pair: str, member: str, active: bool
) -> bool:
    """Set the labels when they differ; False when the pod is absent or already labelled."""
    core = client.CoreV1Api(api)
    found = await absent_as_none(core.read_namespaced_pod(pod, namespace))
    if found is None:
        return False
    current = found.metadata.labels or {}
    wanted = labels_for(pair, member, active)
    if all(current.get(k) == v for k, v in wanted.items()):
        return False
    await core.patch_namespaced_pod(
        pod, namespace, {"metadata": {"labels": wanted}}, _content_type=MERGE_PATCH
    )
    return True


async def ip(api: client.ApiClient, namespace: str, pod: str | None) -> str | None:
    """The pod's IP, or None when it has none yet (or is gone)."""
    if not pod:
        return None
    found = await absent_as_none(client.CoreV1Api(api).read_namespaced_pod(pod, namespace))
    if found is None or not found.status or not found.status.pod_ip:
        return None
    return str(found.status.pod_ip)
