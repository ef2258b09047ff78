"""The whole member side on the sandbox: the local kubelet runs examples/voicemail-pair.yaml
(voicemail + agent processes), the service proxy routes callers, and this test plays the
operator by hand (Leases, labels, selector). Real processes: few steps, deadlines, no sleeps
for time rules beyond polling."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sandbox_mod = pytest.importorskip("pairwarden_testbed.sandbox")
from kubernetes import client, config, utils  # noqa: E402

from pairwarden import GROUP, PLURAL, VERSION  # noqa: E402
from pairwarden.controller.rbac import agent_objects  # noqa: E402
from pairwarden_testbed.localnode import LocalKubelet, LocalServiceProxy  # noqa: E402
from pairwarden_testbed.waiting import eventually  # noqa: E402

NS = "voice"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "voicemail-pair.yaml"
# W = 2 s, R = 0.5 s: an agent cut from the API fences 1.75 s after its last renewal.
SPEC = {
    "members": {"primary": {"podName": "vm-primary"}, "secondary": {"podName": "vm-secondary"}},
    "service": "vm-calls",
    "heartbeat": {"intervalMs": 100, "missedBeforeFailover": 20, "renewalsPerWindow": 4},
}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """The thing may not exist yet: a check that raises is "not yet"."""
    return eventually(check, timeout, what, poll=0.05, tolerate=(Exception,))


class Node:
    def __init__(
        self, kubeconfig: str, kubelet: LocalKubelet, proxy: LocalServiceProxy, sandbox: Any
    ) -> None:
        self.sandbox = sandbox
        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.leases = client.CoordinationV1Api(self.api)
        self.kubelet = kubelet
        self.proxy = proxy

    def lease(self, name: str) -> dict[str, Any]:
        resp = self.leases.read_namespaced_lease(name, NS, _preload_content=False)
        body: dict[str, Any] = json.loads(resp.data)
        return body

    def set_active(self, holder: str, epoch: int) -> None:
        body = self.lease("vm-active")
        body["spec"].update(holderIdentity=holder, leaseTransitions=epoch)
        self.leases.replace_namespaced_lease("vm-active", NS, body)
        member = holder.removeprefix("vm-")
        self.core.patch_namespaced_service(
            "vm-calls", NS,
            {"spec": {"selector": {"app": "voicemail", "pairwarden.io/member": member}}},
        )  # fmt: skip

    def vm_status(self, pod: str) -> dict[str, Any]:
        url = f"http://{self.kubelet.pod_ip(pod)}:8081/status"
        with urllib.request.urlopen(url, timeout=1) as r:
            body: dict[str, Any] = json.loads(r.read())
            return body

    def call(self) -> str:
        svc = self.core.read_namespaced_service("vm-calls", NS).spec
        with socket.create_connection((svc.cluster_ip, svc.ports[0].port), timeout=2) as s:
            s.sendall(b"CALL test\n")
            return s.makefile().readline().strip()


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    with sandbox_mod.Sandbox() as sb:
        kubeconfig = str(sb.kubeconfig_path)
        api = config.new_client_from_config(config_file=kubeconfig)
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": NS}})
        pair = client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL,
            {"apiVersion": "pairwarden.io/v1alpha1", "kind": "FailoverPair",
             "metadata": {"name": "vm"}, "spec": SPEC},
        )  # fmt: skip
        # the agents' identity, as the operator makes it: they act as `vm-agent`
        owner = {"apiVersion": pair["apiVersion"], "kind": "FailoverPair", "name": "vm",
                 "uid": pair["metadata"]["uid"], "controller": True}  # fmt: skip
        for body in agent_objects("vm", owner):
            for subject in body.get("subjects", []):
                subject["namespace"] = NS
            utils.create_from_dict(api, body, namespace=NS)
        leases = client.CoordinationV1Api(api)
        for name in ("vm-primary", "vm-secondary", "vm-active"):
            leases.create_namespaced_lease(NS, {"metadata": {"name": name}, "spec": {}})
        with (
            LocalKubelet(kubeconfig, NS) as kubelet,
            LocalServiceProxy(kubeconfig, NS) as proxy,
        ):
            for doc in yaml.safe_load_all(EXAMPLE.read_text()):
                member = doc["metadata"]["name"].removeprefix("vm-")
                if doc["kind"] == "Pod":
                    doc["metadata"]["labels"]["pairwarden.io/member"] = member
                    core.create_namespaced_pod(NS, doc)
                else:
                    core.create_namespaced_service(NS, doc)
            yield Node(kubeconfig, kubelet, proxy, sb)
        api.close()


def test_pods_run_and_agents_renew_with_their_report(node: Node) -> None:
    for pod in ("vm-primary", "vm-secondary"):

        def running(pod: str = pod) -> Any:
            status = node.core.read_namespaced_pod(pod, NS).status
            ready = [c.ready for c in status.container_statuses or []]
            return status.phase == "Running" and status.pod_ip and ready == [True, True] and status

        status = wait_for(f"{pod} Running with both containers ready", running)
        assert status.pod_ip == node.kubelet.pod_ip(pod)

        def renewed(pod: str = pod) -> Any:
            lease = node.lease(pod)
            up = lease["metadata"].get("annotations", {}).get("pairwarden.io/service") == "up"
            return lease["spec"].get("holderIdentity") == pod and up and lease

        lease = wait_for(f"{pod} renewal", renewed)
        assert lease["spec"]["leaseDurationSeconds"] == 2
        assert lease["metadata"]["annotations"]["pairwarden.io/answering"] == "false"


def test_the_active_member_answers_callers_through_the_service(node: Node) -> None:
    node.set_active("vm-primary", 1)
    assert wait_for("primary answers", lambda: node.call() == "ANSWERED vm-primary 1")
    assert node.call() == "ANSWERED vm-primary 1"
    wait_for(
        "answering reported",
        lambda: (
            node.lease("vm-primary")["metadata"]["annotations"]["pairwarden.io/answering"] == "true"
        ),
    )


def test_a_member_cut_from_the_api_fences_itself_within_the_window(node: Node) -> None:
    link = node.kubelet.link("vm-primary")
    cut_at = time.monotonic()
    link.cut()
    try:
        wait_for("primary fenced", lambda: not node.vm_status("vm-primary")["answering"], 5)
        assert time.monotonic() - cut_at < 2.0  # within W - R/2 of the last renewal sent
    finally:
        link.heal()
    # The operator's move while it was away: the secondary is now active, epoch 2.
    node.set_active("vm-secondary", 2)
    assert wait_for("secondary answers", lambda: node.call() == "ANSWERED vm-secondary 2")
    wait_for("primary renews again", lambda: node.lease("vm-primary")["metadata"]["annotations"]
             ["pairwarden.io/epoch"] == "2")  # fmt: skip
    assert not node.vm_status("vm-primary")["answering"]


def test_a_crashed_voicemail_is_reported_and_restarted(node: Node) -> None:
    """As the real kubelet reports it: restartCount grown, the death in lastState.terminated
    with the container's id and end time (what the operator's pod watch counts a death by),
    then running again."""

    def voicemail() -> Any:
        statuses = node.core.read_namespaced_pod("vm-primary", NS).status.container_statuses
        return next(c for c in statuses if c.name == "voicemail")

    node.kubelet.kill_container("vm-primary", "voicemail")
    wait_for("restart counted", lambda: voicemail().restart_count >= 1)
    ended = voicemail().last_state.terminated
    assert ended.exit_code == -9 and ended.reason == "Error"
    assert ended.container_id and ended.finished_at is not None
    wait_for("service up again", lambda: node.vm_status("vm-primary")["epoch"] == 2)
    wait_for("running again", lambda: voicemail().state.running is not None)
    assert voicemail().last_state.terminated.container_id == ended.container_id


def test_a_pod_status_refused_in_an_outage_lands_after_it(node: Node) -> None:
    """The API server refuses everything for 3 s while a container dies and restarts: every
    status write of that time fails. As a real kubelet's status manager, the stand-in keeps
    trying until one lands; it gave up after five tries, and the pod stayed as last written
    (here: the old restart count; in `make chaos`, NotReady for good and out of its
    Service's endpoints)."""

    def voicemail() -> Any:
        statuses = node.core.read_namespaced_pod("vm-primary", NS).status.container_statuses
        return next(c for c in statuses if c.name == "voicemail")

    before = voicemail().restart_count
    node.sandbox.inject_fault(status=503, count=10**9, seconds=3.0)
    node.kubelet.kill_container("vm-primary", "voicemail")
    time.sleep(3.5)  # the outage's own length: nothing can be read during it
    wait_for("the restart reported after the outage", lambda: voicemail().restart_count > before)
    wait_for("running again", lambda: voicemail().state.running is not None)


def test_deleting_a_pod_releases_its_lease(node: Node) -> None:
    node.core.delete_namespaced_pod("vm-secondary", NS)

    def released() -> Any:
        lease = node.lease("vm-secondary")
        stopping = lease["metadata"]["annotations"]["pairwarden.io/agent"] == "stopping"
        return stopping and lease

    lease = wait_for("released", released, 10)
    assert not lease["spec"].get("holderIdentity")
    wait_for("pod gone", lambda: not node.kubelet.running("vm-secondary"), 15)
