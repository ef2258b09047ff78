"""Whether the API server serves FailoverPairs, asked through discovery.

kopf's scanning is off (controller/handlers.py): it would list and watch namespaces and watch
every CRD, cluster-scoped reads that a namespaced operator is not granted (the chart gives it
no ClusterRole). kopf still resolves the resources it serves through discovery, once, when it
starts; a CRD created a moment after the operator would then never be served. So the operator
asks discovery (open to every account: `system:discovery`) before kopf's scan, and its start
waits while the FailoverPair CRD is not served yet."""

from __future__ import annotations

from kubernetes_asyncio import client

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.controller.client import status_of


async def serves_failoverpairs(api: client.ApiClient) -> bool:
    try:
        found = await client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
    except client.ApiException as error:
        if status_of(error) == 404:  # the group/version is not served (yet)
            return False
        raise
    return any(resource.name == PLURAL for resource in found.resources or [])
