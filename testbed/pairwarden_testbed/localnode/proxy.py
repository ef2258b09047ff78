"""kube-proxy stand-in: every Service port listens on `clusterIP:port`, and each new TCP
connection goes to a pod the selector matches *at connection time* (Running, Ready, with a
pod IP). A selector flip is thus seen by the next caller, while calls in progress stay where
they are, as with conntrack.

UDP ports (SIP) work the same way per *flow*: the first datagram from a client address picks
the pod, later datagrams from that address follow it, and the pod's replies go back to that
client from the Service address (as conntrack un-NATs them). A flow ends after
`UDP_FLOW_IDLE` seconds of silence, or the moment its pod leaves the Service's endpoints (the
selector no longer matches it, or it is gone or not Ready): kube-proxy deletes the conntrack
entries of a UDP endpoint removed from a Service, so a caller that keeps one source port (a
PBX, a SIP trunk) reaches the new active member with its next datagram instead of staying
pinned to the old one until its flow times out.

TCP connections in progress are kept when their pod leaves the Service, as real kube-proxy
keeps them (its conntrack clean-up is for UDP and SCTP only: flushing TCP entries would break
graceful termination, kubernetes/kubernetes#100755); every new connection picks again, so a
caller that reconnects from the same source port reaches the new member.

Where the endpoints come from: on a real control plane (`endpoint_slices=True`) from the
EndpointSlices the EndpointSlice controller computes (discovery.k8s.io/v1 where served,
v1beta1 on 1.20), as kube-proxy does; the sandbox runs no such controller, so there the proxy
matches the selector against the pods itself (the same rule: Ready pods with an IP).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pairwarden.kube import sync_api_client
from pairwarden_testbed.lifecycle import Service
from pairwarden_testbed.localnode.loop import LoopThread, pipe
from pairwarden_testbed.localnode.watcher import ResourceWatcher

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]
Addr = tuple[str, int]
UDP_FLOW_IDLE = 30.0


class _Listener(Protocol):
    def close(self) -> None: ...


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


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def slice_backends(port_spec: Obj, slices: list[Obj]) -> list[tuple[str, int]]:
    """(address, port) of the ready endpoints in a Service's EndpointSlices for one Service
    port (pure). A slice port matches by the Service port's name and protocol; its number is
    the resolved targetPort. `ready` unset counts as ready (the API's own rule)."""
    name, protocol = port_spec.get("name") or "", port_spec.get("protocol", "TCP")
    out: set[tuple[str, int]] = set()
    for piece in slices:
        port = next(
            (
                p.get("port")
                for p in piece.get("ports") or []
                if (p.get("name") or "") == name and p.get("protocol", "TCP") == protocol
            ),
            None,
        )
        if port is None:
            continue
        for endpoint in piece.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            out.update((str(a), int(port)) for a in endpoint.get("addresses") or [])
    return sorted(out)


def backends(service: Obj, port_spec: Obj, pods: list[Obj]) -> list[tuple[str, int]]:
    selector = (service.get("spec") or {}).get("selector")
    out = []
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        if pod_serves(pod) and selects(selector, pod):
            port = target_port(port_spec, pod)
            if port is not None:
                out.append((str(pod["status"]["podIP"]), port))
    return out


class LocalServiceProxy(Service):
    """`LocalServiceProxy(kubeconfig, namespace).start()`; or, without a kubeconfig, fed by
    `apply_service` / `apply_pod` (tests)."""

    def __init__(
        self, kubeconfig: str | None, namespace: str, *, endpoint_slices: bool = False
    ) -> None:
        self._kubeconfig = kubeconfig
        self._ns = namespace
        self._lock = threading.Lock()
        self._services: dict[str, Obj] = {}
        self._pods: dict[str, Obj] = {}
        self._slices: dict[str, Obj] | None = {} if endpoint_slices else None
        # (svc, ip, port, protocol) -> an asyncio.Server (TCP) or a _UdpService
        self._listeners: dict[tuple[str, str, int, str], _Listener] = {}
        # asyncio's streams drop a connection's task once the client side is gone; the upstream
        # half may still be copying, so the proxy holds the tasks until they end (or it stops)
        self._connections: set[asyncio.Task[None]] = set()
        self._rr = itertools.count()
        self.udp_flow_idle = UDP_FLOW_IDLE  # read when a UDP port starts listening
        self._loop = LoopThread("service-proxy")
        self._watchers: list[ResourceWatcher] = []

    def start(self) -> LocalServiceProxy:
        if self._kubeconfig is not None:
            api = sync_api_client(self._kubeconfig)
            source = "pods" if self._slices is None else "endpointslices"
            self._watchers = [
                ResourceWatcher(api, self._ns, "services", self._on_service),
                ResourceWatcher(api, self._ns, source, self._on_endpoints),
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
            for task in list(self._connections):
                task.cancel()

        with contextlib.suppress(Exception):
            self._loop.run(close_all())
        self._loop.stop()

    def endpoints(
        self, service: str, port: int | None = None, protocol: str = "TCP"
    ) -> list[tuple[str, int]]:
        """Where a new connection (flow) to the Service's port (default: its first) would go."""
        with self._lock:
            svc = self._services.get(service)
            pods = list(self._pods.values())
        ports = ((svc or {}).get("spec") or {}).get("ports") or []
        if port is not None:
            ports = [
                p
                for p in ports
                if int(p.get("port", 0)) == port and p.get("protocol", "TCP") == protocol
            ]
        return self._backends(svc, ports[0], pods) if svc and ports else []

    def _backends(self, svc: Obj, port_spec: Obj, pods: list[Obj]) -> list[tuple[str, int]]:
        if self._slices is None:
            return backends(svc, port_spec, pods)
        name = svc["metadata"]["name"]
        with self._lock:
            slices = [
                s for s in self._slices.values()
                if ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == name
            ]  # fmt: skip
        return slice_backends(port_spec, slices)

    def udp_flows(self) -> dict[Addr, Addr]:
        """Live UDP flows: client address -> pod address (what conntrack would list)."""

        async def collect() -> dict[Addr, Addr]:
            return {
                client: flow.target
                for listener in self._listeners.values()
                if isinstance(listener, _UdpService)
                for client, flow in listener.flows.items()
                if not flow.closed
            }

        return self._loop.run(collect())

    def listening(self, protocol: str = "TCP") -> list[tuple[str, int]]:
        return sorted((ip, port) for _, ip, port, proto in self._listeners if proto == protocol)

    # ---- state ---------------------------------------------------------------------------

    def _on_service(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.delete_service(obj["metadata"]["name"])
        else:
            self.apply_service(obj)

    def _on_endpoints(self, kind: str, obj: dict[str, Any]) -> None:
        if self._slices is None:
            self._on_pod(kind, obj)
            return
        name = obj["metadata"]["name"]
        with self._lock:
            if kind == "DELETED":
                self._slices.pop(name, None)
            else:
                self._slices[name] = obj
        with contextlib.suppress(RuntimeError):  # the loop is closed: the proxy has stopped
            self._loop.loop.call_soon_threadsafe(self._prune_udp)

    def _on_pod(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if kind == "DELETED":
                self._pods.pop(name, None)
            else:
                self._pods[name] = obj
        with contextlib.suppress(RuntimeError):  # the loop is closed: the proxy has stopped
            self._loop.loop.call_soon_threadsafe(self._prune_udp)

    def _prune_udp(self) -> None:
        """The conntrack clean-up: flows to endpoints that left their Service end now."""
        for listener in list(self._listeners.values()):
            if isinstance(listener, _UdpService):
                listener.prune()

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
        want: set[tuple[str, str, int, str]] = set()
        spec = (svc or {}).get("spec") or {}
        ip = spec.get("clusterIP")
        if svc and ip and ip != "None":
            for p in spec.get("ports") or []:
                protocol = p.get("protocol", "TCP")
                if protocol in ("TCP", "UDP"):
                    want.add((name, str(ip), int(p["port"]), protocol))
        for key in [k for k in self._listeners if k[0] == name and k not in want]:
            self._listeners.pop(key).close()
        for key in want - set(self._listeners):
            service, lip, lport, protocol = key
            try:
                if protocol == "TCP":
                    self._listeners[key] = await self._listen_tcp(service, lip, lport)
                else:
                    self._listeners[key] = await self._listen_udp(service, lip, lport)
            except OSError as exc:
                log.warning("service %s: cannot listen on %s:%d/%s: %s", *key, exc)
        self._prune_udp()

    async def _listen_tcp(self, service: str, ip: str, port: int) -> asyncio.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                await self._connect(service, port, reader, writer)
            finally:
                self._connections.discard(task)

        return await asyncio.start_server(handle, ip, port, reuse_address=True)

    def _targets(self, service: str, port: int, protocol: str) -> list[tuple[str, int]]:
        with self._lock:
            svc = self._services.get(service)
            pods = list(self._pods.values())
        spec_ports = ((svc or {}).get("spec") or {}).get("ports") or []
        port_spec = next(
            (p for p in spec_ports
             if int(p.get("port", 0)) == port and p.get("protocol", "TCP") == protocol),
            None,
        )  # fmt: skip
        return self._backends(svc, port_spec, pods) if svc and port_spec else []

    async def _listen_udp(self, service: str, ip: str, port: int) -> _UdpService:
        def pick() -> Addr | None:
            targets = self._targets(service, port, "UDP")
            return targets[next(self._rr) % len(targets)] if targets else None

        def endpoint(target: Addr) -> bool:
            return target in self._targets(service, port, "UDP")

        loop = asyncio.get_running_loop()
        udp = _UdpService(pick, endpoint, self.udp_flow_idle)
        await loop.create_datagram_endpoint(lambda: udp, local_addr=(ip, port), reuse_port=False)
        return udp

    async def _connect(
        self, service: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        targets = self._targets(service, port, "TCP")
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


class _UdpFlow(asyncio.DatagramProtocol):
    """One client's flow: a socket connected to the chosen pod; replies go back to the client
    through the Service's socket, so they come from the Service address."""

    def __init__(self, owner: _UdpService, client: Addr, target: Addr) -> None:
        self.owner = owner
        self.client = client
        self.target = target
        self.last = time.monotonic()
        self.closed = False
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: list[bytes] = []

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: self, remote_addr=self.target
            )
        except OSError as exc:
            log.debug("udp flow %s -> %s: %s", self.client, self.target, exc)
            self.close()
            return
        if self.closed:
            transport.close()
            return
        self._transport = transport
        for data in self._pending:
            transport.sendto(data)
        self._pending.clear()

    def send(self, data: bytes) -> None:
        self.last = time.monotonic()
        if self._transport is None:
            if len(self._pending) < 64:
                self._pending.append(data)
        else:
            self._transport.sendto(data)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.last = time.monotonic()
        self.owner.reply(data, self.client)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable from the pod: a UDP sender would not see it either

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class _UdpService(asyncio.DatagramProtocol):
    """A Service port over UDP: per-client flows, each pinned to the pod picked at its start
    for as long as that pod stays an endpoint of the Service (`endpoint`)."""

    def __init__(
        self,
        pick: Callable[[], Addr | None],
        endpoint: Callable[[Addr], bool],
        idle: float = UDP_FLOW_IDLE,
    ) -> None:
        self._pick = pick
        self._endpoint = endpoint
        self._idle = idle
        self._transport: asyncio.DatagramTransport | None = None
        self.flows: dict[Addr, _UdpFlow] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self._transport = transport
        self._schedule_sweep()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        client = (addr[0], addr[1])
        flow = self.flows.get(client)
        if flow is not None and (flow.closed or not self._endpoint(flow.target)):
            flow.close()
            flow = None
        if flow is None:
            target = self._pick()
            if target is None:
                return  # no endpoints: the datagram is dropped, as by kube-proxy
            flow = self.flows[client] = _UdpFlow(self, client, target)
            task = asyncio.ensure_future(flow.open())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        flow.send(data)

    def reply(self, data: bytes, client: Addr) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, client)

    def prune(self) -> None:
        for client, flow in list(self.flows.items()):
            if flow.closed or not self._endpoint(flow.target):
                flow.close()
                del self.flows[client]

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(max(0.05, self._idle / 4), self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        for client, flow in list(self.flows.items()):
            if flow.closed or now - flow.last > self._idle:
                flow.close()
                del self.flows[client]
        if self._transport is not None and not self._transport.is_closing():
            self._schedule_sweep()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for flow in self.flows.values():
            flow.close()
        self.flows.clear()
        for task in self._tasks:
            task.cancel()
        if self._transport is not None:
            self._transport.close()
