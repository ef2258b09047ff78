"""The service proxy and the network link with real sockets on loopback addresses."""

from __future__ import annotations

import random
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from pairwarden_testbed.localnode import LocalServiceProxy, NetworkLink


class Echo(socketserver.ThreadingTCPServer):
    """Answers each line with `<name> <line>`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, name: str) -> None:
        self.name = name

        class Handler(socketserver.StreamRequestHandler):
            def handle(inner) -> None:
                for line in inner.rfile:
                    inner.wfile.write(f"{name} ".encode() + line)

        super().__init__((host, 0), Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def ask(sock: socket.socket, text: str = "hi") -> str:
    sock.sendall(text.encode() + b"\n")
    return sock.makefile().readline().strip()


@pytest.fixture
def prefix() -> str:
    return f"127.{random.randrange(2, 255)}.{random.randrange(256)}."


@pytest.fixture
def echoes(prefix: str) -> Iterator[tuple[Echo, Echo]]:
    a, b = Echo(prefix + "2", "primary"), Echo(prefix + "3", "secondary")
    yield a, b
    for e in (a, b):
        e.shutdown()
        e.server_close()


def closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def pod(name: str, ip: str, member: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": {"app": "vm", "pairwarden.io/member": member}},
        "status": {"phase": "Running", "podIP": ip},
    }


def test_proxy_routes_each_new_connection_by_the_current_selector(
    echoes: tuple[Echo, Echo], prefix: str
) -> None:
    a, _ = echoes
    cluster_ip = f"127.1.{random.randrange(256)}.{random.randrange(2, 255)}"
    with socket.socket() as probe:
        probe.bind((cluster_ip, 0))
        svc_port = probe.getsockname()[1]

    def service(member: str) -> dict[str, object]:
        return {
            "metadata": {"name": "vm-calls"},
            "spec": {"clusterIP": cluster_ip, "selector": {"pairwarden.io/member": member},
                     "ports": [{"port": svc_port, "targetPort": a.port}]},
        }  # fmt: skip

    proxy = LocalServiceProxy(None, "voice")
    try:
        proxy.apply_pod(pod("vm-primary", prefix + "2", "primary"))
        proxy.apply_service(service("primary"))
        assert proxy.listening() == [(cluster_ip, svc_port)]
        first = socket.create_connection((cluster_ip, svc_port), timeout=5)
        assert ask(first) == "primary hi"
        # Flip the selector to a member with no serving pod: new callers are refused.
        proxy.apply_service(service("secondary"))
        with socket.create_connection((cluster_ip, svc_port), timeout=5) as refused:
            assert refused.recv(10) == b""
        assert ask(first, "still") == "primary still"  # the call in progress stays
        first.close()
        proxy.delete_service("vm-calls")
        assert proxy.listening() == []
    finally:
        proxy.stop()


def test_proxy_flip_reaches_the_other_pod(echoes: tuple[Echo, Echo], prefix: str) -> None:
    a, b = echoes
    cluster_ip = f"127.1.{random.randrange(256)}.{random.randrange(2, 255)}"
    proxy = LocalServiceProxy(None, "voice")
    try:
        for name, ip, member, port in (("p", prefix + "2", "primary", a.port),
                                       ("s", prefix + "3", "secondary", b.port)):  # fmt: skip
            p = pod(name, ip, member)
            p["spec"] = {"containers": [{"ports": [{"name": "calls", "containerPort": port}]}]}
            proxy.apply_pod(p)
        svc = {"metadata": {"name": "calls"},
               "spec": {"clusterIP": cluster_ip, "selector": {"pairwarden.io/member": "primary"},
                        "ports": [{"port": 15070, "targetPort": "calls"}]}}  # fmt: skip
        proxy.apply_service(svc)
        assert proxy.endpoints("calls") == [(prefix + "2", a.port)]
        with socket.create_connection((cluster_ip, 15070), timeout=5) as s:
            assert ask(s) == "primary hi"
        svc["spec"]["selector"] = {"pairwarden.io/member": "secondary"}  # type: ignore[index]
        proxy.apply_service(svc)
        with socket.create_connection((cluster_ip, 15070), timeout=5) as s:
            assert ask(s) == "secondary hi"
    finally:
        proxy.stop()


def test_link_cut_blackholes_and_heal_restores(echoes: tuple[Echo, Echo]) -> None:
    a, _ = echoes
    link = NetworkLink(a.server_address[0], a.port)
    try:
        held = socket.create_connection(link.address, timeout=5)
        assert ask(held) == "primary hi"
        link.cut()
        held.settimeout(0.3)
        with pytest.raises(TimeoutError):
            ask(held)  # no reply and no error: a blackhole
        late = socket.create_connection(link.address, timeout=5)  # accepted...
        late.settimeout(0.3)
        with pytest.raises(TimeoutError):
            ask(late)  # ...but never answered
        link.heal()
        assert closed(held)  # its bytes were dropped: healing aborts it, the client reconnects
        with socket.create_connection(link.address, timeout=5) as fresh:
            assert ask(fresh) == "primary hi"
        held.close()
        late.close()
    finally:
        link.close()
