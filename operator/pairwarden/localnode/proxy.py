"""kube-proxy stand-in: every Service port listens on `clusterIP:port`, and each new TCP
connection goes to a pod the selector matches *at connection time* (Running, Ready, with a
pod IP). A selector flip is thus seen by the next caller, while calls in progress stay where
they are, as with conntrack. UDP (SIP) would be a second listener kind beside `_listen_tcp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Mapping
from typing import Any

from pairwarden.kube import sync_api_client
from pairwarden.localnode.loop import LoopThread, pipe
from pairwarden.localnode.watcher import ResourceWatcher

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]


def pod_serves(pod: Obj) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
        return False
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return not ready or ready[0].get("status") == "True"


def selects(selector: Mapping[str, str] | None, pod: Obj) -> bool:
    """A Service without a selector has no automatic endpoints; an empty one matches none."""
    if not selector:
        return False
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def target_port(port_spec: Obj, pod: Obj) -> int | None:
    target = port_spec.get("targetPort", port_spec.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return None


def backends(service: Obj, port_spec: Obj, pods: list[Obj]) -> list[tuple[str, int]]:
    selector = (service.get("spec") or {}).get("selector")
    out = []
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        if pod_serves(pod) and selects(selector, pod):
            port = target_port(port_spec, pod)
            if port is not None:
                out.append((str(pod["status"]["podIP"]), port))
    return out


class LocalServiceProxy:
    """`LocalServiceProxy(kubeconfig, namespace).start()`; or, without a kubeconfig, fed by
    `apply_service` / `apply_pod` (tests)."""

    def __init__(self, kubeconfig: str | None, namespace: str) -> None:
        self._kubeconfig = kubeconfig
        self._ns = namespace
        self._lock = threading.Lock()
        self._services: dict[str, Obj] = {}
        self._pods: dict[str, Obj] = {}
        self._listeners: dict[tuple[str, str, int], asyncio.Server] = {}  # (svc, ip, port)
        self._rr = itertools.count()
        self._loop = LoopThread("service-proxy")
        self._watchers: list[ResourceWatcher] = []

    def start(self) -> LocalServiceProxy:
        if self._kubeconfig is not None:
            api = sync_api_client(self._kubeconfig)
            self._watchers = [
                ResourceWatcher(api, self._ns, "services", self._on_service),
                ResourceWatcher(api, self._ns, "pods", self._on_pod),
            ]
            for w in self._watchers:
                w.start()
        return self

    def stop(self) -> None:
        for w in self._watchers:
            w.stop()

        async def close_all() -> None:
            for server in self._listeners.values():
                server.close()
            self._listeners.clear()

        with contextlib.suppress(Exception):
            self._loop.run(close_all())
        self._loop.stop()

    def __enter__(self) -> LocalServiceProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def endpoints(self, service: str) -> list[tuple[str, int]]:
        """Where a new connection to the Service's first port would go now."""
        with self._lock:
            svc = self._services.get(service)
            pods = list(self._pods.values())
        ports = ((svc or {}).get("spec") or {}).get("ports") or []
        return backends(svc, ports[0], pods) if svc and ports else []

    def listening(self) -> list[tuple[str, int]]:
        return sorted((ip, port) for _, ip, port in self._listeners)

    # ---- state ---------------------------------------------------------------------------

    def _on_service(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.delete_service(obj["metadata"]["name"])
        else:
            self.apply_service(obj)

    def _on_pod(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if kind == "DELETED":
                self._pods.pop(name, None)
            else:
                self._pods[name] = obj

    def apply_pod(self, pod: Obj) -> None:
        self._on_pod("MODIFIED", dict(pod))

    def apply_service(self, service: Obj) -> None:
        name = service["metadata"]["name"]
        with self._lock:
            self._services[name] = service
        self._loop.run(self._reconcile(name))

    def delete_service(self, name: str) -> None:
        with self._lock:
            self._services.pop(name, None)
        self._loop.run(self._reconcile(name))

    async def _reconcile(self, name: str) -> None:
        with self._lock:
            svc = self._services.get(name)
        want: set[tuple[str, str, int]] = set()
        spec = (svc or {}).get("spec") or {}
        ip = spec.get("clusterIP")
        if svc and ip and ip != "None":
            for p in spec.get("ports") or []:
                if p.get("protocol", "TCP") == "TCP":
                    want.add((name, str(ip), int(p["port"])))
        for key in [k for k in self._listeners if k[0] == name and k not in want]:
            self._listeners.pop(key).close()
        for key in want - set(self._listeners):
            try:
                self._listeners[key] = await self._listen_tcp(*key)
            except OSError as exc:
                log.warning("service %s: cannot listen on %s:%d: %s", *key, exc)

    async def _listen_tcp(self, service: str, ip: str, port: int) -> asyncio.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._connect(service, port, reader, writer)

        return await asyncio.start_server(handle, ip, port, reuse_address=True)

    async def _connect(
        self, service: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with self._lock:
            svc = self._services.get(service)
            pods = list(self._pods.values())
        spec_ports = ((svc or {}).get("spec") or {}).get("ports") or []
        port_spec = next((p for p in spec_ports if int(p.get("port", 0)) == port), None)
        targets = backends(svc, port_spec, pods) if svc and port_spec else []
        if not targets:
            writer.transport.abort()  # no endpoints: the caller sees a refused/reset connection
            return
        host, tport = targets[next(self._rr) % len(targets)]
        try:
            up_reader, up_writer = await asyncio.open_connection(host, tport)
        except OSError:
            writer.transport.abort()
            return
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            writer.close()
            up_writer.close()
