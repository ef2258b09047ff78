"""ServiceAccounts as kube-apiserver and kube-controller-manager 1.20 keep them, and the RBAC
policy the real server bootstraps:

- every namespace gets a `default` ServiceAccount (the serviceaccount controller);
- every ServiceAccount gets a token Secret `<name>-token-<5>` of type
  `kubernetes.io/service-account-token`, listed in its `secrets` (the token controller; here at
  once, in the same request, so a pod never waits for it); deleting the account deletes it;
- a new Pod runs as `default` unless it names an account, is refused when that account does
  not exist, and gets its token Secret mounted at SA_MOUNT in every container that mounts
  nothing there, unless the pod or the account turns automounting off (the ServiceAccount
  admission plugin);
- the bootstrap ClusterRoles and bindings the rig relies on: `cluster-admin` (bound to
  `system:masters`), `system:discovery` and `system:public-info-viewer` (what an anonymous or
  any authenticated caller may GET), `admin`/`edit`/`view` are left out (aggregated roles).
"""

from __future__ import annotations

import base64
import random
from typing import Any

from .authn import SA_NAME_ANNOTATION, SA_TOKEN_TYPE, SA_UID_ANNOTATION, new_serviceaccount_token
from .authz import RBAC_GROUP
from .errors import ApiError

Obj = dict[str, Any]
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

DISCOVERY_URLS = [
    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
    "/readyz", "/version", "/version/",
]  # fmt: skip
PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def _cluster_role(name: str, rules: list[Obj]) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": rules}  # fmt: skip


def _binding(name: str, groups: list[str]) -> Obj:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups],
    }


BOOTSTRAP_CLUSTER_ROLES = (
    _cluster_role(
        "cluster-admin",
        [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    ),
    _cluster_role("system:discovery", [{"nonResourceURLs": DISCOVERY_URLS, "verbs": ["get"]}]),
    _cluster_role(
        "system:public-info-viewer", [{"nonResourceURLs": PUBLIC_INFO_URLS, "verbs": ["get"]}]
    ),
)
BOOTSTRAP_BINDINGS = (
    _binding("cluster-admin", ["system:masters"]),
    _binding("system:discovery", ["system:authenticated"]),
    _binding("system:public-info-viewer", ["system:authenticated", "system:unauthenticated"]),
)


def token_secret(account: Obj, suffix: str, token: str) -> Obj:
    """The token controller's Secret for `account` (pure)."""
    meta = account["metadata"]
    return {
        "metadata": {
            "name": f"{meta['name']}-token-{suffix}",
            "namespace": meta["namespace"],
            "annotations": {SA_NAME_ANNOTATION: meta["name"], SA_UID_ANNOTATION: meta["uid"]},
        },
        "type": SA_TOKEN_TYPE,
        "data": {
            "token": base64.b64encode(token.encode()).decode(),
            "namespace": base64.b64encode(meta["namespace"].encode()).decode(),
        },
    }


def new_token_secret(account: Obj) -> Obj:
    meta = account["metadata"]
    suffix = "".join(random.choices(_SUFFIX_ALPHABET, k=5))
    name = f"{meta['name']}-token-{suffix}"
    token = new_serviceaccount_token(meta["namespace"], meta["name"], meta["uid"], name)
    return token_secret(account, suffix, token)


def automounts(pod: Obj, account: Obj) -> bool:
    """The pod's own setting wins over the account's; both default to true."""
    spec = pod.get("spec") or {}
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    return account.get("automountServiceAccountToken") is not False


def admit_pod(pod: Obj, account: Obj | None, namespace: str) -> None:
    """The ServiceAccount admission plugin on a new pod (mutates `pod`; 403 without its
    account, as 1.20 refuses it)."""
    spec = pod.setdefault("spec", {})
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = name
    if account is None:
        pod_name = (pod.get("metadata") or {}).get("name", "")
        raise ApiError(
            403,
            f'pods "{pod_name}" is forbidden: error looking up service account '
            f'{namespace}/{name}: serviceaccount "{name}" not found',
            "Forbidden",
            {"name": pod_name, "kind": "pods"},
        )
    if not automounts(pod, account):
        return
    secret = next((s.get("name") for s in account.get("secrets") or [] if s.get("name")), None)
    if secret is None:
        return
    needed = False
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        mounts = container.setdefault("volumeMounts", [])
        if all(m.get("mountPath") != SA_MOUNT for m in mounts):  # a mount there prevents it
            mounts.append({"name": secret, "readOnly": True, "mountPath": SA_MOUNT})
            needed = True
    volumes = spec.setdefault("volumes", [])
    if needed and not any((v.get("secret") or {}).get("secretName") == secret for v in volumes):
        volumes.append({"name": secret, "secret": {"secretName": secret, "defaultMode": 420}})
