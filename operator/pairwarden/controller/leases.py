"""Member Leases (created here, renewed by agents) and the active Lease (written only here).

The active Lease is the fencing token: `holderIdentity` names the pod that may answer and
`leaseTransitions` is the epoch. It is written with optimistic concurrency, so two operators
(a peering mishap, a stale replica) can never both move it from the same epoch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from pydantic import ValidationError

from pairwarden.api.models import Transition, wire_member
from pairwarden.controller.client import JSON_PATCH, status_of
from pairwarden.protocol import (
    ANNOTATION_ACTIVE_CONTACT,
    ANNOTATION_ACTIVE_MEMBER,
    ANNOTATION_ACTIVE_MOVE,
    LABEL_MEMBER,
    LABEL_PAIR,
    MEMBERS,
    active_lease_name,
    member_lease_name,
)


def _pointer(annotation: str) -> str:
    """The JSON pointer (RFC 6901) of an annotation."""
    return "/metadata/annotations/" + annotation.replace("~", "~0").replace("/", "~1")


def move_annotation(move: Transition | None) -> str:
    """The active Lease's record of the move that put it there ("" for none)."""
    return move.model_dump_json(by_alias=True, exclude_none=True) if move is not None else ""


def parse_move(annotations: Mapping[str, str] | None) -> Transition | None:
    """The move the active Lease records, or None when there is none or it does not parse
    (anyone may write the Lease: what they write is checked, never trusted to be whole)."""
    text = (annotations or {}).get(ANNOTATION_ACTIVE_MOVE) or ""
    if not text:
        return None
    try:
        return Transition.model_validate_json(text)
    except ValidationError:
        return None


class EpochConflict(Exception):
    """The active Lease moved under us: someone else wrote a newer epoch."""


def _micro_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease(
    name: str, pair: str, member: str, duration: int, owner: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "labels": {LABEL_PAIR: pair, LABEL_MEMBER: member},
            "ownerReferences": [owner],
        },
        "spec": {"leaseDurationSeconds": duration},
    }


async def ensure_leases(
    api: client.ApiClient, namespace: str, pair: str, duration: int, owner: dict[str, Any]
) -> dict[str, Any]:
    """Create the member Leases and the active Lease when missing; return the active Lease."""
    coordination = client.CoordinationV1Api(api)
    for member in MEMBERS:
        body = _lease(member_lease_name(pair, member), pair, member, duration, owner)
        await _create_if_missing(coordination, namespace, body)
    active = _lease(active_lease_name(pair), pair, "active", duration, owner)
    active["metadata"]["labels"].pop(LABEL_MEMBER)
    active["spec"].update(holderIdentity="", leaseTransitions=0)
    # Nobody, as write_active spells it: its patch replaces this annotation.
    active["metadata"]["annotations"] = {ANNOTATION_ACTIVE_MEMBER: wire_member(None)}
    await _create_if_missing(coordination, namespace, active)
    return await read_active(api, namespace, pair)


async def _create_if_missing(
    coordination: client.CoordinationV1Api, namespace: str, body: dict[str, Any]
) -> None:
    try:
        await coordination.create_namespaced_lease(namespace, body)
    except client.ApiException as error:
        if status_of(error) != 409:
            raise


async def read_active(api: client.ApiClient, namespace: str, pair: str) -> dict[str, Any]:
    lease = await client.CoordinationV1Api(api).read_namespaced_lease(
        active_lease_name(pair), namespace
    )
    result: dict[str, Any] = api.sanitize_for_serialization(lease)
    return result


async def read_member(
    api: client.ApiClient, namespace: str, pair: str, member: str
) -> dict[str, Any]:
    """A member's Lease as the API server holds it now (a quorum read): the confirmation of
    a silence the watch shows (reconcile.confirm_silences). Raw JSON, as the watch delivers
    it: the renewTime is compared as the text the agent wrote (the client's models would
    rewrite it as a datetime, and the same renewal would look new)."""
    response = await client.CoordinationV1Api(api).read_namespaced_lease(
        member_lease_name(pair, member), namespace, _preload_content=False
    )
    async with response:
        text = await response.read()
        if not 200 <= response.status <= 299:  # unread, the client raises nothing itself
            reason = text[:200].decode(errors="replace")
            raise client.ApiException(status=response.status, reason=reason)
        result: dict[str, Any] = json.loads(text)
    return result


async def write_active(
    api: client.ApiClient,
    namespace: str,
    pair: str,
    *,
    holder: str,
    contact: str = "",
    member: str,
    epoch: int,
    expected_epoch: int,
    now: datetime,
    move: Transition | None = None,
) -> dict[str, Any]:
    """Hand the active Lease to `holder` at `epoch`, only from `expected_epoch`: one JSON patch
    whose `test` is the optimistic check, since this write starts every flip. When the test or
    a path fails (the Lease is already at `epoch` after an interrupted move, or it predates the
    member annotation), read it and replace it at its resourceVersion. `move` (the transition
    this write makes, None for none) rides in the same request, so the move outlives an
    operator stopped before its status write. Returns the Lease as written (its
    resourceVersion orders it against the watch's events)."""
    coordination = client.CoordinationV1Api(api)
    stamp = _micro_time(now)
    record = move_annotation(move)
    ops = [
        {"op": "test", "path": "/spec/leaseTransitions", "value": expected_epoch},
        {"op": "add", "path": _pointer(ANNOTATION_ACTIVE_MEMBER), "value": member},
        # Where callers reach the holder (its own report), in the same write: the other member
        # redirects callers there and must never read one holder with another's contact.
        {"op": "add", "path": _pointer(ANNOTATION_ACTIVE_CONTACT), "value": contact},
        {"op": "add", "path": _pointer(ANNOTATION_ACTIVE_MOVE), "value": record},
        *(
            {"op": "add", "path": f"/spec/{key}", "value": value}
            for key, value in (
                ("holderIdentity", holder),
                ("leaseTransitions", epoch),
                ("acquireTime", stamp),
                ("renewTime", stamp),
            )
        ),
    ]
    try:
        written = await coordination.patch_namespaced_lease(
            active_lease_name(pair), namespace, ops, _content_type=JSON_PATCH
        )
        return _plain(api, written)
    except client.ApiException as error:
        if status_of(error) not in (400, 422):  # 422: a failed test (400 on older servers)
            raise
    current = await read_active(api, namespace, pair)
    current["metadata"].setdefault("annotations", {})[ANNOTATION_ACTIVE_CONTACT] = contact
    spec = current.setdefault("spec", {})
    if int(spec.get("leaseTransitions") or 0) not in (expected_epoch, epoch):
        raise EpochConflict(f"active Lease is at epoch {spec.get('leaseTransitions')}")
    annotations = current["metadata"].setdefault("annotations", {})
    annotations[ANNOTATION_ACTIVE_MEMBER] = member
    annotations[ANNOTATION_ACTIVE_MOVE] = record
    spec.update(holderIdentity=holder, leaseTransitions=epoch, acquireTime=stamp, renewTime=stamp)
    try:
        replaced = await coordination.replace_namespaced_lease(
            active_lease_name(pair), namespace, current
        )
    except client.ApiException as error:
        if status_of(error) == 409:
            raise EpochConflict("active Lease changed while writing it") from error
        raise
    return _plain(api, replaced)


def _plain(api: client.ApiClient, lease: Any) -> dict[str, Any]:
    if isinstance(lease, dict):
        return lease
    result: dict[str, Any] = api.sanitize_for_serialization(lease)
    return result
