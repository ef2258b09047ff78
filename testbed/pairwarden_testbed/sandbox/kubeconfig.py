"""Kubeconfig files pointing at a sandbox; one bearer token per identity (authn.py issues them)
so the sandbox's request counters can tell the operator, agents and tests apart."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

CLUSTER = "pairwarden-sandbox"


def write_kubeconfig(
    path: str | Path, server: str, token: str, user: str = "admin", ca_pem: bytes | None = None
) -> Path:
    target = Path(path)
    cluster: dict[str, str] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    target.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": f"{CLUSTER}-{user}",
                "context": {"cluster": CLUSTER, "user": user, "namespace": "default"},
            }
        ],
        "current-context": f"{CLUSTER}-{user}",
        "preferences": {},
    }
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(target)
    return target
