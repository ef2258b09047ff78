"""Smoke test of the real node (hack/node.sh, issue 19): containerd, kubelet and kube-proxy
beside the real control plane run a pod from the project's own image (built without Docker by
hack/images.sh), a Service's ClusterIP reaches it from the host, a pod reaches the API server
through the `kubernetes` Service, and a UDP caller on one fixed source port follows a
Service to its new pod while the old one still answers (kube-proxy deletes the stale
conntrack entry, as issue 16 needs).

Opt-in (PAIRWARDEN_REAL_NODE=1) until its time inside `make test` is measured. Skips,
naming the reason, when the node cannot run here (not root, binaries not built,
Debian packages missing, PAIRWARDEN_REAL_NODE=0) or the operator image cannot be built."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

# Cold, the image build alone takes minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.realnode, pytest.mark.timeout(2400)]
ROOT = Path(__file__).resolve().parents[2]
IMAGE = "docker.io/pairwarden/operator:dev"


def eventually[T](probe: Callable[[], T | None], timeout: float = 90, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pairwarden_testbed import controlplane
    from pairwarden_testbed import node as realnode

    if os.environ.get("PAIRWARDEN_REAL_NODE") != "1":
        # Opt-in for now: a cold or invalidated image build alone took 20+ min on this
        # machine at load 30 (3 to 5 min when quiet); not yet measured inside `make test`.
        pytest.skip("real-node smoke test is opt-in: set PAIRWARDEN_REAL_NODE=1")
    reason = controlplane.unavailable()
    if reason:
        pytest.skip(reason)
    try:
        realnode.install_packages()
    except realnode.NodeError as exc:
        pytest.skip(f"real node not available: {exc}")
    reason = realnode.unavailable()
    if reason:
        pytest.skip(reason)
    build = subprocess.run(
        ["bash", str(ROOT / "hack" / "images.sh"), "build", "operator"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if build.returncode != 0:
        tail = " | ".join(build.stderr.strip().splitlines()[-4:])
        pytest.skip(f"the operator image cannot be built here (hack/images.sh): {tail}")
    cp = controlplane.ControlPlane(tmp_path_factory.mktemp("k8snode"))
    n = realnode.Node(cp.directory)
    try:
        cp.up()
        n.up()
        n.load_images(targets=["operator"])
        yield n
    finally:
        n.down()
        cp.down()


@pytest.fixture(scope="module")
def core(node: Any) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(node.cp.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


@pytest.fixture
def ns(core: client.CoreV1Api) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name, grace_period_seconds=0)


def pod(name: str, labels: dict[str, str], command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "c", "image": IMAGE, "imagePullPolicy": "Never", "command": command}
            ],
            **spec,
        },
    }


def ready(core: client.CoreV1Api, ns: str, name: str) -> bool:
    status = core.read_namespaced_pod(name, ns).status
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def test_node_is_ready_and_untainted(node: Any, core: client.CoreV1Api) -> None:
    obj = core.read_node(node.name)
    conditions = {c.type: c.status for c in obj.status.conditions}
    assert conditions["Ready"] == "True"
    assert not obj.spec.taints
    assert obj.status.node_info.container_runtime_version.startswith("containerd://1.6")
    assert obj.status.node_info.kubelet_version == "v1.20.2"


def test_a_project_image_answers_through_a_cluster_ip(core: client.CoreV1Api, ns: str) -> None:
    web = pod("web", {"app": "web"}, ["python3", "-m", "http.server", "8080"])
    core.create_namespaced_pod(ns, web)
    svc = core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    eventually(lambda: ready(core, ns, "web"), what="pod web Ready")
    ip = svc.spec.cluster_ip

    def get() -> int | None:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://{ip}/", timeout=2) as resp,
        ):
            return int(resp.status)
        return None

    assert eventually(get, 60, f"HTTP through ClusterIP {ip}") == 200


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(
    core: client.CoreV1Api, ns: str
) -> None:
    # As an in-cluster client finds it: KUBERNETES_SERVICE_HOST/PORT, the ServiceAccount's
    # CA and token.
    probe = (
        "import os, ssl, urllib.request\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount/'\n"
        "ctx = ssl.create_default_context(cafile=sa + 'ca.crt')\n"
        "url = 'https://%s:%s/version' % (os.environ['KUBERNETES_SERVICE_HOST'],"
        " os.environ['KUBERNETES_SERVICE_PORT'])\n"
        "req = urllib.request.Request(url, headers={'Authorization': 'Bearer '"
        " + open(sa + 'token').read()})\n"
        "print(urllib.request.urlopen(req, context=ctx, timeout=10).read())\n"
    )
    core.create_namespaced_pod(
        ns, pod("api", {"app": "api"}, ["python3", "-c", probe], restartPolicy="Never")
    )

    def phase() -> str | None:
        p = core.read_namespaced_pod("api", ns).status.phase
        return p if p in ("Succeeded", "Failed") else None

    assert eventually(phase, 90, "the API probe pod finishes") == "Succeeded"


ECHO = (
    "import os, socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', 5060))\n"
    "while True:\n"
    "    data, peer = s.recvfrom(100); s.sendto(os.environ['HOSTNAME'].encode(), peer)\n"
)


def test_a_udp_caller_on_one_port_follows_the_service_to_the_new_pod(
    core: client.CoreV1Api, ns: str
) -> None:
    for name in ("vm-a", "vm-b"):
        core.create_namespaced_pod(
            ns, pod(name, {"app": "vm", "member": name}, ["python3", "-c", ECHO])
        )
    svc = core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "sip"},
            "spec": {
                "selector": {"app": "vm", "member": "vm-a"},
                "ports": [{"port": 5060, "targetPort": 5060, "protocol": "UDP"}],
            },
        },
    )
    for name in ("vm-a", "vm-b"):
        eventually(lambda name=name: ready(core, ns, name), what=f"pod {name} Ready")  # type: ignore[misc]
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("0.0.0.0", 0))  # one source port for the whole test
    caller.settimeout(0.3)
    target = (svc.spec.cluster_ip, 5060)

    def call() -> str | None:
        try:
            caller.sendto(b"INVITE", target)
            return caller.recv(100).decode()
        except OSError:  # timeout, or REJECT while the Service has no endpoint
            return None

    try:
        assert eventually(lambda: call() == "vm-a", 60, "vm-a answers through the ClusterIP")
        # Switch the Service in one write; vm-a keeps running and answering its own address,
        # and the caller keeps sending, so only a deleted conntrack entry lets it reach vm-b.
        core.patch_namespaced_service(
            "sip", ns, {"spec": {"selector": {"app": "vm", "member": "vm-b"}}}
        )
        t0 = time.monotonic()
        answers: list[str | None] = []

        def moved() -> bool:
            answers.append(call())
            return answers[-1] == "vm-b"

        eventually(moved, 60, f"the caller reaches vm-b (answers: {answers[-5:]})")
        took = time.monotonic() - t0
        assert all(call() == "vm-b" for _ in range(5))
        print(f"fixed-port UDP caller moved to the new pod in {took:.2f}s")
    finally:
        caller.close()
