"""The operator's start asks discovery whether FailoverPairs are served (kopf's scanning is off,
so a CRD created after kopf's one scan would never be served): true once the CRD is, false on
a server without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pairwarden.controller import discovery
from pairwarden.kube import async_api_client
from pairwarden_testbed.sandbox import Sandbox


async def test_failoverpairs_are_served_once_the_crd_is(sandbox: Any) -> None:
    api = await async_api_client(str(sandbox.kubeconfig_path))
    async with api:
        assert await discovery.serves_failoverpairs(api)


async def test_a_server_without_the_crd_does_not_serve_them(tmp_path: Path) -> None:
    with Sandbox(crds_dir=tmp_path) as bare:  # no CRD: the chart's own not created yet
        api = await async_api_client(str(bare.kubeconfig_path))
        async with api:
            assert not await discovery.serves_failoverpairs(api)
