"""Per pair, a NetworkPolicy over its member pods: the file API from the pair's replication Jobs
only, metrics from the scraper, the callers' ports (the Service's) from anywhere."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as sync_client

from pairwarden.clock import ManualClock
from pairwarden.controller import jobs, netpol
from pairwarden.controller.netpol import PolicySettings
from pairwarden.kube import async_api_client

OWNER = {"apiVersion": "pairwarden.io/v1", "kind": "FailoverPair", "name": "vm", "uid": "u-1"}
SERVICE = {
    "spec": {
        "ports": [
            {"name": "calls", "port": 5070, "targetPort": 5070, "protocol": "TCP"},
            {"name": "sip", "port": 5060, "targetPort": "sip", "protocol": "UDP"},
        ]
    }
}


def _rule_for(spec: dict[str, Any], port: int) -> dict[str, Any]:
    return next(r for r in spec["ingress"] if {"protocol": "TCP", "port": port} in r["ports"])


def test_the_file_api_is_admitted_from_this_pairs_replication_jobs_only() -> None:
    spec = netpol.policy_spec("vm", netpol.caller_ports(SERVICE), PolicySettings())
    files = _rule_for(spec, 8082)
    assert files["ports"] == [{"protocol": "TCP", "port": 8082}]  # and no other port
    (peer,) = files["from"]
    assert peer == {"podSelector": {"matchLabels": {"pairwarden.io/pair": "vm", **_job_label()}}}
    assert "namespaceSelector" not in peer  # the pair's own namespace only
    # the selected pods are the pair's members, which Job pods (no member label) are not
    selector = spec["podSelector"]
    assert selector["matchLabels"] == {"pairwarden.io/pair": "vm"}
    assert selector["matchExpressions"] == [
        {"key": "pairwarden.io/member", "operator": "In", "values": ["primary", "secondary"]}
    ]
    assert spec["policyTypes"] == ["Ingress"]


def _job_label() -> dict[str, str]:
    """What a replication Job's pod carries, read from the Job the operator builds."""
    job = jobs.ReplicationJob("ns", "vm", "http://a", "http://b", "vm-replication-token", "img")
    labels = jobs.job_body("vm-replicate-1", job)["spec"]["template"]["metadata"]["labels"]
    return {netpol.LABEL_REPLICATION: labels[netpol.LABEL_REPLICATION]}


def test_metrics_from_anywhere_unless_peers_are_given() -> None:
    anywhere = _rule_for(netpol.policy_spec("vm", [], PolicySettings()), 8080)
    assert "from" not in anywhere
    monitoring = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    given = _rule_for(
        netpol.policy_spec("vm", [], PolicySettings(metrics_from=(monitoring,))), 8080
    )
    assert given["from"] == [monitoring]


def test_the_peer_link_is_admitted_from_this_pairs_members_only() -> None:
    spec = netpol.policy_spec("vm", netpol.caller_ports(SERVICE), PolicySettings(peer_port=9083))
    link = _rule_for(spec, 9083)
    assert link["ports"] == [{"protocol": "TCP", "port": 9083}]
    (peer,) = link["from"]
    assert peer == {"podSelector": spec["podSelector"]}  # the members, not the Jobs
    assert "namespaceSelector" not in peer


def test_the_callers_ports_are_the_services_target_ports_from_anywhere() -> None:
    spec = netpol.policy_spec("vm", netpol.caller_ports(SERVICE), PolicySettings())
    callers = spec["ingress"][-1]
    assert "from" not in callers
    assert callers["ports"] == [
        {"protocol": "TCP", "port": 5070},
        {"protocol": "UDP", "port": "sip"},  # a named targetPort stays a name
    ]
    # no targetPort: the port itself; no protocol: TCP; repeats once
    bare = {"spec": {"ports": [{"port": 5070}, {"port": 5070, "targetPort": 5070}]}}
    assert netpol.caller_ports(bare) == [{"protocol": "TCP", "port": 5070}]
    assert netpol.caller_ports(None) == []


class _Counting:
    """Counts the API requests an ApiClient sends (by method and path)."""

    def __init__(self, api: Any) -> None:
        self.calls: list[tuple[str, str]] = []
        original = api.request

        async def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, url))
            return await original(method, url, *args, **kwargs)

        api.request = request


@pytest.fixture
def core(api_client: sync_client.ApiClient) -> sync_client.CoreV1Api:
    return sync_client.CoreV1Api(api_client)


def _service(core: sync_client.CoreV1Api, namespace: str, ports: list[dict[str, Any]]) -> None:
    body = {"metadata": {"name": "vm-calls"}, "spec": {"selector": {"app": "vm"}, "ports": ports}}
    core.create_namespaced_service(namespace, body)


async def test_made_once_kept_and_followed_when_the_service_gains_a_port(
    sandbox: Any, api_client: sync_client.ApiClient, core: sync_client.CoreV1Api, namespace: str
) -> None:
    clock = ManualClock()
    policies = netpol.Policies(PolicySettings(), clock)
    net = sync_client.NetworkingV1Api(api_client)
    api = await async_api_client(str(sandbox.kubeconfig_path))
    try:
        await policies.ensure(api, namespace, "vm", "vm-calls", OWNER)  # no Service yet
        assert not net.list_namespaced_network_policy(namespace).items
        # looked for again soon, not in 5 min, and the reconciler is told when
        assert policies.due_in(namespace, "vm") == netpol.RETRY_SECONDS
        clock.advance(netpol.RETRY_SECONDS)
        _service(core, namespace, [{"name": "calls", "port": 5070, "protocol": "TCP"}])
        await policies.ensure(api, namespace, "vm", "vm-calls", OWNER)
        made = api_client.sanitize_for_serialization(
            net.read_namespaced_network_policy("vm-members", namespace)
        )
        assert made["metadata"]["ownerReferences"][0]["uid"] == "u-1"
        assert made["spec"]["ingress"][-1]["ports"] == [{"protocol": "TCP", "port": 5070}]
        assert policies.due_in(namespace, "vm") == netpol.RECHECK_SECONDS

        counting = _Counting(api.rest_client)
        await policies.ensure(api, namespace, "vm", "vm-calls", OWNER)  # within the recheck
        assert counting.calls == []
        clock.advance(netpol.RECHECK_SECONDS)
        await policies.ensure(api, namespace, "vm", "vm-calls", OWNER)  # unchanged: read only
        assert [method for method, _ in counting.calls] == ["GET", "GET"]

        sip = {"name": "sip", "port": 5060, "protocol": "UDP"}
        ports = [{"name": "calls", "port": 5070, "protocol": "TCP"}, sip]
        core.patch_namespaced_service("vm-calls", namespace, {"spec": {"ports": ports}})
        clock.advance(netpol.RECHECK_SECONDS)
        await policies.ensure(api, namespace, "vm", "vm-calls", OWNER)
    finally:
        await api.close()
    ports = net.read_namespaced_network_policy("vm-members", namespace).spec.ingress[-1].ports
    assert [(p.protocol, p.port) for p in ports] == [("TCP", 5070), ("UDP", 5060)]


async def test_a_users_policy_of_the_same_name_is_left_alone(
    sandbox: Any, api_client: sync_client.ApiClient, core: sync_client.CoreV1Api, namespace: str
) -> None:
    _service(core, namespace, [{"name": "calls", "port": 5070, "protocol": "TCP"}])
    net = sync_client.NetworkingV1Api(api_client)
    theirs = {"metadata": {"name": "vm-members"}, "spec": {"podSelector": {}}}
    net.create_namespaced_network_policy(namespace, theirs)
    api = await async_api_client(str(sandbox.kubeconfig_path))
    try:
        await netpol.Policies(PolicySettings(), ManualClock()).ensure(
            api, namespace, "vm", "vm-calls", OWNER
        )
    finally:
        await api.close()
    kept = net.read_namespaced_network_policy("vm-members", namespace)
    assert kept.spec.ingress is None and not kept.metadata.owner_references


async def test_a_refused_write_is_logged_and_tried_again_later_never_raised(
    sandbox: Any,
    sandbox_only: Any,
    core: sync_client.CoreV1Api,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _service(core, namespace, [{"name": "calls", "port": 5070, "protocol": "TCP"}])
    clock = ManualClock()
    policies = netpol.Policies(PolicySettings(), clock)
    sandbox_only.inject_fault("create", "networkpolicies", status=403, namespace=namespace)
    api = await async_api_client(str(sandbox.kubeconfig_path))
    try:
        await policies.ensure(api, namespace, "vm", "vm-calls", OWNER)
        assert "refused" in caplog.text
        clock.advance(netpol.RECHECK_SECONDS)
        await policies.ensure(api, namespace, "vm", "vm-calls", OWNER)
    finally:
        await api.close()
    assert sync_client.NetworkingV1Api(core.api_client).read_namespaced_network_policy(
        "vm-members", namespace
    )
