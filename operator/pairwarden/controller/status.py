"""Status of the FailoverPair, written only through the /status subresource."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.api.models import FailoverPairStatus
from pairwarden.controller.client import MERGE_PATCH


@dataclass(frozen=True)
class Written:
    """A status this process wrote, and the resourceVersion the write returned."""

    status: FailoverPairStatus
    version: str


async def patch(
    api: client.ApiClient, namespace: str, name: str, status: dict[str, Any]
) -> dict[str, Any]:
    """Merge-patch the status; the object as written (its resourceVersion tells a later read
    whether the watch has delivered this write yet)."""
    written = await client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _content_type=MERGE_PATCH
    )
    return written if isinstance(written, dict) else {}


def base(stored: FailoverPairStatus, version: str, written: Written | None) -> FailoverPairStatus:
    """What the server holds, to compare a new status with: `stored` (read from an object at
    resourceVersion `version`), unless the watch has not yet delivered our own last write
    (then that write). Never the engine's memory: after an active Lease write it holds a move
    whose status write is still to come, and a delta taken against it would leave the move
    out of the status (seen: the Lease named the primary while the status said none, for as
    long as no later step ran). A status someone else wrote is stored, so it is overwritten."""
    if written is None:
        return stored
    try:
        behind = int(version) < int(written.version)
    except ValueError:
        behind = False
    return written.status if behind else stored
