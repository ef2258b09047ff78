"""Fixtures for the chart tests: a sandbox to install into, and the chart rendered once per
values combination.

helm-sdkpy has no template or client-only dry-run action, so the chart is rendered by a real
`Install` (wait=False) into an embedded sandbox of its own, run by helm_install.py in a child
process with HELM_DRIVER=memory (see there why); the release's `manifest` is what Helm
rendered, and every object is then read back from the sandbox. The sandbox serves every
built-in kind the chart renders; the Prometheus Operator's kinds come from that operator's CRDs
on a real cluster, so the fixture installs schemaless stand-ins of them, as installing the
Prometheus Operator would; their real schemas are checked separately (kubernetes-validate for
built-ins, a structural schema for monitoring)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, dynamic
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from pairwarden_testbed.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = Path(__file__).resolve().parent / "helm_install.py"
CHART = ROOT / "charts" / "pairwarden"
K8S_VERSION = "1.33.0"

# (group, version, kind, plural, namespaced) of the Prometheus Operator's kinds the chart can
# render: not built in, on the sandbox as on any cluster without that operator.
PROMETHEUS_OPERATOR_KINDS = [
    ("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors", True),
    ("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors", True),
    ("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules", True),
]

# Values combinations rendered by the tests, each installed once as its own release. One
# release owns the CRDs in a cluster (Helm adopts no object another release made), so every
# combination but the defaults sets crds.create=false, as a second release must.
NO_CRDS = {"crds": {"create": False}}
MONITORING_RELEASE = "pwmon"
MONITORING_NAMESPACE = "monitoring-pw"
MONITORING = {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}
COMBOS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "defaults": ("pwdef", "pairwarden", {}),
    "monitoring": (
        MONITORING_RELEASE,
        MONITORING_NAMESPACE,
        {
            **NO_CRDS,
            "serviceMonitor": {"enabled": True, "additionalLabels": {"release": "prom"}},
            "podMonitor": {"enabled": True, "additionalLabels": {"release": "prom"}},
            "networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": MONITORING}}]},
            "grafanaDashboard": {"enabled": True},
            "prometheusRule": {
                "enabled": True,
                "additionalLabels": {"release": "prom"},
                "alertLabels": {"team": "voice"},
            },
        },
    ),
    "clusterwide": (
        "pwcw",
        "pwcw-system",
        {**NO_CRDS, "operator": {"watch": {"allNamespaces": True}}},
    ),
    "namespaced": (
        "pwns",
        "pwns-system",
        {
            **NO_CRDS,
            "operator": {"watch": {"allNamespaces": False, "namespaces": ["voice-a", "voice-b"]}},
        },
    ),
    "single": (
        "pairwarden",
        "pw-single",
        {
            **NO_CRDS,
            "operator": {
                "replicas": 1,
                "verbose": True,
                "alertmanager": {"enabled": True, "tokenSecret": {"name": "pw-am", "key": "t"}},
            },
            "memberNamespaces": ["voice-c"],
            "rbac": {"admissionPolicy": False},
            "image": {
                "registry": "registry.example.com/mirror/",
                "operator": {"tag": "1.2.3"},
                "agent": {"digest": "sha256:" + "ab" * 32},
            },
            "networkPolicy": {"enabled": False},
        },
    ),
}


def _stub_crd(group: str, version: str, kind: str, plural: str, namespaced: bool) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced" if namespaced else "Cluster",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@dataclass
class Rendered:
    """One release: the objects Helm rendered, in manifest order, and its NOTES."""

    release: str
    namespace: str
    values: dict[str, Any]
    objects: list[dict[str, Any]]
    notes: str
    hooks: list[dict[str, Any]]
    stubbed: set[tuple[str, str]] = field(default_factory=set)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]


class ChartCluster:
    """The sandbox the chart is installed into, with helpers to install and read back."""

    def __init__(self, sandbox: Sandbox, api: client.ApiClient) -> None:
        self.sandbox = sandbox
        self.api = api
        self.dynamic = dynamic.DynamicClient(api)
        self.stubbed: set[tuple[str, str]] = set()
        self._renders: dict[str, Rendered] = {}

    def serves(self, api_version: str, kind: str) -> bool:
        try:
            self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return False
        return True

    def install_prometheus_operator_crds(self) -> None:
        ext = client.ApiextensionsV1Api(self.api)
        for group, version, kind, plural, namespaced in PROMETHEUS_OPERATOR_KINDS:
            if not self.serves(f"{group}/{version}", kind):
                ext.create_custom_resource_definition(
                    _stub_crd(group, version, kind, plural, namespaced)
                )
                self.stubbed.add((f"{group}/{version}", kind))
        self.dynamic = dynamic.DynamicClient(self.api)  # discovery again, with the stand-ins

    def ensure_namespace(self, name: str) -> None:
        core = client.CoreV1Api(self.api)
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        except client.ApiException as error:
            if error.status != 409:
                raise

    def install_many(self, jobs: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Install each (release, namespace, values); per job {"result": ...} or {"error": ...}."""
        request = {
            "kubeconfig": str(self.sandbox.kubeconfig_path),
            "chart": str(CHART),
            "jobs": [{"release": r, "namespace": n, "values": v} for r, n, v in jobs],
        }
        done = subprocess.run(
            [sys.executable, str(INSTALLER)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            env={**os.environ, "HELM_DRIVER": "memory"},
        )
        results: list[dict[str, Any]] = json.loads(done.stdout)
        return results

    def install(self, release: str, namespace: str, values: dict[str, Any]) -> dict[str, Any]:
        (outcome,) = self.install_many([(release, namespace, values)])
        if "error" in outcome:
            raise RuntimeError(outcome["error"])
        result: dict[str, Any] = outcome["result"]
        return result

    def render_all(self) -> None:
        """Install every combination at once (one child process, one library load)."""
        todo = [name for name in sorted(COMBOS) if name not in self._renders]
        for name in todo:
            _, namespace, values = COMBOS[name]
            for ns in [namespace, *_namespaces_in(values)]:
                self.ensure_namespace(ns)
        outcomes = self.install_many([COMBOS[name] for name in todo])
        for name, outcome in zip(todo, outcomes, strict=True):
            if "error" in outcome:
                raise RuntimeError(f"installing values {name!r} failed: {outcome['error']}")
            release, namespace, values = COMBOS[name]
            result = outcome["result"]
            objects = [d for d in yaml.safe_load_all(result["manifest"]) if d]
            notes = str(result.get("info", {}).get("notes", ""))
            hooks = [yaml.safe_load(h["manifest"]) for h in result.get("hooks") or []]
            self._renders[name] = Rendered(
                release, namespace, values, objects, notes, hooks, set(self.stubbed)
            )

    def render(self, combo: str) -> Rendered:
        if combo not in self._renders:
            self.render_all()
        return self._renders[combo]

    def read_back(self, obj: dict[str, Any], default_namespace: str) -> dict[str, Any]:
        resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        meta = obj["metadata"]
        if resource.namespaced:
            got = resource.get(
                name=meta["name"], namespace=meta.get("namespace", default_namespace)
            )
        else:
            got = resource.get(name=meta["name"])
        found: dict[str, Any] = got.to_dict()
        return found


def render_chart(
    release: str, namespace: str, values: dict[str, Any], crds_dir: Path
) -> list[dict[str, Any]]:
    """The objects the chart renders for one release, in manifest order: installed into a
    sandbox of its own (empty `crds_dir`: the chart brings its CRDs), for a cluster Helm
    whose objects a test creates itself (kind, the real 1.20 control plane without a node)."""
    with Sandbox(crds_dir=crds_dir) as sandbox:
        api = config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
        with api:
            chart = ChartCluster(sandbox, api)
            for ns in [namespace, *_namespaces_in(values)]:
                chart.ensure_namespace(ns)
            result = chart.install(release, namespace, values)
    return [d for d in yaml.safe_load_all(result["manifest"]) if d]


def _namespaces_in(values: dict[str, Any]) -> list[str]:
    watch = values.get("operator", {}).get("watch", {})
    return [*watch.get("namespaces", []), *values.get("memberNamespaces", [])]


@pytest.fixture(scope="session")
def chart_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartCluster]:
    empty = tmp_path_factory.mktemp("no-crds")  # the chart installs its own CRDs
    with Sandbox(crds_dir=empty) as sandbox:
        api = config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
        cluster = ChartCluster(sandbox, api)
        cluster.install_prometheus_operator_crds()
        yield cluster
        api.close()


@pytest.fixture(params=sorted(COMBOS))
def rendered(request: pytest.FixtureRequest, chart_cluster: ChartCluster) -> Rendered:
    """The chart rendered with each values combination in turn."""
    return chart_cluster.render(request.param)
