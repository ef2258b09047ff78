"""kopf's peering CRDs (kopfpeerings.kopf.dev, clusterkopfpeerings.kopf.dev) are shared by every
kopf operator in a cluster: the release creates them when absent, keeps them through its
upgrades, and never takes them from another owner nor deletes them on uninstall. Each test on a
sandbox of its own, through the `helm` lines of the quickstart (helm_step.py, Helm's library)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from pairwarden_testbed.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
HELM_STEP = ROOT / "tests" / "quickstart" / "helm_step.py"
KOPF_CRDS = ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
FOREIGN = {"app.kubernetes.io/managed-by": "another-kopf-operator"}


class Cluster:
    def __init__(self, sandbox: Sandbox, api: client.ApiClient) -> None:
        self.kubeconfig = sandbox.kubeconfig_path
        self.ext = client.ApiextensionsV1Api(api)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "pairwarden"}})

    def helm(self, *words: str) -> dict[str, Any]:
        argv = [sys.executable, str(HELM_STEP), str(self.kubeconfig), *words]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"helm {' '.join(words)}: {done.stderr}"
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def crd(self, name: str) -> Any:
        return self.ext.read_custom_resource_definition(name)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Sandbox(crds_dir=tmp_path) as sandbox:  # empty: no CRD until someone installs one
        api = config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
        with api:
            yield Cluster(sandbox, api)


def _kinds(release: dict[str, Any]) -> set[str]:
    objects = [o for o in yaml.safe_load_all(release["manifest"]) if o]
    return {o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"}


def test_present_peering_crds_are_left_to_their_owner(cluster: Cluster) -> None:
    """Another kopf operator made them first: the install succeeds (no ownership error), does
    not take them, and the uninstall leaves them as they were."""
    for doc in yaml.safe_load_all((ROOT / "crds" / "kopf-peering.yaml").read_text()):
        doc["metadata"]["labels"] = FOREIGN
        cluster.ext.create_custom_resource_definition(doc)
    install = ["install", "pw", "charts/pairwarden", "--namespace", "pairwarden"]
    assert _kinds(cluster.helm(*install)) == {"failoverpairs.pairwarden.io"}
    for name in KOPF_CRDS:
        meta = cluster.crd(name).metadata
        assert meta.labels == FOREIGN and not meta.annotations, f"{name} was taken"
    cluster.helm("uninstall", "pw", "--namespace", "pairwarden")
    for name in KOPF_CRDS:
        assert cluster.crd(name).metadata.labels == FOREIGN


def test_absent_peering_crds_are_created_kept_through_upgrades_and_uninstall(
    cluster: Cluster,
) -> None:
    install = ["install", "pw", "charts/pairwarden", "--namespace", "pairwarden"]
    assert _kinds(cluster.helm(*install)) == {"failoverpairs.pairwarden.io", *KOPF_CRDS}
    for name in KOPF_CRDS:
        annotations = cluster.crd(name).metadata.annotations
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert annotations["meta.helm.sh/release-name"] == "pw"
    upgrade = ["upgrade", "pw", "charts/pairwarden", "--namespace", "pairwarden"]
    assert _kinds(cluster.helm(*upgrade)) >= set(KOPF_CRDS), "its own: still rendered"
    cluster.helm("uninstall", "pw", "--namespace", "pairwarden")
    for name in (*KOPF_CRDS, "failoverpairs.pairwarden.io"):
        cluster.crd(name)  # kept: other operators may use the peering CRDs
