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


async def ensure_token(
    api: client.ApiClient, namespace: str, pair: str, owner: dict[str, Any] | None
) -> str:
    """The replication token's Secret, created when missing; its name."""
    name = token_secret_name(pair)
    await _ensure(api, namespace, pair, name, {TOKEN_KEY: new_token(pair)}, owner)
    return name


async def ensure_peer_key(
    api: client.ApiClient, namespace: str, pair: str, owner: dict[str, Any] | None
) -> str:
    """The peer key's Secret, created when missing (before any outage: both agents must hold
    it when the API server goes away); its name."""
    name = peer_key_secret_name(pair)
    await _ensure(api, namespace, pair, name, {PEER_KEY: random.token_urlsafe(32)}, owner)
    return name


async def _ensure(
    api: client.ApiClient,
    namespace: str,
    pair: str,
    name: str,
    values: dict[str, str],
    owner: dict[str, Any] | None,
) -> None:
    """Create the Secret with fresh values when missing (never rotate an existing one: the
    pods hold it). `owner` is the FailoverPair's ownerReference. Created blind, never read
    first (409: it exists), so the operator needs no read of any Secret."""
    core = client.CoreV1Api(api)
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    metadata: dict[str, Any] = {"name": name, "labels": {LABEL_PAIR: pair}}
    if owner:
        metadata["ownerReferences"] = [owner]
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": data,
    }
    try:
        await core.create_namespaced_secret(namespace, body)
    except client.ApiException as exc:
        if status_of(exc) != 409:  # exists (or was created concurrently): that one stays
            raise
