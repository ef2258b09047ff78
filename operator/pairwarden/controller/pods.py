"""Member pods carry labels naming their pair, member and role (the Service selects on them)."""

from __future__ import annotations

from kubernetes_asyncio import client

from pairwarden.controller.client import MERGE_PATCH, status_of
from pairwarden.protocol import LABEL_MEMBER, LABEL_PAIR, LABEL_ROLE, ROLE_ACTIVE, ROLE_STANDBY


def labels_for(pair: str, member: str, active: bool) -> dict[str, str]:
    return {
        LABEL_PAIR: pair,
        LABEL_MEMBER: member,
        LABEL_ROLE: ROLE_ACTIVE if active else ROLE_STANDBY,
    }


async def label(
    api: client.ApiClient, namespace: str, pod: str, pair: str, member: str, active: bool
) -> bool:
    """Set the labels when they differ; False when the pod is absent or already labelled."""
    core = client.CoreV1Api(api)
    try:
        current = (await core.read_namespaced_pod(pod, namespace)).metadata.labels or {}
    except client.ApiException as error:
        if status_of(error) == 404:
            return False
        raise
    wanted = labels_for(pair, member, active)
    if all(current.get(k) == v for k, v in wanted.items()):
        return False
    await core.patch_namespaced_pod(
        pod, namespace, {"metadata": {"labels": wanted}}, _content_type=MERGE_PATCH
    )
    return True


async def resolve(
    api: client.ApiClient, namespace: str, pod_name: str | None, selector: dict[str, str] | None
) -> str | None:
    """The pod a member names: by name, or the one running pod its label selector matches."""
    if pod_name:
        return pod_name
    if not selector:
        return None
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = await client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=text)
    running = sorted(
        (p for p in pods.items if p.metadata.deletion_timestamp is None),
        key=lambda p: (p.status.phase != "Running", p.metadata.name),
    )
    return str(running[0].metadata.name) if running else None


async def ip(api: client.ApiClient, namespace: str, pod: str | None) -> str | None:
    """The pod's IP, or None when it has none yet (or is gone)."""
    if not pod:
        return None
    try:
        found = await client.CoreV1Api(api).read_namespaced_pod(pod, namespace)
    except client.ApiException as error:
        if status_of(error) == 404:
            return None
        raise
    return str(found.status.pod_ip) if found.status and found.status.pod_ip else None
