"""The per-pair replication token: a Secret `<pair>-replication-token` with key `token`
holding `<pair>.<random>` (docs/replication.md). Both agents mount it to authenticate the
file API; replication Jobs mount it to call them."""

from __future__ import annotations

import base64
import secrets as random
from typing import Any

from kubernetes_asyncio import client

from pairwarden.controller.client import status_of
from pairwarden.protocol import LABEL_PAIR

TOKEN_KEY = "token"


def token_secret_name(pair: str) -> str:
    return f"{pair}-replication-token"


def new_token(pair: str) -> str:
    return f"{pair}.{random.token_urlsafe(32)}"


def token_of(secret: dict[str, Any]) -> str | None:
    """The token a Secret holds (`data` is base64, as the API returns it)."""
    raw = (secret.get("data") or {}).get(TOKEN_KEY)
    return base64.b64decode(raw).decode() if raw else None


def token_body(pair: str, owner: dict[str, Any] | None) -> dict[str, Any]:
    """The Secret with a fresh token (pure but for the token's randomness): Opaque and
    labelled with its pair, as the chart's admission policy admits from the operator."""
    token = base64.b64encode(new_token(pair).encode()).decode()
    metadata: dict[str, Any] = {"name": token_secret_name(pair), "labels": {LABEL_PAIR: pair}}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": {TOKEN_KEY: token},
    }


async def ensure_token(
    api: client.ApiClient, namespace: str, pair: str, owner: dict[str, Any] | None
) -> str:
    """Create the Secret with a fresh token when missing (never rotate an existing one: the
    agents hold it); return its name. `owner` is the FailoverPair's ownerReference. Created
    blind, never read first (409: it exists), so the operator needs no read of any Secret."""
    body = token_body(pair, owner)
    try:
        await client.CoreV1Api(api).create_namespaced_secret(namespace, body)
    except client.ApiException as exc:
        if status_of(exc) != 409:  # exists (or was created concurrently): that one stays
            raise
    return token_secret_name(pair)
