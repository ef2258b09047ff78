"""The callers' Service: its selector names the active member, so a flip is one write."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from pairwarden.api.models import wire_member
from pairwarden.controller.client import MERGE_PATCH, status_of
from pairwarden.kube import absent_as_none
from pairwarden.protocol import LABEL_MEMBER, LABEL_PAIR, Member


def selector_for(pair: str, member: Member | None) -> dict[str, str]:
    """Our two keys of the Service's selector; nobody selects the member "none": no pod."""
    return {LABEL_PAIR: pair, LABEL_MEMBER: wire_member(member)}


async def point_at(
    api: client.ApiClient, namespace: str, name: str, pair: str, member: Member | None
) -> bool:
    """Merge our two keys over the user's selector. No read first: the merge patch is
    idempotent, and the flip is the one write a caller waits for. False when the Service
    does not exist (the engine reports that as a condition; retrying cannot fix it)."""
    body = {"spec": {"selector": selector_for(pair, member)}}
    try:
        await client.CoreV1Api(api).patch_namespaced_service(
            name, namespace, body, _content_type=MERGE_PATCH
        )
    except client.ApiException as error:
        if status_of(error) == 404:
            return False
        raise
    return True


async def read_selector(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """The Service's selector, or None when the Service does not exist."""
    service = await absent_as_none(client.CoreV1Api(api).read_namespaced_service(name, namespace))
    if service is None:
        return None
    return dict((service.spec.selector if service.spec else None) or {})
