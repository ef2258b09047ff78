"""One asynchronous API client for the operator's own writes (kopf keeps its own for watching)."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client, config

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


async def connect(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (or $KUBECONFIG)."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except config.ConfigException:
            pass
    configuration = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return client.ApiClient(configuration)


def to_dict(api: client.ApiClient, obj: Any) -> dict[str, Any]:
    """Models from kubernetes_asyncio as the plain dicts the rest of the code speaks."""
    result: dict[str, Any] = api.sanitize_for_serialization(obj)
    return result


def status_of(error: Exception) -> int:
    return int(getattr(error, "status", 0) or 0)
