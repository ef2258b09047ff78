"""The one way pairwarden connects to Kubernetes, for the operator, the agent and the test rig
alike (the replicate command calls no Kubernetes API: its report goes through the kubelet).

Credentials, first found wins: the kubeconfig named by the caller, then `$KUBECONFIG`, then the
pod's ServiceAccount (in-cluster), then `~/.kube/config`. That is kubectl's order with the
in-cluster step where client-go puts it, so a pod always uses its own identity unless told
otherwise. A member pod keeps its token from the voicemail container
(`automountServiceAccountToken: false`) and mounts a projected token at the standard path in
the agent container only, so the in-cluster step finds it there unchanged (the client re-reads
the file, which the kubelet rotates). In the sandbox the local kubelet hands a pod's containers
a kubeconfig through `$KUBECONFIG`, the way a real kubelet hands them a ServiceAccount token;
the same path serves both.

The synchronous client (the rig's stand-ins use it) is imported only when asked for, so the
agent (asynchronous throughout) never loads it.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import kubernetes_asyncio

if TYPE_CHECKING:
    import kubernetes

IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def kubeconfig_path(kubeconfig: str | None = None) -> str | None:
    """The kubeconfig file to read, or None for in-cluster credentials."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    if path:
        return path.split(os.pathsep)[0]
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(IN_CLUSTER_TOKEN):
        return None
    return os.path.expanduser("~/.kube/config")


async def async_api_client(kubeconfig: str | None = None) -> kubernetes_asyncio.client.ApiClient:
    cfg = kubernetes_asyncio.client.Configuration()
    path = kubeconfig_path(kubeconfig)
    if path:
        await kubernetes_asyncio.config.load_kube_config(config_file=path, client_configuration=cfg)
    else:
        kubernetes_asyncio.config.load_incluster_config(client_configuration=cfg)
    return kubernetes_asyncio.client.ApiClient(configuration=cfg)


# Verbs whose repetition changes nothing the first attempt did not: reads, patches (merge
# patches, and JSON patches whose `test` fails if the first went through) and replaces (at a
# resourceVersion: a conflict if the first went through). A create or a delete is sent once.
REPEATABLE = frozenset({"GET", "PUT", "PATCH"})
# Pauses before each further attempt, each drawn from [x/2, x]: five attempts within about
# 0.75 s, so at half of all requests refused 1 in 32 still fails (within an agent's request
# budget, max(0.5, min(5, R/2)) s, most of the time).
REFUSAL_PAUSES = (0.05, 0.1, 0.2, 0.4)


def refused(status: int) -> bool:
    """An answer that says the server could not serve the request now, and may the next
    time: 5xx (an overloaded API server, an etcd member failing behind a load balancer)
    and 429 (throttled)."""
    return status >= 500 or status == 429


def watching(kwargs: dict[str, Any]) -> bool:
    """Whether a request of the client's `rest_client.request` is a watch (its response is
    its stream, open for minutes by design)."""
    return any(key == "watch" and value for key, value in kwargs.get("query_params") or [])


def retry_refusals(
    api: kubernetes_asyncio.client.ApiClient,
    pauses: tuple[float, ...] = REFUSAL_PAUSES,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Send a repeatable request (`REPEATABLE`, never a watch) again when the server refused
    it (`refused`), after each of `pauses`; the last refusal is raised (or returned, unread)
    as ever. In a storm of half of all requests answered 503, an operator step of a dozen
    requests that starts over from fresh reads when any fails never completed (26 steps in a
    row failed; a holder killed then was not failed over while the storm lasted), and an
    agent renewal (a read, then a replace) failed 3 times in 4 once one had failed: the
    holder and its peer went unrenewed for 6 to 22 s, lost as soon as the operator could
    judge them."""
    rest = api.rest_client
    send = rest.request

    async def request(method: str, *args: Any, **kwargs: Any) -> Any:
        if method not in REPEATABLE or watching(kwargs):
            return await send(method, *args, **kwargs)
        for pause in pauses:
            try:
                response = await send(method, *args, **kwargs)
            except kubernetes_asyncio.client.ApiException as error:
                if not refused(int(error.status or 0)):
                    raise
            else:
                # Unread (`_preload_content=False`): the client raised nothing for its status.
                if not refused(int(getattr(response, "status", 200) or 200)):
                    return response
                response.release()
            await sleep(pause * (1 - random.random() / 2))
        return await send(method, *args, **kwargs)

    rest.request = request


def sync_api_client(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    import kubernetes

    cfg = kubernetes.client.Configuration()
    path = kubeconfig_path(kubeconfig)
    if path:
        kubernetes.config.load_kube_config(config_file=path, client_configuration=cfg)
    else:
        kubernetes.config.load_incluster_config(client_configuration=cfg)
    return kubernetes.client.ApiClient(configuration=cfg)


async def absent_as_none[T](read: Awaitable[T]) -> T | None:
    """The object a read returns, or None when it does not exist (404). Most reads here ask
    "is it there, and what is it?", where a missing pod, Service, Lease or pair is an answer
    (a member gone, a condition to report), not an error; every other error is raised."""
    try:
        return await read
    except kubernetes_asyncio.client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def drop_managed_fields(obj: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`obj` without `metadata.managedFields` (removed in place; returned for chaining).

    A real API server (server-side apply's bookkeeping, 1.18+) writes into every object a
    record of which client set which field; pairwarden never reads it, and it is most of what
    an object costs held in memory: on kube-apiserver 1.20 a FailoverPair with its status
    parses to 38 KiB, 22 KiB of them managedFields (docs/performance.md, "What a pair costs
    on the real API server"). The sandbox writes none."""
    meta = obj.get("metadata")
    if isinstance(meta, MutableMapping):
        meta.pop("managedFields", None)
    return obj
