"""Scenarios for a real cluster (kind via `make e2e`, or any cluster in PAIRWARDEN_E2E_CLUSTER),
driven only through the API and `kubectl exec`, as a platform engineer would: a manual
failover and failback, the voicemail process exiting, and a clean stop of the active pod.
What callers reach is read from the Service's EndpointSlices, which kube-proxy routes by.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.controller.rbac import agent_account
from pairwarden.protocol import ANNOTATION_REQUEST, ANNOTATION_REQUEST_ID, LABEL_MEMBER, MEMBERS
from pairwarden_testbed.localcluster import EXAMPLES, failover_pair, wait_until

pytestmark = pytest.mark.cluster
KUBECONFIG = os.environ.get("PAIRWARDEN_E2E_CLUSTER", "")
NAMESPACE = os.environ.get("PAIRWARDEN_E2E_NAMESPACE", "voice")
# Empty: each member's own `vm-agent-<member>`, which the operator makes (controller/rbac.py).
AGENT_SERVICE_ACCOUNT = os.environ.get("PAIRWARDEN_E2E_AGENT_SA", "")


class Remote:
    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.kubeconfig, self.namespace = kubeconfig, namespace
        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.discovery = client.DiscoveryV1Api(self.api)

    def apply_pair(self) -> None:
        """The pair first, as the README's quickstart: its members run as the ServiceAccount the
        operator makes for it, and admission refuses a pod whose account does not exist yet."""
        pair = failover_pair(interval_ms=200, missed=10)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, pair)
        name = pair["metadata"]["name"]
        accounts = {m: AGENT_SERVICE_ACCOUNT or agent_account(name, m) for m in MEMBERS}
        for account in accounts.values():
            wait_until(lambda a=account: self._has_account(a), 90, f"ServiceAccount {account}")
        for doc in yaml.safe_load_all(Path(EXAMPLES / "voicemail-pair.yaml").read_text()):
            if doc["kind"] == "Pod":
                doc["spec"]["serviceAccountName"] = accounts[doc["metadata"]["labels"]["member"]]
                self.core.create_namespaced_pod(self.namespace, doc)
            elif doc["kind"] == "Service":
                self.core.create_namespaced_service(self.namespace, doc)

    def _has_account(self, name: str) -> bool:
        try:
            self.core.read_namespaced_service_account(name, self.namespace)
        except client.ApiException:
            return False
        return True

    def status(self) -> dict[str, Any]:
        pair = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, "vm"
        )
        return dict(pair.get("status") or {})

    def routed(self) -> str | None:
        member = self.core.read_namespaced_service("vm-calls", self.namespace).spec.selector.get(
            LABEL_MEMBER
        )
        return None if member in (None, "none") else str(member)

    def endpoint_ips(self) -> set[str]:
        slices = self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector="kubernetes.io/service-name=vm-calls"
        )
        return {
            address
            for s in slices.items
            for e in s.endpoints or []
            if (e.conditions is None or e.conditions.ready)
            for address in e.addresses
        }

    def pod_ip(self, member: str) -> str:
        return str(self.core.read_namespaced_pod(f"vm-{member}", self.namespace).status.pod_ip)

    def request(self, action: str) -> None:
        annotations = {ANNOTATION_REQUEST: action, ANNOTATION_REQUEST_ID: uuid.uuid4().hex[:12]}
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, "vm",
            {"metadata": {"annotations": annotations}},
        )  # fmt: skip

    def exec_kill(self, member: str, container: str) -> None:
        subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, "-n", self.namespace, "exec",
             f"vm-{member}", "-c", container, "--", "kill", "1"],
            check=True, capture_output=True,
        )  # fmt: skip

    def serving(self, member: str) -> bool:
        return (
            self.routed() == member
            and self.status().get("activeMember") == member
            and self.endpoint_ips() == {self.pod_ip(member)}
        )


@pytest.fixture
def remote() -> Iterator[Remote]:
    if not KUBECONFIG:
        pytest.skip("set PAIRWARDEN_E2E_CLUSTER to a kubeconfig (make e2e does, on kind)")
    here = Remote(KUBECONFIG, NAMESPACE)
    here.apply_pair()
    wait_until(lambda: here.serving("primary"), timeout=180, poll=1)
    yield here
    here.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "vm")
    for name in ("vm-primary", "vm-secondary"):
        here.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
    here.core.delete_namespaced_service("vm-calls", NAMESPACE)
    wait_until(lambda: not here.core.list_namespaced_pod(NAMESPACE).items, 120, poll=1)


def test_manual_failover_and_failback(remote: Remote) -> None:
    remote.request("failover")
    wait_until(lambda: remote.serving("secondary"), timeout=30, poll=0.5)
    assert remote.status()["lastTransition"]["cause"] == "ManualFailover"
    remote.request("failback")
    wait_until(lambda: remote.serving("primary"), timeout=30, poll=0.5)
    assert remote.status()["lastTransition"]["cause"] == "ManualFailback"


def test_voicemail_process_exit_fails_over_at_once(remote: Remote) -> None:
    remote.exec_kill("primary", "voicemail")
    wait_until(lambda: remote.serving("secondary"), timeout=30, poll=0.5)
    assert remote.status()["lastTransition"]["cause"] == "ServiceStopped"


def test_clean_stop_of_the_active_pod_fails_over_at_once(remote: Remote) -> None:
    remote.core.delete_namespaced_pod("vm-primary", NAMESPACE)
    wait_until(lambda: remote.serving("secondary"), timeout=30, poll=0.5)
    assert remote.status()["lastTransition"]["cause"] in ("AgentStopped", "ServiceStopped")
