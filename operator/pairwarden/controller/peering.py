"""kopf's peering object must exist before two replicas can see each other: kopf only patches it,
and patching a missing object leaves each replica believing it is alone. Create it at start."""

from __future__ import annotations

import argparse

from kubernetes_asyncio import client

from pairwarden.controller.client import status_of

GROUP, VERSION = "kopf.dev", "v1"


def priority_of(text: str) -> int:
    """A replica's kopf peering priority from `--priority`: a number, or a StatefulSet pod's
    name whose ordinal (`operator-1` -> 1) is the priority. The chart passes the
    `apps.kubernetes.io/pod-index` label's value on Kubernetes 1.28+ and the pod's name before
    (the label does not exist there): both give each replica its own priority, as kopf pauses
    every replica when two share one. Anything else is refused with a clear message."""
    if text.lstrip("-").isdigit():
        return int(text)
    _, dash, ordinal = text.rpartition("-")
    if dash and ordinal.isdigit():
        return int(ordinal)
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a number nor a StatefulSet pod name ending in its ordinal"
    )


def _peering(kind: str, name: str) -> dict[str, object]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}}


async def ensure(
    api: client.ApiClient, name: str, namespaces: list[str], clusterwide: bool
) -> None:
    custom = client.CustomObjectsApi(api)
    try:
        if clusterwide:
            body = _peering("ClusterKopfPeering", name)
            await custom.create_cluster_custom_object(GROUP, VERSION, "clusterkopfpeerings", body)
            return
        for namespace in namespaces:
            body = _peering("KopfPeering", name)
            await custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "kopfpeerings", body
            )
    except client.ApiException as error:
        if status_of(error) not in (409, 404):  # exists already; or the CRD is not installed
            raise
