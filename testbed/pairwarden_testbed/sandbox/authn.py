"""Who is calling: the bearer token of a request, checked as kube-apiserver 1.20 checks it with
the flags hack/control-plane.sh gives it (`--token-auth-file`, ServiceAccount tokens,
anonymous requests allowed).

- Static tokens (the rig's own kubeconfigs, `kubeconfig_for(user)`): random per server, as in a
  token file; each names a user in `system:masters` (the real server's superuser group).
- ServiceAccount tokens: the token controller of 1.20 (accounts.py) writes one Secret of type
  `kubernetes.io/service-account-token` per ServiceAccount; a token is valid while that Secret
  holds it and the ServiceAccount it names exists with the uid it names, as the legacy token
  authenticator checks (`--service-account-lookup`, on by default).
- No token: `system:anonymous` in `system:unauthenticated`, which RBAC then refuses almost
  everything. A token that matches nothing: 401, whatever the request.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .store import Store

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
SA_TOKEN_PREFIX = "sandbox-sa."


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


def unauthorized() -> ApiError:
    """What kube-apiserver answers a token it does not know (and nothing more)."""
    return ApiError(401, "Unauthorized")


def serviceaccount_user(namespace: str, name: str) -> User:
    """The user a ServiceAccount's token authenticates as, with the groups 1.20 gives it."""
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
    )


def new_serviceaccount_token(namespace: str, account: str, uid: str, secret: str) -> str:
    """An opaque token naming what the authenticator checks (as a legacy JWT's claims do)."""
    claims = {"ns": namespace, "sa": account, "uid": uid, "secret": secret}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{SA_TOKEN_PREFIX}{payload}.{secrets.token_hex(16)}"


def token_claims(token: str) -> dict[str, str] | None:
    """The claims of a token `new_serviceaccount_token` wrote, unchecked; None if not one."""
    if not token.startswith(SA_TOKEN_PREFIX):
        return None
    payload = token[len(SA_TOKEN_PREFIX) :].split(".", 1)[0]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    keys = ("ns", "sa", "uid", "secret")
    if not isinstance(claims, dict) or not all(isinstance(claims.get(k), str) for k in keys):
        return None
    return {k: claims[k] for k in keys}


def _secret_token(secret: dict[str, Any]) -> str | None:
    data = (secret.get("data") or {}).get("token")
    try:
        return base64.b64decode(data).decode() if isinstance(data, str) else None
    except (ValueError, binascii.Error):
        return None


class Authenticator:
    """Maps an `Authorization` header to a User, or raises 401."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._static: dict[str, User] = {}

    def static_token(self, user: str) -> str:
        """The token of a rig identity (a superuser), made on first use."""
        for token, known in self._static.items():
            if known.name == user:
                return token
        token = secrets.token_hex(16)
        self._static[token] = User(user, (MASTERS, AUTHENTICATED))
        return token

    def authenticate(self, authorization: str | None) -> User:
        """A header that carries no bearer token is anonymous, as the real bearer
        authenticator passes it on; a bearer token nobody issued is 401."""
        parts = (authorization or "").strip().split(" ")
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
            return ANONYMOUS
        token = parts[1]
        if token in self._static:
            return self._static[token]
        user = self._serviceaccount(token)
        if user is None:
            raise unauthorized()
        return user

    def _serviceaccount(self, token: str) -> User | None:
        claims = token_claims(token)
        if claims is None:
            return None
        ns = claims["ns"]
        secret = self._store.get(("", "secrets"), ns, claims["secret"])
        account = self._store.get(("", "serviceaccounts"), ns, claims["sa"])
        if secret is None or account is None or _secret_token(secret) != token:
            return None
        if account["metadata"].get("uid") != claims["uid"]:
            return None  # deleted and made again: the old account's tokens die with it
        annotations = secret["metadata"].get("annotations") or {}
        if annotations.get(SA_NAME_ANNOTATION) != claims["sa"]:
            return None
        return serviceaccount_user(ns, claims["sa"])
