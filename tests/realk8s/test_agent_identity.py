"""Each member's agent identity, as controller/rbac.py makes it, on the real 1.20 kube-apiserver
(issue 25: both members ran as one `<pair>-agent`, so one member could rewrite its peer's
member Lease and forge its heartbeat). A member's token may renew its own Lease and read what
it must; writing the peer's Lease, the active Lease or another pair's is 403."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from pairwarden.controller import rbac
from pairwarden.kube import async_api_client
from pairwarden.protocol import MEMBERS, Member, other
from pairwarden_testbed.waiting import eventually

pytestmark = pytest.mark.realk8s
LEASES = ("vm-primary", "vm-secondary", "vm-active", "other-primary")


def _status(call: Callable[[], object]) -> int:
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


async def _ensure(kubeconfig: str, namespace: str, owner: dict[str, Any]) -> bool:
    api = await async_api_client(kubeconfig)
    try:
        return await rbac.ensure_agent_rbac(api, namespace, "vm", owner)
    finally:
        await api.close()


@pytest.mark.parametrize("member", MEMBERS)
def test_a_members_token_renews_its_own_lease_and_cannot_touch_its_peers(
    real_cluster: Any, admin: client.ApiClient, ns: str, member: Member
) -> None:
    core, leases = client.CoreV1Api(admin), client.CoordinationV1Api(admin)
    # A real owner, so the garbage collector keeps what it owns (the FailoverPair's part).
    held = core.create_namespaced_config_map(ns, {"metadata": {"name": "vm-owner"}})
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "vm-owner", "uid": held.metadata.uid}
    assert asyncio.run(_ensure(str(real_cluster.kubeconfig), ns, owner))
    for name in LEASES:
        leases.create_namespaced_lease(ns, {"metadata": {"name": name}, "spec": {}})
    # The example's projected token volume takes the CA from here (1.20: RootCAConfigMap, beta).
    eventually(
        lambda: core.read_namespaced_config_map("kube-root-ca.crt", ns).data["ca.crt"],
        30,
        tolerate=(ApiException,),
    )
    own, peer = f"vm-{member}", f"vm-{other(member)}"
    path = real_cluster.serviceaccount_kubeconfig(ns, rbac.agent_account("vm", member))
    with config.new_client_from_config(config_file=str(path)) as as_agent:
        mine = client.CoordinationV1Api(as_agent)
        eventually(lambda: _status(lambda: mine.read_namespaced_lease(own, ns)) == 200, 30)
        # Renewal: read, then replace (kubeio.renew); the watch of the active Lease.
        lease = mine.read_namespaced_lease(own, ns)
        lease.spec.holder_identity = own
        assert _status(lambda: mine.replace_namespaced_lease(own, ns, lease)) == 200
        assert _status(lambda: mine.read_namespaced_lease("vm-active", ns)) == 200
        selected = "metadata.name=vm-active"
        assert _status(lambda: mine.list_namespaced_lease(ns, field_selector=selected)) == 200
        # The peer's heartbeat, the operator's word and another pair: never written.
        for name in (peer, "vm-active", "other-primary"):
            body = leases.read_namespaced_lease(name, ns)
            body.spec.holder_identity = own
            assert _status(lambda b=body, n=name: mine.replace_namespaced_lease(n, ns, b)) == 403
        patch = {"spec": {"holderIdentity": own}}
        assert _status(lambda: mine.patch_namespaced_lease(own, ns, patch)) == 403
        assert _status(lambda: mine.delete_namespaced_lease(own, ns)) == 403
        made = {"metadata": {"name": "vm-extra"}, "spec": {}}
        assert _status(lambda: mine.create_namespaced_lease(ns, made)) == 403
        assert _status(lambda: mine.list_namespaced_lease(ns)) == 403
        # Reading the peer's Lease: both (where its failsafe peer link listens; the secondary
        # also for its licensing clock). Writing it: never (above).
        assert _status(lambda: mine.read_namespaced_lease(peer, ns)) == 200
        # Its FailoverPair only (404 where the CRD is not installed: allowed, not found).
        custom = client.CustomObjectsApi(as_agent)
        for pair, allowed in (("vm", True), ("other", False)):
            got = _status(
                lambda p=pair: custom.get_namespaced_custom_object(
                    "pairwarden.io", "v1", ns, "failoverpairs", p
                )
            )
            assert (got != 403) is allowed, (pair, got)
        assert _status(lambda: client.CoreV1Api(as_agent).list_namespaced_pod(ns)) == 403
