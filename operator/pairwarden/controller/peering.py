"""kopf's peering object must exist before two replicas can see each other: kopf only patches it,
and patching a missing object leaves each replica believing it is alone. Create it at start."""

from __future__ import annotations

from kubernetes_asyncio import client

from pairwarden.controller.client import status_of

GROUP, VERSION = "kopf.dev", "v1"


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
