"""The callers' Service: its selector names the active member, so a flip is one write."""

from __future__ import annotations

from kubernetes_asyncio import client

from pairwarden.controller.client import MERGE_PATCH
from pairwarden.protocol import LABEL_MEMBER, LABEL_PAIR

NOBODY = "none"


def selector_for(pair: str, member: str | None) -> dict[str, str]:
    return {LABEL_PAIR: pair, LABEL_MEMBER: member or NOBODY}


async def point_at(
    api: client.ApiClient, namespace: str, name: str, pair: str, member: str | None
) -> None:
    """Merge our two keys over the user's selector. No read first: the merge patch is
    idempotent, and the flip is the one write a caller waits for."""
    await client.CoreV1Api(api).patch_namespaced_service(
        name, namespace, {"spec": {"selector": selector_for(pair, member)}},
        _content_type=MERGE_PATCH,
    )  # fmt: skip
