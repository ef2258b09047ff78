"""Manual requests written as annotations: `pairwarden.io/request` (failover|failback) and
`pairwarden.io/request-id`. A request is new when its id is new; the engine remembers the last
id it acknowledged (status.lastRequest).

A request written without an id (an external trigger: `kubectl annotate`, a script, an event
manager) must still be a new request each time it is written, so its id comes from the write,
not from the action: the operator stamps `request-id: auto-<resourceVersion>` on the object
(conditional on that resourceVersion, so a later write is never stamped with an older id), and
once the request is acknowledged it removes both annotations (conditional on their values), so
the next identical write is a change the API server records, not a no-op.

A request with an id of its own (`kubectl pairwarden`, the Alertmanager receiver) is removed the
same way once acknowledged: left in place, its id stayed behind, and a trigger written later
without an id (`kubectl annotate ... request=failover --overwrite`) was paired with that old,
acknowledged id and silently ignored. For the same reason an annotation whose id was
acknowledged for another action is a rewrite over a leftover id: a new request, stamped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubernetes_asyncio import client

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.api.models import RequestStatus
from pairwarden.controller.client import JSON_PATCH, MERGE_PATCH, status_of
from pairwarden.engine.types import ManualRequest
from pairwarden.protocol import ANNOTATION_REQUEST, ANNOTATION_REQUEST_ID

AUTO_PREFIX = "auto-"


@dataclass(frozen=True)
class Pending:
    """What the annotations ask for: `request` for the engine, or a stamp to write first."""

    request: ManualRequest | None
    stamp: str | None = None  # the id to stamp before the request may be acted on


def pending(
    annotations: Mapping[str, str],
    resource_version: str | None,
    acknowledged: RequestStatus | None = None,
) -> Pending:
    """The request the annotations carry. Without an id (or with a leftover id, `leftover`),
    nothing is acted on until the id derived from this write (`auto-<resourceVersion>`) is
    stamped on the object: an id kept only in memory would be forgotten by a restarted
    operator, which would act twice."""
    action = annotations.get(ANNOTATION_REQUEST)
    if not action:
        return Pending(None)
    request_id = annotations.get(ANNOTATION_REQUEST_ID)
    if request_id and not leftover(request_id, action, acknowledged):
        return Pending(ManualRequest(id=request_id, action=action))
    if not resource_version:
        return Pending(None)
    return Pending(None, stamp=f"{AUTO_PREFIX}{resource_version}")


def leftover(request_id: str, action: str, acknowledged: RequestStatus | None) -> bool:
    """An id already acknowledged for another action: someone rewrote the action over the id
    an earlier request left behind (before it was removed), which is a new request."""
    return (
        acknowledged is not None and acknowledged.id == request_id and acknowledged.action != action
    )


def consumable(annotations: Mapping[str, str], acknowledged: RequestStatus | None) -> bool:
    """A request that the status says was acknowledged, whoever chose its id: remove it, so
    the same annotation written again is a new request and no id is left behind for a
    trigger written later without one."""
    return (
        acknowledged is not None
        and annotations.get(ANNOTATION_REQUEST) == acknowledged.action
        and annotations.get(ANNOTATION_REQUEST_ID) == acknowledged.id
    )


async def stamp(
    api: client.ApiClient, namespace: str, name: str, resource_version: str, request_id: str
) -> bool:
    """Write the derived id, only if the object is still at the version it was derived from
    (a 409 means another write came first; its own event brings the next look)."""
    patch = {
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": {ANNOTATION_REQUEST_ID: request_id},
        }
    }
    try:
        await client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch, _content_type=MERGE_PATCH
        )
    except client.ApiException as exc:
        if status_of(exc) in (404, 409):
            return False
        raise
    return True


async def consume(
    api: client.ApiClient, namespace: str, name: str, annotations: Mapping[str, str]
) -> None:
    """Remove the acknowledged request, if nobody rewrote it meanwhile (the `test` ops)."""
    ops: list[dict[str, str]] = []
    for key in (ANNOTATION_REQUEST, ANNOTATION_REQUEST_ID):
        path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        ops.append({"op": "test", "path": path, "value": annotations[key]})
        ops.append({"op": "remove", "path": path})
    try:
        await client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, ops, _content_type=JSON_PATCH
        )
    except client.ApiException as exc:
        if status_of(exc) not in (400, 404, 409, 422):  # gone, or rewritten: the new write stands
            raise
