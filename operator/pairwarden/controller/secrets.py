"""The per-pair secrets, created blind by the operator and mounted by pods (never read back):

- the replication token, Secret `<pair>-replication-token`, key `token`, `<pair>.<random>`
  (docs/replication.md). Both agents mount it to authenticate the file API; replication Jobs
  mount it to call them.
- the peer key, Secret `<pair>-peer-key`, key `key`: the HMAC key of the failsafe link between
  the two agents (docs/protocol.md). Only the member pods mount it: a replication Job, which
  holds the token, cannot forge a peer message."""

from __future__ import annotations

import base64
import secrets as random
from typing import Any

from kubernetes_asyncio import client

from pairwarden.controller.client import status_of
from pairwarden.protocol import LABEL_PAIR

TOKEN_KEY = "token"
PEER_KEY = "key"


def peer_key_secret_name(pair: str) -> str:
    return f"{pair}-peer-key"


def token_secret_name(pair: str) -> str:
    return f"{pair}-replication-token"


def new_token(pair: str) -> str:
    return f"{pair}.{random.token_urlsafe(32)}"


def token_of(secret: dict[str, Any]) -> str | None:
    """The token a Secret holds (`data` is base64, as the API returns it)."""
    raw = (secret.get("data") or {}).get(TOKEN_KEY)
    return base64.b64decode(raw).decode() if raw else None


def secret_body(
    pair: str, name: str, values: dict[str, str], owner: dict[str, Any] | None
) -> dict[str, Any]:
    """A pair's Secret holding `values` (pure): Opaque and labelled with its pair, as the
    chart's admission policy admits from the operator. `owner`: the FailoverPair's
    ownerReference."""
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    metadata: dict[str, Any] = {"name": name, "labels": {LABEL_PAIR: pair}}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": data,
    }


def token_body(pair: str, owner: dict[str, Any] | None) -> dict[str, Any]:
    """The replication token's Secret with a fresh token."""
    return secret_body(pair, token_secret_name(pair), {TOKEN_KEY: new_token(pair)}, owner)


def peer_key_body(pair: str, owner: dict[str, Any] | None) -> dict[str, Any]:
    """The peer key's Secret with a fresh key."""
    return secret_body(
        pair, peer_key_secret_name(pair), {PEER_KEY: random.token_urlsafe(32)}, owner
    )


async def ensure_token(
    api: client.ApiClient, namespace: str, pair: str, owner: dict[str, Any] | None
) -> str:
    """The replication token's Secret, created when missing; its name."""
    await _create(api, namespace, token_body(pair, owner))
    return token_secret_name(pair)


async def ensure_peer_key(
    api: client.ApiClient, namespace: str, pair: str, owner: dict[str, Any] | None
) -> str:
    """The peer key's Secret, created when missing (before any outage: both agents must hold
    it when the API server goes away); its name."""
    await _create(api, namespace, peer_key_body(pair, owner))
    return peer_key_secret_name(pair)


async def _create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    """Create the Secret when missing (never rotate an existing one: the pods hold it).
    Created blind, never read first (409: it exists), so the operator needs no read of any
    Secret."""
    try:
        await client.CoreV1Api(api).create_namespaced_secret(namespace, body)
    except client.ApiException as exc:
        if status_of(exc) != 409:  # exists (or was created concurrently): that one stays
            raise
