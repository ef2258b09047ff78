"""On the real 1.20 control plane, as the chart's operator identity (its rendered RBAC, not
admin): the operator may read the callers' Service and make the pair's NetworkPolicy, the
server stores it as built (so a recheck only reads), and the agent's identity may not touch
NetworkPolicies at all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import CHART_NAMESPACE, retarget
from kubernetes import client, config, utils

from pairwarden.clock import ManualClock
from pairwarden.controller import netpol, rbac
from pairwarden.kube import async_api_client
from pairwarden_testbed.localcluster import Chart

PORTS = [
    {"name": "calls", "port": 5070, "protocol": "TCP"},
    {"name": "sip", "port": 5060, "protocol": "UDP"},
]


async def _ensure_twice(kubeconfig: Path, namespace: str, owner: dict[str, Any]) -> list[str]:
    """Make the policy, then recheck it; the methods the recheck sent."""
    clock = ManualClock()
    policies = netpol.Policies(netpol.PolicySettings(), clock)
    api = await async_api_client(str(kubeconfig))
    sent: list[str] = []
    try:
        await policies.ensure(api, namespace, "vm", "vm-calls", owner)
        original = api.rest_client.request

        async def counting(method: str, *args: Any, **kwargs: Any) -> Any:
            sent.append(method)
            return await original(method, *args, **kwargs)

        api.rest_client.request = counting
        clock.advance(netpol.RECHECK_SECONDS)
        await policies.ensure(api, namespace, "vm", "vm-calls", owner)
    finally:
        await api.close()
    return sent


async def _agent_identity(kubeconfig: Path, namespace: str, owner: dict[str, Any]) -> None:
    api = await async_api_client(str(kubeconfig))
    try:
        assert await rbac.ensure_agent_rbac(api, namespace, "vm", owner)
    finally:
        await api.close()


def test_the_charts_operator_identity_keeps_a_pairs_network_policy(
    plane: Any,
    admin: Any,
    make_namespace: Callable[[str], str],
    chart: Chart,
    tmp_path: Path,
) -> None:
    core, net = client.CoreV1Api(admin), client.NetworkingV1Api(admin)
    namespace = make_namespace("np")
    for obj in retarget(list(chart.rbac), CHART_NAMESPACE, namespace):
        utils.create_from_dict(admin, obj, namespace=namespace)
    core.create_namespaced_service(
        namespace, {"metadata": {"name": "vm-calls"}, "spec": {"ports": PORTS}}
    )
    # a real owner, so the garbage collector keeps what it owns (a FailoverPair in use)
    held = core.create_namespaced_config_map(namespace, {"metadata": {"name": "vm-owner"}})
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "vm-owner"}
    owner |= {"uid": held.metadata.uid, "controller": True}
    operator = plane.serviceaccount_kubeconfig(
        namespace, chart.operator_spec["serviceAccountName"], tmp_path / "operator.kubeconfig"
    )
    sent = asyncio.run(_ensure_twice(operator, namespace, owner))
    made = admin.sanitize_for_serialization(
        net.read_namespaced_network_policy("vm-members", namespace)
    )
    assert made["spec"] == netpol.policy_spec(
        "vm", netpol.caller_ports({"spec": {"ports": PORTS}}), netpol.PolicySettings()
    )
    assert sent == ["GET", "GET"]  # stored as built: the recheck wrote nothing

    # A member's agent identity as the operator makes it (`<pair>-agent-<member>`, its Role).
    asyncio.run(_agent_identity(operator, namespace, owner))
    agent = plane.serviceaccount_kubeconfig(
        namespace, rbac.agent_account("vm", "primary"), tmp_path / "agent.kubeconfig"
    )
    as_agent = config.new_client_from_config(config_file=str(agent))
    with as_agent, pytest.raises(client.ApiException) as refused:
        client.NetworkingV1Api(as_agent).delete_namespaced_network_policy("vm-members", namespace)
    assert refused.value.status == 403
