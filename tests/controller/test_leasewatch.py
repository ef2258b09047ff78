"""The direct member-Lease watch against the sandbox: list, follow, and resume after 410."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client as sync_client

from pairwarden.clock import ManualClock
from pairwarden.controller import leasewatch
from pairwarden.controller.observations import ObservationBook
from pairwarden.kube import async_api_client
from pairwarden.protocol import MemberReport
from pairwarden_testbed.waiting import eventually_async


def lease(member: str, renew: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": f"vm-{member}",
            "labels": {"pairwarden.io/pair": "vm", "pairwarden.io/member": member},
            "annotations": MemberReport(service_up=True).to_annotations(),
        },
        "spec": {"holderIdentity": f"vm-{member}", "renewTime": renew},
    }


async def test_renewals_are_stamped_with_the_operators_clock(
    sandbox: Any, sandbox_only: Any, api_client: sync_client.ApiClient, namespace: str
) -> None:
    leases = sync_client.CoordinationV1Api(api_client)
    leases.create_namespaced_lease(namespace, lease("primary", "2026-01-01T00:00:00.000000Z"))
    book, clock = ObservationBook(), ManualClock(monotonic=10.0)
    api = await async_api_client(str(sandbox.kubeconfig_path))
    task = asyncio.create_task(leasewatch.watch(api, namespace, book, clock))
    try:
        pair = book.pair(namespace, "vm")
        await eventually_async(lambda: "primary" in pair.members)  # listed
        assert book.hearing(namespace)  # the reconciler may judge the members now
        assert pair.members["primary"].last_seen == 10.0
        clock.advance(5)
        renewed = lease("primary", "2026-01-01T00:00:05.000000Z")
        leases.replace_namespaced_lease("vm-primary", namespace, renewed)
        await eventually_async(lambda: pair.members["primary"].last_seen == 15.0)  # followed
        sandbox.compact()  # the next resume is too old: 410, then a fresh list
        clock.advance(5)
        leases.create_namespaced_lease(namespace, lease("secondary", "2026-01-01T00:00:09Z"))
        await eventually_async(lambda: "secondary" in pair.members)
        assert pair.members["secondary"].last_seen == 20.0
        assert pair.members["primary"].last_seen == 15.0  # a re-list is not a renewal
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await api.close()
