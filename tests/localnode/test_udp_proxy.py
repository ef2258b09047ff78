"""UDP Service ports in the service proxy, on real sockets: per-client flows, replies from the
Service address, flows dropped when their pod leaves the Service, idle expiry and dead pods."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pairwarden_testbed.localnode import LocalServiceProxy


class UdpEcho:
    """Answers each datagram with `<name> <datagram>` and remembers who sent what."""

    def __init__(self, host: str, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = int(self.sock.getsockname()[1])
        self.seen: list[tuple[str, int]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            self.seen.append(addr)
            self.sock.sendto(f"{self.name} ".encode() + data, addr)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def prefix() -> str:
    return f"127.{random.randrange(2, 255)}.{random.randrange(256)}."


@pytest.fixture
def echoes(prefix: str) -> Iterator[tuple[UdpEcho, UdpEcho]]:
    a, b = UdpEcho(prefix + "2", "primary"), UdpEcho(prefix + "3", "secondary")
    yield a, b
    a.close()
    b.close()


def pod(name: str, ip: str, member: str, port: int) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": {"pairwarden.io/member": member}},
        "spec": {"containers": [{"ports": [{"name": "sip", "containerPort": port,
                                            "protocol": "UDP"}]}]},
        "status": {"phase": "Running", "podIP": ip},
    }  # fmt: skip


def service(cluster_ip: str, member: str, port: int) -> dict[str, object]:
    return {
        "metadata": {"name": "vm-calls"},
        "spec": {"clusterIP": cluster_ip, "selector": {"pairwarden.io/member": member},
                 "ports": [{"name": "sip", "port": port, "targetPort": "sip", "protocol": "UDP"},
                           {"name": "calls", "port": port, "targetPort": 9, "protocol": "TCP"}]},
    }  # fmt: skip


def client(cluster_ip: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


def ask(sock: socket.socket, to: tuple[str, int], text: str = "hi") -> tuple[str, tuple[str, int]]:
    sock.sendto(text.encode(), to)
    data, addr = sock.recvfrom(65535)
    return data.decode(), (addr[0], addr[1])


@pytest.fixture
def rig(
    echoes: tuple[UdpEcho, UdpEcho], prefix: str
) -> Iterator[tuple[LocalServiceProxy, tuple[str, int], UdpEcho, UdpEcho]]:
    a, b = echoes
    cluster_ip = f"127.1.{random.randrange(256)}.{random.randrange(2, 255)}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((cluster_ip, 0))
        port = int(probe.getsockname()[1])
    proxy = LocalServiceProxy(None, "voice")
    proxy.udp_flow_idle = 0.3
    proxy.apply_pod(pod("vm-primary", prefix + "2", "primary", a.port))
    proxy.apply_pod(pod("vm-secondary", prefix + "3", "secondary", b.port))
    proxy.apply_service(service(cluster_ip, "primary", port))
    try:
        yield proxy, (cluster_ip, port), a, b
    finally:
        proxy.stop()


def test_udp_port_forwards_and_replies_come_from_the_service_address(
    rig: tuple[LocalServiceProxy, tuple[str, int], UdpEcho, UdpEcho],
) -> None:
    proxy, address, a, _ = rig
    assert proxy.listening("UDP") == [address]
    assert proxy.listening() == [address]  # the TCP port of the same number, beside it
    assert proxy.endpoints("vm-calls", address[1], "UDP") == [(a.sock.getsockname()[0], a.port)]
    with client(address[0]) as one, client(address[0]) as two:
        assert ask(one, address) == ("primary hi", address)
        assert ask(two, address, "ho") == ("primary ho", address)
        assert ask(one, address, "again") == ("primary again", address)
    # Two clients, two flows: the pod saw two distinct source ports, the first one twice.
    assert len(set(a.seen)) == 2 and len(a.seen) == 3


def test_a_flip_moves_every_flow_at_once_even_from_a_fixed_source_port(
    rig: tuple[LocalServiceProxy, tuple[str, int], UdpEcho, UdpEcho],
) -> None:
    """kube-proxy deletes the conntrack entries of a UDP endpoint that leaves the Service: a
    PBX that sends every INVITE from one port reaches the new member with its next datagram."""
    proxy, address, a, b = rig
    proxy.udp_flow_idle = 60.0  # only affects listeners started later; this one idles at 0.3 s
    with client(address[0]) as pbx:
        assert ask(pbx, address)[0] == "primary hi"
        me = pbx.getsockname()
        assert proxy.udp_flows()[me] == a.sock.getsockname()
        proxy.apply_service(service(address[0], "secondary", address[1]))
        assert me not in proxy.udp_flows()  # dropped by the flip itself, not by a datagram
        assert ask(pbx, address, "next")[0] == "secondary next"
        assert proxy.udp_flows()[me] == b.sock.getsockname()


def test_a_label_change_alone_moves_the_flow(
    rig: tuple[LocalServiceProxy, tuple[str, int], UdpEcho, UdpEcho], prefix: str
) -> None:
    """The selector stays; the pod stops matching it (a fenced member relabelled)."""
    proxy, address, a, b = rig
    with client(address[0]) as pbx:
        assert ask(pbx, address)[0] == "primary hi"
        proxy.apply_pod(pod("vm-primary", prefix + "2", "fenced", a.port))
        proxy.apply_pod(pod("vm-secondary", prefix + "3", "primary", b.port))
        assert ask(pbx, address, "next")[0] == "secondary next"


def test_an_idle_flow_is_forgotten(
    rig: tuple[LocalServiceProxy, tuple[str, int], UdpEcho, UdpEcho],
) -> None:
    proxy, address, a, _ = rig
    with client(address[0]) as sock:
        assert ask(sock, address)[0] == "primary hi"
        me = sock.getsockname()
        deadline = time.monotonic() + 5
        while me in proxy.udp_flows():
            assert time.monotonic() < deadline, "the idle flow was never forgotten"
            time.sleep(0.02)
        assert ask(sock, address, "later")[0] == "primary later"
    assert len(set(a.seen)) == 2  # a new flow, a new source port at the pod


def test_a_flow_to_a_pod_that_stops_serving_moves_at_once(
    rig: tuple[LocalServiceProxy, tuple[str, int], UdpEcho, UdpEcho], prefix: str
) -> None:
    proxy, address, a, _ = rig
    proxy.udp_flow_idle = 60.0  # only affects listeners started later; this one idles at 0.3 s
    with client(address[0]) as sock:
        assert ask(sock, address)[0] == "primary hi"
        proxy.apply_service(service(address[0], "secondary", address[1]))
        dead = pod("vm-primary", prefix + "2", "primary", a.port)
        dead["status"] = {"phase": "Failed", "podIP": prefix + "2"}
        proxy.apply_pod(dead)
        assert ask(sock, address, "next")[0] == "secondary next"


def test_no_endpoints_drops_datagrams_and_delete_stops_listening(
    rig: tuple[LocalServiceProxy, tuple[str, int], UdpEcho, UdpEcho],
) -> None:
    proxy, address, _, _ = rig
    proxy.apply_service(service(address[0], "nobody", address[1]))
    with client(address[0]) as sock:
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            ask(sock, address)
    proxy.delete_service("vm-calls")
    assert proxy.listening("UDP") == [] and proxy.listening() == []
