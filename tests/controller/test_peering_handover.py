"""A restarted operator replaces its pod's earlier processes' entries in kopf's peering object
with its own, in one write, against the API server: the killed process's entry is gone, this
process's entry is there, every other replica's entry is left as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client as sync_client
from tests.sandbox.helpers import install_crd, peering_crd

from pairwarden.controller import peering
from pairwarden.kube import async_api_client

from .test_peering_priority import EARLIER, ENTRY, OWN

NOW = datetime(2026, 12, 7, 14, 18, 30, tzinfo=UTC)
OTHER = "root@pw-operator-0/20261207141821/abc"


async def test_a_restart_replaces_its_predecessors_entry_with_its_own(
    sandbox: Any, api_client: sync_client.ApiClient, namespace: str
) -> None:
    install_crd(api_client, peering_crd("kopfpeerings", "KopfPeering", "Namespaced"))
    custom = sync_client.CustomObjectsApi(api_client)
    api = await async_api_client(str(sandbox.kubeconfig_path))
    try:
        await peering.ensure(api, "pw", [namespace], clusterwide=False)
        status = {EARLIER: ENTRY, OTHER: {**ENTRY, "priority": 0}}
        custom.patch_namespaced_custom_object(
            "kopf.dev", "v1", namespace, "kopfpeerings", "pw", {"status": status}
        )
        gone = await peering.forget_predecessors(
            api, "pw", [namespace], False, OWN, "pw-operator-1", 1, 60, NOW
        )
        assert gone == [EARLIER]
        found = custom.get_namespaced_custom_object(
            "kopf.dev", "v1", namespace, "kopfpeerings", "pw"
        )
        assert found["status"] == {
            OTHER: {**ENTRY, "priority": 0},
            OWN: {"priority": 1, "lifetime": 60, "lastseen": NOW.isoformat()},
        }
        # again, nothing left to hand over: no write
        assert (
            await peering.forget_predecessors(
                api, "pw", [namespace], False, OWN, "pw-operator-1", 1, 60, NOW
            )
            == []
        )
        # no peering object (a namespace without one): nothing to do, no error
        assert (
            await peering.forget_predecessors(
                api, "absent", [namespace], False, OWN, "pw-operator-1", 1, 60, NOW
            )
            == []
        )
    finally:
        await api.close()
