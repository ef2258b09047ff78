"""The callers' Service: its selector names the active member, so a flip is one write."""

from __future__ import annotations

from kubernetes_asyncio import client

from pairwarden.controller.client import MERGE_PATCH
from pairwarden.protocol import LABEL_MEMBER, LABEL_PAIR

NOBODY = "none"


def selector_for(pair: str, member: str | None) -> dict[str, str]:
    return {LABEL_PAIR: pair, LABEL_MEMBER: member or NOBODY}


async def read_selector(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    service = await client.CoreV1Api(api).read_namespaced_service(name, namespace)
    return dict(service.spec.selector or {})


async def point_at(
    api: client.ApiClient, namespace: str, name: str, pair: str, member: str | None
) -> bool:
    """Merge our two keys over the user's selector; False when it already pointed there."""
    wanted = selector_for(pair, member)
    current = await read_selector(api, namespace, name)
    if all(current.get(k) == v for k, v in wanted.items()):
        return False
    await client.CoreV1Api(api).patch_namespaced_service(
        name, namespace, {"spec": {"selector": wanted}}, _content_type=MERGE_PATCH
    )
    return True
