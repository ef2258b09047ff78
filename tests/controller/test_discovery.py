"""The operator's start asks discovery whether FailoverPairs are served (kopf's scanning is off,
so a CRD created after kopf's one scan would never be served): true once the CRD is, false on
a server without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client, config

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.api import crd
from pairwarden.controller import discovery
from pairwarden.kube import async_api_client
from pairwarden_testbed.localcluster import OperatorProcess, failover_pair
from pairwarden_testbed.sandbox import Sandbox
from pairwarden_testbed.waiting import eventually


async def test_failoverpairs_are_served_once_the_crd_is(sandbox: Any) -> None:
    api = await async_api_client(str(sandbox.kubeconfig_path))
    async with api:
        assert await discovery.serves_failoverpairs(api)


async def test_a_server_without_the_crd_does_not_serve_them(tmp_path: Path) -> None:
    with Sandbox(crds_dir=tmp_path) as bare:  # no CRD: the chart's own not created yet
        api = await async_api_client(str(bare.kubeconfig_path))
        async with api:
            assert not await discovery.serves_failoverpairs(api)


def test_an_operator_started_before_its_crd_serves_pairs_once_the_crd_is_there(
    tmp_path: Path,
) -> None:
    """The chart creates the CRD and the operator together: the operator may start first.
    kopf's scan then finds no FailoverPairs and, scanning off, would never look again; the
    operator's start waits instead, and serves the pair created after the CRD."""
    crds = tmp_path / "no-crds"
    crds.mkdir()
    with Sandbox(crds_dir=crds) as bare:
        api = config.new_client_from_config(config_file=str(bare.kubeconfig_path))
        with api:
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": "voice"}})
            log = tmp_path / "operator.log"
            operator = OperatorProcess(str(bare.kubeconfig_path), "voice", log)
            operator.start()
            try:
                # the operator has looked for FailoverPairs and not found them: its own wait,
                # or (without it) kopf's one scan, after which kopf would never serve them
                looked = ("is not served yet", "Unresolved resources")
                eventually(lambda: any(m in log.read_text() for m in looked), 60, "a look")
                client.ApiextensionsV1Api(api).create_custom_resource_definition(crd.build_crd())
                custom = client.CustomObjectsApi(api)
                eventually(
                    lambda: custom.create_namespaced_custom_object(
                        GROUP, VERSION, "voice", PLURAL, failover_pair()
                    ),
                    30,
                    "the pair created once the CRD is served",
                    tolerate=(client.ApiException,),
                )
                leases = client.CoordinationV1Api(api)
                eventually(
                    lambda: leases.read_namespaced_lease("vm-active", "voice"),
                    60,
                    "the operator's active Lease for the pair",
                    tolerate=(client.ApiException,),
                )
            finally:
                operator.stop()
