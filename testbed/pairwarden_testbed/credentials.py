"""The one place the rig picks the API credential of a process it starts (issue 25): the
operator, each container of a pod the local kubelet runs, a replication Job's process. Each
acts as the ServiceAccount its manifest names, on the sandbox as on a real control plane (both
authenticate tokens and enforce RBAC); the rig's own parts (the node stand-ins, the test) act
as admin.

A pod the API server admitted says what it got: the token Secret the ServiceAccount admission
plugin mounted at SA_MOUNT, in the containers that mount it (1.20's token controller wrote that
Secret). A manifest no server admitted (the chart's operator Deployment, run here as a plain
process) gets what admission would give it: its account's token, unless automounting is off.
"""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_TYPE = "kubernetes.io/service-account-token"
Obj = Mapping[str, Any]
Credential = tuple[str, bytes]  # (bearer token, CA certificate PEM or b"")


def mounted_token_secret(spec: Obj, container: str | None = None) -> str | None:
    """The Secret mounted at SA_MOUNT in `container` (any container when None) (pure)."""
    volumes = {
        str(v["name"]): str(v["secret"]["secretName"])
        for v in spec.get("volumes") or []
        if "secret" in v
    }
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if container is not None and c.get("name") != container:
            continue
        for mount in c.get("volumeMounts") or []:
            if str(mount.get("mountPath", "")).rstrip("/") == SA_MOUNT:
                return volumes.get(str(mount.get("name")))
    return None


def projected_token(spec: Obj, container: str | None = None) -> int | None:
    """expirationSeconds of a projected serviceAccountToken volume mounted at SA_MOUNT in
    `container` (any when None): how a pod gives the token to one container only, with
    automountServiceAccountToken off (the agent's; the voicemail beside it gets none); None if
    there is none (pure)."""
    projected = {
        str(v["name"]): v["projected"] for v in spec.get("volumes") or [] if "projected" in v
    }
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if container is not None and c.get("name") != container:
            continue
        for mount in c.get("volumeMounts") or []:
            if str(mount.get("mountPath", "")).rstrip("/") != SA_MOUNT:
                continue
            for source in (projected.get(str(mount.get("name"))) or {}).get("sources") or []:
                if "serviceAccountToken" in source:
                    return int(source["serviceAccountToken"].get("expirationSeconds") or 3600)
    return None


def _requested_token(
    core: client.CoreV1Api, namespace: str, pod: Obj, expiry: int
) -> Credential | None:
    """A token bound to the pod, requested as a kubelet does for a projected volume (the Node
    authorizer lets the node ask for its pods' accounts; the CA is then the node's own). A
    server without the TokenRequest API (the sandbox) answers 404: the account's token Secret
    then, the same account's credential."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    account = str(spec.get("serviceAccountName") or "default")
    bound = {"kind": "Pod", "apiVersion": "v1", "name": meta.get("name"), "uid": meta.get("uid")}
    request = {"spec": {"expirationSeconds": expiry, "boundObjectRef": bound}}
    try:
        made = core.create_namespaced_service_account_token(
            account, namespace, request, _request_timeout=10
        )
    except ApiException as exc:
        if exc.status not in (404, 405):
            raise
        found = core.read_namespaced_service_account(account, namespace, _request_timeout=10)
        secret = account_token_secret(core, namespace, found)
        return None if secret is None else _secret_credential(core, namespace, secret)
    return str(made.status.token), b""


def _admitted(spec: Obj) -> bool:
    """A pod spec the API server admitted: the ServiceAccount admission plugin sets both
    `serviceAccountName` and its old alias `serviceAccount`."""
    return bool(spec.get("serviceAccount")) and bool(spec.get("serviceAccountName"))


def _secret_credential(core: client.CoreV1Api, namespace: str, secret: str) -> Credential | None:
    data = core.read_namespaced_secret(secret, namespace, _request_timeout=10).data or {}
    if "token" not in data:
        return None
    ca = base64.b64decode(data["ca.crt"]) if "ca.crt" in data else b""
    return base64.b64decode(data["token"]).decode(), ca


def account_token_secret(core: client.CoreV1Api, namespace: str, account: Any) -> str | None:
    """The token Secret 1.20's token controller listed in the account (a V1ServiceAccount);
    None before it has."""
    for name in [ref.name for ref in account.secrets or []]:
        try:
            secret = core.read_namespaced_secret(name, namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                continue
            raise
        if secret.type == TOKEN_TYPE and "token" in (secret.data or {}):
            return str(name)
    return None


def credentials(
    core: client.CoreV1Api,
    namespace: str,
    spec: Obj,
    container: str | None = None,
    timeout: float = 10.0,
    pod: Obj | None = None,
) -> Credential | None:
    """The credential of a process running `container` of pod spec `spec` in `namespace`
    (`container` None: the pod's, as its first mounting container has it), read as admin (or as
    the node, which may read the Secrets its pods mount). None: the process gets no token and
    is anonymous. Waits up to `timeout` for a token controller that has not written it yet.
    `pod`: the whole admitted pod, for a projected token bound to it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            expiry = projected_token(spec, container) if _admitted(spec) else None
            if expiry is not None:
                return _requested_token(core, namespace, pod or {"spec": spec}, expiry)
            if _admitted(spec):
                secret = mounted_token_secret(spec, container)
            elif spec.get("automountServiceAccountToken") is False:
                return None
            else:
                name = str(spec.get("serviceAccountName") or "default")
                account = core.read_namespaced_service_account(name, namespace, _request_timeout=10)
                if account.automount_service_account_token is False:
                    return None
                secret = account_token_secret(core, namespace, account)
                if secret is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
            return None if secret is None else _secret_credential(core, namespace, secret)
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def kubeconfig_as(config: Obj, credential: Credential | None) -> dict[str, Any]:
    """`config` (the rig's admin kubeconfig, parsed) acting as `credential` instead: its token,
    and its CA when it brings one; None: no user credential at all (pure)."""
    out = copy.deepcopy(dict(config))
    for user in out.get("users") or []:
        user["user"] = {"token": credential[0]} if credential else {}
    if credential and credential[1]:
        ca = base64.b64encode(credential[1]).decode()
        for cluster in out.get("clusters") or []:
            cluster["cluster"].pop("certificate-authority", None)
            cluster["cluster"]["certificate-authority-data"] = ca
    return out


def write_kubeconfig_as(admin: str | Path, credential: Credential | None, path: Path) -> Path:
    """`kubeconfig_as` of the admin kubeconfig file, written to `path` (owner-only)."""
    config = yaml.safe_load(Path(admin).read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig_as(config, credential)))
    path.chmod(0o600)
    return path
