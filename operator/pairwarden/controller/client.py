"""What the operator's adapters share about the API client (made by `pairwarden.kube`; kopf
keeps its own for watching): patch content types, plain dicts, error statuses."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def to_dict(api: client.ApiClient, obj: Any) -> dict[str, Any]:
    """Models from kubernetes_asyncio as the plain dicts the rest of the code speaks."""
    result: dict[str, Any] = api.sanitize_for_serialization(obj)
    return result


def status_of(error: Exception) -> int:
    return int(getattr(error, "status", 0) or 0)
