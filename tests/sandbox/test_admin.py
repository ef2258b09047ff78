"""The sandbox's own hooks: injected faults, request counts per identity, admin HTTP API,
discovery and health endpoints, and the `pairwarden-testbed sandbox up` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from pairwarden_testbed.sandbox import AsyncSandbox, Sandbox

from .helpers import bearer, wait_for


def test_injected_fault_fails_exactly_n_matching_requests(
    sandbox_only: Sandbox, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "f"}})
    sandbox_only.inject_fault(verb="patch", resource="configmaps", name="f", status=409, count=2)
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            core.patch_namespaced_config_map("f", namespace, {"data": {"a": "b"}})
        assert exc.value.status == 409
        assert json.loads(exc.value.body)["reason"] == "Conflict"
    core.read_namespaced_config_map("f", namespace)  # other verbs were never affected
    assert core.patch_namespaced_config_map("f", namespace, {"data": {"a": "b"}}).data == {"a": "b"}


def test_a_delayed_fault_holds_the_request_before_failing_it(
    sandbox_only: Sandbox, core: client.CoreV1Api, namespace: str
) -> None:
    """A hung API call, as a client with a timeout sees it (the chaos schedules' timeouts)."""
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "slow"}})
    sandbox_only.inject_fault(verb="get", resource="configmaps", name="slow", status=504, delay=0.5)
    began = time.monotonic()
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("slow", namespace)
    assert exc.value.status == 504
    assert time.monotonic() - began >= 0.5


def test_stats_count_requests_per_verb_resource_and_user(
    sandbox_only: Sandbox, namespace: str
) -> None:
    path = sandbox_only.kubeconfig_for("agent-a")
    api = config.new_client_from_config(config_file=str(path))
    before = sandbox_only.stats()
    leases = client.CoordinationV1Api(api)
    leases.create_namespaced_lease(namespace, {"metadata": {"name": "l"}, "spec": {}})
    for _ in range(3):
        leases.patch_namespaced_lease("l", namespace, {"spec": {"holderIdentity": "a"}})
    after = sandbox_only.stats()
    api.close()
    assert after["by_user"]["agent-a"]["patch leases"] == 3
    assert after["by_user"]["agent-a"]["create leases"] == 1
    assert after["users"]["agent-a"] - before["users"].get("agent-a", 0) == 4
    assert after["requests"]["patch leases"] >= 3


def test_admin_http_endpoints(sandbox_only: Sandbox, namespace: str) -> None:
    http = urllib3.PoolManager()
    url = sandbox_only.url
    fault = {"verb": "get", "resource": "configmaps", "status": 503, "count": 1}
    assert http.request("POST", f"{url}/sandbox/faults", body=json.dumps(fault)).status == 201
    listed = json.loads(http.request("GET", f"{url}/sandbox/faults").data)["faults"]
    assert listed[0]["status"] == 503
    resp = http.request(
        "GET",
        f"{url}/api/v1/namespaces/{namespace}/configmaps/any",
        headers=bearer(sandbox_only.kubeconfig_path),
    )
    assert resp.status == 503 and json.loads(resp.data)["reason"] == "ServiceUnavailable"
    assert json.loads(http.request("GET", f"{url}/sandbox/faults").data)["faults"] == []
    stats = json.loads(http.request("GET", f"{url}/sandbox/stats").data)
    assert stats["requests"]["get configmaps"] >= 1 and stats["resourceVersion"] > 0
    assert http.request("POST", f"{url}/sandbox/compact").status == 200
    bad = http.request("POST", f"{url}/sandbox/faults", body=b'{"bogus": 1}')
    assert bad.status == 400


def test_discovery_and_health(sandbox: Any, api_client: client.ApiClient) -> None:
    core_resources = {r.name: r for r in client.CoreV1Api(api_client).get_api_resources().resources}
    assert core_resources["pods"].namespaced and "watch" in core_resources["pods"].verbs
    assert core_resources["pods"].kind == "Pod" and "po" in core_resources["pods"].short_names
    assert "pods/status" in core_resources and not core_resources["namespaces"].namespaced
    groups = {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {"coordination.k8s.io", "batch", "events.k8s.io", "apiextensions.k8s.io"} <= groups
    version = client.VersionApi(api_client).get_code()
    assert version.major == "1"


def test_health_endpoints(sandbox_only: Sandbox) -> None:
    http = urllib3.PoolManager()
    for path in ("/healthz", "/readyz", "/livez"):
        resp = http.request("GET", sandbox_only.url + path)
        assert resp.status == 200 and resp.data == b"ok"


async def test_async_sandbox_runs_in_the_callers_loop(tmp_path: Path) -> None:
    async with AsyncSandbox(crds_dir=tmp_path) as sb:
        from kubernetes_asyncio import client as aclient
        from kubernetes_asyncio import config as aconfig

        api = await aconfig.new_client_from_config(config_file=str(sb.kubeconfig_path))
        async with api:
            names = {n.metadata.name for n in (await aclient.CoreV1Api(api).list_namespace()).items}
        assert "default" in names
        assert sb.stats()["users"]["admin"] >= 1


def test_cli_up_installs_crds_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    from .helpers import WIDGET_CRD

    (crds / "widget.yaml").write_text(json.dumps(WIDGET_CRD))
    kubeconfig = tmp_path / "kc"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pairwarden_testbed.cli",
            "sandbox",
            "up",
            "--kubeconfig",
            str(kubeconfig),
            "--crds",
            str(crds),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        api = config.new_client_from_config(config_file=str(kubeconfig))
        listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "test.pairwarden.io", "v1", "default", "widgets"
        )
        assert listing["items"] == []
        api.close()
        proc.send_signal(signal.SIGTERM)
        assert wait_for(lambda: proc.poll() is not None, 60, "sandbox to exit")
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_slow_only_fault_serves_the_request_after_its_delay(
    sandbox_only: Sandbox, core: client.CoreV1Api, namespace: str
) -> None:
    """Status 0: every matching request is slow, none fails (a control plane under load)."""
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "s"}, "data": {"a": "1"}})
    sandbox_only.inject_fault(verb="get", resource="configmaps", status=0, delay=0.3, count=2)
    began = time.monotonic()
    assert core.read_namespaced_config_map("s", namespace).data == {"a": "1"}
    assert core.read_namespaced_config_map("s", namespace).data == {"a": "1"}
    assert time.monotonic() - began >= 0.6
    assert sandbox_only.pending_faults() == []


def test_a_storm_fails_a_share_of_requests_and_ends_by_itself(
    sandbox_only: Sandbox, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "st"}})
    sandbox_only.inject_fault(
        verb="get", resource="configmaps", status=503, fraction=0.5, count=10**6, seconds=30
    )
    failed = 0
    for _ in range(200):
        try:
            core.read_namespaced_config_map("st", namespace)
        except ApiException as exc:
            assert exc.status == 503
            failed += 1
    assert 50 < failed < 150  # about half: 200 draws of a fair coin
    sandbox_only.clear_faults()
    sandbox_only.inject_fault(verb="get", resource="configmaps", status=503, count=10, seconds=0.2)
    time.sleep(0.3)
    core.read_namespaced_config_map("st", namespace)  # its period is over
    assert sandbox_only.pending_faults() == []


def test_watches_end_when_the_server_drops_them_and_lag_when_it_is_behind(
    sandbox_only: Sandbox, core: client.CoreV1Api, namespace: str
) -> None:
    from kubernetes import watch

    version = core.list_namespaced_config_map(namespace).metadata.resource_version
    seen: list[tuple[str, float]] = []

    def follow() -> None:
        for event in watch.Watch().stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=version,
            timeout_seconds=20,
            _request_timeout=25,
        ):
            seen.append((event["object"].metadata.name, time.monotonic()))

    import threading

    sandbox_only.lag_watches(0.5)
    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    wait_for(lambda: sandbox_only.stats()["watchers"] >= 1)
    made = time.monotonic()
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "late"}})
    wait_for(lambda: seen)
    assert seen[0][0] == "late" and seen[0][1] - made >= 0.5
    sandbox_only.lag_watches(0)
    assert sandbox_only.end_watches() >= 1
    thread.join(timeout=10)
    assert not thread.is_alive()  # the stream ended well before its 20 s
