"""The operator as the chart deploys it, running: the rendered StatefulSet's pod template is
started by the local kubelet (command, args with `$(POD_INDEX)`, env from the downward API,
probes' port), and the operator must come up live (kopf's liveness endpoint) and ready
(/readyz: it can act) and take charge of a FailoverPair."""

from __future__ import annotations

import urllib.request
from typing import Any

from kubernetes import client
from tests.chart.conftest import ChartCluster

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden_testbed.localcluster import failover_pair, wait_until
from pairwarden_testbed.localnode import LocalKubelet


def _exists(leases: client.CoordinationV1Api, namespace: str, name: str) -> bool:
    try:
        leases.read_namespaced_lease(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _healthz(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_charts_operator_comes_up_and_takes_charge_of_a_pair(
    chart_cluster: ChartCluster,
) -> None:
    rendered = chart_cluster.render("defaults")
    statefulset = next(o for o in rendered.objects if o["kind"] == "StatefulSet")
    template = statefulset["spec"]["template"]
    namespace = rendered.namespace
    labels = {**template["metadata"]["labels"], "apps.kubernetes.io/pod-index": "0"}
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{statefulset['metadata']['name']}-0", "labels": labels},
        "spec": template["spec"],
    }
    core = client.CoreV1Api(chart_cluster.api)
    core.create_namespaced_pod(namespace, pod)
    members = namespace  # the default install serves its own namespace only
    kubeconfig = str(chart_cluster.sandbox.kubeconfig_path)
    with LocalKubelet(kubeconfig, namespace, links=False) as kubelet:
        name = pod["metadata"]["name"]
        port = template["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"]
        if not isinstance(port, int):
            port = next(p["containerPort"] for p in template["spec"]["containers"][0]["ports"]
                        if p["name"] == port)  # fmt: skip
        ip = wait_until(lambda: kubelet.pod_ip(name), timeout=30)
        wait_until(lambda: _healthz(f"http://{ip}:{port}/healthz"), timeout=60, poll=0.2)
        container = template["spec"]["containers"][0]
        ready = container["readinessProbe"]["httpGet"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        ready_url = f"http://{ip}:{ports[ready['port']]}{ready['path']}"
        wait_until(lambda: _healthz(ready_url), timeout=60, poll=0.2)

        custom = client.CustomObjectsApi(chart_cluster.api)
        custom.create_namespaced_custom_object(GROUP, VERSION, members, PLURAL, failover_pair())
        leases = client.CoordinationV1Api(chart_cluster.api)
        wait_until(lambda: _exists(leases, members, "vm-active"), timeout=60, poll=0.2)

        def spec_valid() -> bool:
            pair = custom.get_namespaced_custom_object(GROUP, VERSION, members, PLURAL, "vm")
            conditions = (pair.get("status") or {}).get("conditions") or []
            return any(c["type"] == "SpecValid" and c["status"] == "True" for c in conditions)

        wait_until(spec_valid, timeout=30, poll=0.2)
