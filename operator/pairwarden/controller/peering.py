"""kopf's peering object must exist before two replicas can see each other: kopf only patches it,
and patching a missing object leaves each replica believing it is alone. Create it at start.

A replica's entry in it outlives a process that could not remove it (kill -9, an OOM kill, a
SIGTERM whose last patch did not land) by kopf's peering lifetime (60 s). kopf pauses *every*
replica while a live-looking entry shares its priority, and a restarted replica has its
predecessor's priority (its ordinal): the pair went unserved for up to a lifetime after every
such restart (53 s measured, kill -9 of the acting replica of two). A pod runs one operator
process at a time, and a StatefulSet one pod of a name at a time, so an entry of the same pod
that is not this process's own is a predecessor's: the operator removes it at start and acts
at once (`predecessors`, `forget_predecessors`)."""

from __future__ import annotations

import argparse
import getpass
import random
import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubernetes_asyncio import client

from pairwarden.controller.client import MERGE_PATCH, status_of

GROUP, VERSION = "kopf.dev", "v1"


def priority_of(text: str) -> int:
    """A replica's kopf peering priority from `--priority`: a number, or a StatefulSet pod's
    name whose ordinal (`operator-1` -> 1) is the priority. The chart passes the
    `apps.kubernetes.io/pod-index` label's value on Kubernetes 1.28+ and the pod's name before
    (the label does not exist there): both give each replica its own priority, as kopf pauses
    every replica when two share one. Anything else is refused with a clear message."""
    if text.lstrip("-").isdigit():
        return int(text)
    _, dash, ordinal = text.rpartition("-")
    if dash and ordinal.isdigit():
        return int(ordinal)
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a number nor a StatefulSet pod name ending in its ordinal"
    )


def _peering(kind: str, name: str) -> dict[str, object]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}}


async def ensure(
    api: client.ApiClient, name: str, namespaces: list[str], clusterwide: bool
) -> None:
    custom = client.CustomObjectsApi(api)
    try:
        if clusterwide:
            body = _peering("ClusterKopfPeering", name)
            await custom.create_cluster_custom_object(GROUP, VERSION, "clusterkopfpeerings", body)
            return
        for namespace in namespaces:
            body = _peering("KopfPeering", name)
            await custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "kopfpeerings", body
            )
    except client.ApiException as error:
        if status_of(error) not in (409, 404):  # exists already; or the CRD is not installed
            raise


def identity_of(pod: str, started: datetime, suffix: str) -> str:
    """This process's peering identity, in kopf's own form (`user@host/started/suffix`) with the
    pod's name as the host: unique per process (the start time and a random suffix), and
    naming its pod (`pod_of`) so a successor in the same pod knows the entry for its
    predecessor's."""
    return f"{getpass.getuser()}@{pod}/{started:%Y%m%d%H%M%S}/{suffix}"


def new_identity(pod: str, started: datetime) -> str:
    return identity_of(pod, started, "".join(random.choices(string.ascii_lowercase, k=3)))


def pod_of(identity: str) -> str:
    """The pod (host) a kopf identity names: `user@host/...` -> host's first label (kopf's own
    identities carry the pod's FQDN when it has one: `operator-0.svc-name.ns.svc...`)."""
    _, _, rest = identity.partition("@")
    host = rest.partition("/")[0]
    return host.partition(".")[0]


def predecessors(entries: Mapping[str, Any] | None, own: str, pod: str) -> list[str]:
    """The entries of a peering object's status left by earlier processes of this same pod
    (pure): every identity naming `pod` but `own`. Such a process is gone, whatever its entry's
    lastseen says: a container runs one process at a time and a StatefulSet one pod of a name at
    a time. Nothing is said of any other pod's entry (kopf's lifetime judges those)."""
    if not pod:
        return []
    return sorted(ident for ident in entries or {} if ident != own and pod_of(ident) == pod)


def handover(
    entries: Mapping[str, Any] | None,
    own: str,
    pod: str,
    priority: int,
    lifetime: int,
    now: datetime,
) -> dict[str, Any] | None:
    """The merge patch of a peering object's status that replaces this pod's predecessors'
    entries with this process's own (pure); None when there is none. Both in one write: removed
    alone, a predecessor's entry left a lower-priority replica without a higher peer for the
    moment before this process's first keep-alive, and it resumed (40 ms, measured, then paused
    again: two replicas acting). The entry is the one kopf's keep-alive writes."""
    gone = predecessors(entries, own, pod)
    if not gone:
        return None
    mine = {"priority": priority, "lifetime": lifetime, "lastseen": now.isoformat()}
    return {"status": {**dict.fromkeys(gone), own: mine}}


async def forget_predecessors(
    api: client.ApiClient,
    name: str,
    namespaces: list[str],
    clusterwide: bool,
    own: str,
    pod: str,
    priority: int,
    lifetime: int,
    now: datetime,
) -> list[str]:
    """Replace this pod's predecessors' entries in the peering objects with this process's own
    (`handover`); the identities removed. kopf re-judges its peers on the object's change and
    resumes at once."""
    custom = client.CustomObjectsApi(api)
    where: list[str | None] = [None] if clusterwide else list(namespaces)
    removed: list[str] = []
    for namespace in where:
        try:
            if namespace is None:
                body = await custom.get_cluster_custom_object(
                    GROUP, VERSION, "clusterkopfpeerings", name
                )
            else:
                body = await custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "kopfpeerings", name
                )
        except client.ApiException as error:
            if status_of(error) == 404:  # no object (or no CRD): no entry to remove
                continue
            raise
        patch = handover(body.get("status"), own, pod, priority, lifetime, now)
        if patch is None:
            continue
        if namespace is None:
            await custom.patch_cluster_custom_object(
                GROUP, VERSION, "clusterkopfpeerings", name, patch, _content_type=MERGE_PATCH
            )
        else:
            await custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "kopfpeerings", name, patch, _content_type=MERGE_PATCH
            )
        removed.extend(ident for ident, entry in patch["status"].items() if entry is None)
    return removed
