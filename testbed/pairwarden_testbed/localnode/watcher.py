"""List-then-watch of one resource kind in a thread, resuming after errors and 410 Gone.
Hands raw objects (dicts) to a callback, the way an informer would. The stand-ins are threaded
(synchronous client); the loop and its retry policy (`pairwarden.watching.RETRY`) are the
product's."""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from pairwarden.watching import RETRY

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], None]  # (ADDED|MODIFIED|DELETED|SYNC, object)


DISCOVERY = "discovery.k8s.io"


def served_version(api: client.ApiClient, group: str, preferred: tuple[str, ...]) -> str:
    """The first of `preferred` versions the server serves for `group` (EndpointSlices: v1
    from Kubernetes 1.21, v1beta1 on 1.20)."""
    for candidate in client.ApisApi(api).get_api_versions().groups:
        if candidate.name == group:
            served = {v.version for v in candidate.versions}
            for version in preferred:
                if version in served:
                    return version
    raise LookupError(f"the server serves none of {group}/{', '.join(preferred)}")


def _custom_list(api: client.ApiClient, kind: str) -> Callable[..., Any]:
    """A namespaced list function, shaped like CoreV1Api's, for a resource of another group."""
    if kind != "endpointslices":
        raise KeyError(kind)
    version = served_version(api, DISCOVERY, ("v1", "v1beta1"))
    custom = client.CustomObjectsApi(api)

    def list_slices(namespace: str, **kwargs: Any) -> Any:
        return custom.list_namespaced_custom_object(DISCOVERY, version, namespace, kind, **kwargs)

    return list_slices


class ResourceWatcher:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        kind: str,
        handler: Handler,
        field_selector: str | None = None,
    ) -> None:
        core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
        lists: dict[str, Callable[..., Any]] = {
            "pods": core.list_namespaced_pod,
            "services": core.list_namespaced_service,
            "jobs": batch.list_namespaced_job,
            "statefulsets": client.AppsV1Api(api).list_namespaced_stateful_set,
        }
        self._list = lists[kind] if kind in lists else _custom_list(api, kind)
        self._ns = namespace
        self._kind = kind
        self._handler = handler
        # a real kubelet lists only the pods bound to it: spec.nodeName=<node>
        self._options = {"field_selector": field_selector} if field_selector else {}
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._main, name=f"watch-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(3)

    def _main(self) -> None:
        rv: str | None = None
        self._failures = 0
        while not self._stop.is_set():
            try:
                if rv is None:
                    resp = self._list(
                        self._ns, _preload_content=False, _request_timeout=10, **self._options
                    )
                    listed = json.loads(resp.data)
                    rv = listed["metadata"]["resourceVersion"]
                    for item in listed.get("items") or []:
                        self._handler("SYNC", item)
                    self._failures = 0
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    self._list, self._ns, resource_version=rv, timeout_seconds=30,
                    allow_watch_bookmarks=True, _request_timeout=40, **self._options,
                ):  # fmt: skip
                    if self._stop.is_set():
                        return
                    obj = event["raw_object"]
                    if event["type"] == "ERROR":
                        rv = None if obj.get("code") == 410 else rv
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion") or rv
                    if event["type"] != "BOOKMARK":
                        self._handler(event["type"], obj)
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                    continue
                self._pause(f"{exc.status} {exc.reason}")
            except Exception as exc:  # a watcher thread must survive anything
                if self._stop.is_set():
                    return
                self._pause(repr(exc))

    def _pause(self, why: str) -> None:
        self._failures += 1
        pause = RETRY.pause(self._failures, random.random())
        log.info("watch of %s: %s; retrying in %.1f s", self._kind, why, pause)
        self._stop.wait(pause)
