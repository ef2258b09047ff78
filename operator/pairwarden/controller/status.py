"""Status of the FailoverPair, written only through the /status subresource."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.controller.client import MERGE_PATCH


async def patch(
    api: client.ApiClient, namespace: str, name: str, status: dict[str, Any]
) -> dict[str, Any]:
    """Merge-patch the status; the object as written (its resourceVersion tells a later read
    whether the watch has delivered this write yet)."""
    written = await client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _content_type=MERGE_PATCH
    )
    return written if isinstance(written, dict) else {}


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Only the top-level status fields that differ: merge-patching them keeps writes small."""
    return {k: v for k, v in after.items() if before.get(k) != v}
