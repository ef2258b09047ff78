"""Loading a Kubernetes client: a kubeconfig path if given (or $KUBECONFIG), else in-cluster.

In the sandbox the local kubelet hands each pod a kubeconfig through $KUBECONFIG, the way a
real kubelet hands it a service-account token; the same code path serves both.
"""

from __future__ import annotations

import os

import kubernetes
import kubernetes_asyncio


def _config_path(kubeconfig: str | None) -> str | None:
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    return path.split(os.pathsep)[0] if path else None


async def async_api_client(kubeconfig: str | None = None) -> kubernetes_asyncio.client.ApiClient:
    cfg = kubernetes_asyncio.client.Configuration()
    path = _config_path(kubeconfig)
    if path:
        await kubernetes_asyncio.config.load_kube_config(config_file=path, client_configuration=cfg)
    else:
        kubernetes_asyncio.config.load_incluster_config(client_configuration=cfg)
    return kubernetes_asyncio.client.ApiClient(configuration=cfg)


def sync_api_client(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    cfg = kubernetes.client.Configuration()
    path = _config_path(kubeconfig)
    if path:
        kubernetes.config.load_kube_config(config_file=path, client_configuration=cfg)
    else:
        kubernetes.config.load_incluster_config(client_configuration=cfg)
    return kubernetes.client.ApiClient(configuration=cfg)
