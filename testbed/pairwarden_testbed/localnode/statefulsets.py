"""StatefulSet controller stand-in: pods `<name>-<ordinal>` from each StatefulSet's template,
labelled as the real controller labels them (`apps.kubernetes.io/pod-index`,
`statefulset.kubernetes.io/pod-name`), so the chart's operator StatefulSet runs on the local
node as it would on a cluster (each replica takes its ordinal as its peering priority). Scale
changes create or delete the highest ordinals; a deleted StatefulSet takes its pods with it. No
rolling update: a changed template applies to pods created afterwards."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pairwarden.kube import sync_api_client
from pairwarden_testbed.lifecycle import Service
from pairwarden_testbed.localnode.watcher import ResourceWatcher

log = logging.getLogger(__name__)
POD_INDEX = "apps.kubernetes.io/pod-index"
POD_NAME = "statefulset.kubernetes.io/pod-name"


def pod_for(sts: dict[str, Any], ordinal: int) -> dict[str, Any]:
    """The pod the StatefulSet controller makes for one ordinal; pure."""
    meta = sts["metadata"]
    template = copy.deepcopy((sts.get("spec") or {}).get("template") or {})
    name = f"{meta['name']}-{ordinal}"
    pod_meta = template.get("metadata") or {}
    labels = {**(pod_meta.get("labels") or {}), POD_INDEX: str(ordinal), POD_NAME: name}
    owner = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            **pod_meta,
            "name": name,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": template.get("spec") or {},
    }


class LocalStatefulSets(Service):
    """`with LocalStatefulSets(kubeconfig, namespace):` keeps each StatefulSet's pods."""

    def __init__(self, kubeconfig: str | os.PathLike[str], namespace: str) -> None:
        self.namespace = namespace
        self._api = sync_api_client(str(kubeconfig))
        self._core = client.CoreV1Api(self._api)
        self._lock = threading.Lock()
        self._watcher = ResourceWatcher(self._api, namespace, "statefulsets", self._on_sts)

    def start(self) -> LocalStatefulSets:
        self._watcher.start()
        return self

    def stop(self) -> None:
        self._watcher.stop()

    def _on_sts(self, event: str, sts: dict[str, Any]) -> None:
        with self._lock:
            name = sts["metadata"]["name"]
            replicas = 0 if event == "DELETED" else int((sts.get("spec") or {}).get("replicas", 1))
            try:
                pods = self._core.list_namespaced_pod(
                    self.namespace, label_selector=POD_NAME, _request_timeout=10
                ).items
            except ApiException as exc:
                log.warning("statefulset %s: listing pods failed: %s", name, exc.reason)
                return
            have = {
                p.metadata.name
                for p in pods
                if any(
                    o.kind == "StatefulSet" and o.name == name
                    for o in p.metadata.owner_references or []
                )
            }
            want = {f"{name}-{i}" for i in range(replicas)}
            for ordinal in range(replicas):
                if f"{name}-{ordinal}" not in have:
                    with contextlib.suppress(ApiException):
                        self._core.create_namespaced_pod(self.namespace, pod_for(sts, ordinal))
            for gone in sorted(have - want):
                with contextlib.suppress(ApiException):
                    self._core.delete_namespaced_pod(gone, self.namespace)
