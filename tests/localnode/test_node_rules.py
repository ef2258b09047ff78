"""Pure rules of the node on a real control plane: routing by EndpointSlices, the pod's
ServiceAccount token volume, the Node and Lease a kubelet writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pairwarden_testbed.credentials import SA_MOUNT, mounted_token_secret, projected_token
from pairwarden_testbed.localnode.proxy import slice_backends
from pairwarden_testbed.localnode.realnode import (
    NODE_LEASE_NAMESPACE,
    lease_body,
    ready_status,
)


def _slice(endpoints: list[dict[str, Any]], ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"addressType": "IPv4", "endpoints": endpoints, "ports": ports}


def test_slices_route_to_ready_endpoints_of_the_named_port() -> None:
    calls = {"name": "calls", "port": 5070, "targetPort": 5070, "protocol": "TCP"}
    sip = {"name": "sip", "port": 5060, "protocol": "UDP"}
    slices = [
        _slice(
            [
                {"addresses": ["127.5.5.2"], "conditions": {"ready": True}},
                {"addresses": ["127.5.5.3"], "conditions": {"ready": False}},
                {"addresses": ["127.5.5.4"]},  # ready unset: ready, as the API defines it
            ],
            [
                {"name": "calls", "port": 5070, "protocol": "TCP"},
                {"name": "sip", "port": 5060, "protocol": "UDP"},
            ],
        ),
        _slice([{"addresses": ["127.5.5.9"]}], [{"name": "other", "port": 1}]),
    ]
    assert slice_backends(calls, slices) == [("127.5.5.2", 5070), ("127.5.5.4", 5070)]
    assert slice_backends(sip, slices) == [("127.5.5.2", 5060), ("127.5.5.4", 5060)]
    assert slice_backends({"name": "calls", "protocol": "UDP"}, slices) == []
    assert slice_backends(calls, []) == []


def test_an_unnamed_service_port_matches_the_unnamed_slice_port() -> None:
    slices = [_slice([{"addresses": ["127.5.5.2"]}], [{"port": 8080, "protocol": "TCP"}])]
    assert slice_backends({"port": 80, "targetPort": 8080}, slices) == [("127.5.5.2", 8080)]


def test_token_secret_is_the_volume_mounted_at_the_serviceaccount_path() -> None:
    pod = {
        "spec": {
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "default-token-x1", "secret": {"secretName": "default-token-x1"}},
            ],
            "containers": [
                {"name": "a", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {
                    "name": "b",
                    "volumeMounts": [
                        {"name": "default-token-x1", "mountPath": SA_MOUNT, "readOnly": True}
                    ],
                },
            ],
        }
    }
    assert mounted_token_secret(pod["spec"]) == "default-token-x1"
    assert mounted_token_secret(pod["spec"], "b") == "default-token-x1"
    assert mounted_token_secret(pod["spec"], "a") is None  # a container mounting none has none
    assert mounted_token_secret({"containers": [{"name": "a"}]}) is None


def test_a_projected_token_at_the_serviceaccount_path_is_requested_for_its_pod() -> None:
    """automountServiceAccountToken off, a projected token mounted by one container (the
    agent's): the node requests a token bound to the pod, as a kubelet does."""
    projected = {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}
    pod = {
        "spec": {
            "automountServiceAccountToken": False,
            "volumes": [{"name": "api-token", "projected": projected}],
            "containers": [
                {"name": "voicemail"},
                {"name": "agent", "volumeMounts": [{"name": "api-token", "mountPath": SA_MOUNT}]},
            ],
        }
    }
    assert projected_token(pod["spec"]) == 3607
    assert projected_token(pod["spec"], "agent") == 3607
    assert projected_token(pod["spec"], "voicemail") is None  # the voicemail gets no token
    assert mounted_token_secret(pod["spec"]) is None
    elsewhere = {"name": "agent", "volumeMounts": [{"name": "api-token", "mountPath": "/t"}]}
    assert projected_token({**pod["spec"], "containers": [elsewhere]}) is None


def test_node_status_is_ready_and_the_lease_is_the_nodes_own() -> None:
    now = datetime(2026, 11, 30, 6, 0, 0, 123456, tzinfo=UTC)
    status = ready_status(now)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["lastHeartbeatTime"] == "2026-11-30T06:00:00Z"
    assert status["allocatable"]["pods"] == "110"
    lease = lease_body("n1", now)
    assert lease["metadata"] == {"name": "n1", "namespace": NODE_LEASE_NAMESPACE}
    assert lease["spec"]["holderIdentity"] == "n1"
    assert lease["spec"]["renewTime"] == "2026-11-30T06:00:00.123456Z"
