"""Kubeconfig files pointing at a sandbox; one bearer token per identity so the sandbox's
request counters can tell the operator, agents and tests apart."""

from __future__ import annotations

from pathlib import Path

import yaml

from .admin import TOKEN_PREFIX

CLUSTER = "pairwarden-sandbox"


def write_kubeconfig(path: str | Path, server: str, user: str = "admin") -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": {"server": server}}],
        "users": [{"name": user, "user": {"token": f"{TOKEN_PREFIX}{user}"}}],
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
    tmp.replace(target)
    return target
