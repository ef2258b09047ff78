"""The active Lease, the fencing token of every flip: one conditional patch when it can, a
read and a replace at its resourceVersion when the patch's test fails, never a lost epoch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as sync_client

from pairwarden.api.models import Transition
from pairwarden.controller import leases
from pairwarden.controller.observations import active_sighting
from pairwarden.kube import async_api_client
from pairwarden.protocol import (
    ANNOTATION_ACTIVE_CONTACT,
    ANNOTATION_ACTIVE_MEMBER,
    ANNOTATION_ACTIVE_MOVE,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CONTACTS = {"primary": "10.0.0.6:5060", "secondary": "10.0.0.7:5060"}
OWNER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-1"}


def write(
    api: Any,
    namespace: str,
    epoch: int,
    expected: int,
    member: str = "secondary",
    move: Transition | None = None,
) -> Any:
    return leases.write_active(
        api, namespace, "vm", holder=f"vm-{member}", member=member, epoch=epoch,
        expected_epoch=expected, now=NOW, contact=CONTACTS[member], move=move,
    )  # fmt: skip


def moved(epoch: int, to: str = "secondary") -> Transition:
    return Transition.model_validate(
        {"time": NOW, "from": "primary", "to": to, "cause": "PodGone", "epoch": epoch,
         "durationSeconds": 2.5}
    )  # fmt: skip


def active(api_client: sync_client.ApiClient, namespace: str) -> Any:
    return sync_client.CoordinationV1Api(api_client).read_namespaced_lease("vm-active", namespace)


async def test_a_flip_is_one_conditional_patch(
    sandbox: Any, sandbox_only: Any, api_client: sync_client.ApiClient, namespace: str
) -> None:
    api = await async_api_client(str(sandbox.kubeconfig_path))
    try:
        await leases.ensure_leases(api, namespace, "vm", 3, OWNER)
        sandbox.reset_stats()
        await write(api, namespace, epoch=1, expected=0)
        requests = sandbox.stats()["requests"]
        assert requests == {"patch leases": 1}, requests  # no read before the write
        lease = active(api_client, namespace)
        assert (lease.spec.holder_identity, lease.spec.lease_transitions) == ("vm-secondary", 1)
        assert lease.metadata.annotations[ANNOTATION_ACTIVE_MEMBER] == "secondary"
        # The holder's contact travels in the same write: never one holder, another's contact.
        assert lease.metadata.annotations[ANNOTATION_ACTIVE_CONTACT] == "10.0.0.7:5060"

        await write(api, namespace, epoch=1, expected=0)  # an interrupted move, retried
        assert active(api_client, namespace).spec.lease_transitions == 1
        with pytest.raises(leases.EpochConflict):  # someone else moved it on meanwhile
            await write(api, namespace, epoch=2, expected=0, member="primary")
        assert active(api_client, namespace).spec.holder_identity == "vm-secondary"
    finally:
        await api.close()


async def test_a_lease_without_the_member_annotation_is_still_handed_over(
    sandbox: Any, api_client: sync_client.ApiClient, namespace: str
) -> None:
    """Active Leases created before the annotation existed take the read-and-replace path."""
    body = {
        "metadata": {"name": "vm-active", "labels": {"pairwarden.io/pair": "vm"}},
        "spec": {"holderIdentity": "", "leaseTransitions": 0},
    }
    sync_client.CoordinationV1Api(api_client).create_namespaced_lease(namespace, body)
    api = await async_api_client(str(sandbox.kubeconfig_path))
    try:
        await write(api, namespace, epoch=1, expected=0, member="primary")
    finally:
        await api.close()
    lease = active(api_client, namespace)
    assert (lease.spec.holder_identity, lease.spec.lease_transitions) == ("vm-primary", 1)
    assert lease.metadata.annotations[ANNOTATION_ACTIVE_MEMBER] == "primary"
    assert lease.metadata.annotations[ANNOTATION_ACTIVE_CONTACT] == "10.0.0.6:5060"


async def test_the_move_rides_in_the_same_request_and_reads_back(
    sandbox: Any, sandbox_only: Any, api_client: sync_client.ApiClient, namespace: str
) -> None:
    """The transition a flip makes is in the flip's one request (an operator killed right
    after it leaves it for the next); a revoke's write clears it; the read-and-replace path
    carries it too."""
    api = await async_api_client(str(sandbox.kubeconfig_path))
    try:
        await leases.ensure_leases(api, namespace, "vm", 3, OWNER)
        sandbox.reset_stats()
        written = await write(api, namespace, epoch=1, expected=0, move=moved(1))
        assert sandbox.stats()["requests"] == {"patch leases": 1}
        assert active_sighting(written).move == moved(1)
        lease = sync_client.ApiClient().sanitize_for_serialization(active(api_client, namespace))
        assert active_sighting(lease).move == moved(1)  # as the watch delivers it

        await write(api, namespace, epoch=2, expected=1, member="primary")  # a revoke-like write
        assert active(api_client, namespace).metadata.annotations[ANNOTATION_ACTIVE_MOVE] == ""
        # A test that fails (the Lease is already at 3) takes the read-and-replace path.
        await write(api, namespace, epoch=3, expected=2, move=moved(3))
        again = await write(api, namespace, epoch=3, expected=2, move=moved(3))
        assert active_sighting(again).move == moved(3)
    finally:
        await api.close()


@pytest.mark.parametrize(
    "text", ["", "{", "[]", '{"from": "primary"}', '{"time": "yesterday", "to": "x"}']
)
def test_an_unreadable_move_is_no_move(text: str) -> None:
    """Anyone may write the Lease: what it carries is checked, never trusted to be whole."""
    assert leases.parse_move({ANNOTATION_ACTIVE_MOVE: text}) is None
    assert leases.parse_move(None) is None
