"""The chart installs on the oldest Kubernetes the README supports, 1.20 (the real control
plane of hack/control-plane.sh), through Helm's own library (helm-sdkpy, the quickstart's
helm_step.py): Helm accepts the chart's kubeVersion, the chart picks the CRD without CEL rules
(1.20 does not know `x-kubernetes-validations`), the operator's peering priority from the pod
name (no pod-index label before 1.28) and no PodDisruptionBudget (policy/v1 is 1.21); the
FailoverPair CRD is served and a FailoverPair applies with kubectl.

A control plane of its own: the chart brings the FailoverPair CRD and Helm refuses to adopt
one that another test applied on the shared one (about a minute to start)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.realk8s
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HELM_STEP = ROOT / "tests" / "quickstart" / "helm_step.py"


@pytest.fixture(scope="module")
def plane_1_20(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pairwarden_testbed import controlplane

    reason = controlplane.unavailable()
    if reason:
        pytest.skip(reason)
    cp = controlplane.ControlPlane(tmp_path_factory.mktemp("k8s-chart"))
    try:
        try:
            yield cp.up()
        except controlplane.ControlPlaneError as error:
            pytest.skip(f"the real control plane did not start: {error}")
    finally:
        cp.down()


def _run(plane: Any, *words: str) -> subprocess.CompletedProcess[str]:
    if words[0] == "helm":
        argv = [sys.executable, str(HELM_STEP), str(plane.kubeconfig), *words[1:]]
    else:
        argv = [str(BIN / "kubectl"), "--kubeconfig", str(plane.kubeconfig), *words[1:]]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)


def _ok(plane: Any, *words: str) -> str:
    done = _run(plane, *words)
    assert done.returncode == 0, f"{' '.join(words)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.timeout(600)
def test_chart_installs_on_kubernetes_1_20_and_a_pair_applies(plane_1_20: Any) -> None:
    plane = plane_1_20
    assert '"gitVersion": "v1.20.2"' in _ok(plane, "kubectl", "version", "-o", "json")
    _ok(plane, "kubectl", "create", "namespace", "voice")
    install = "helm install pairwarden charts/pairwarden --namespace pairwarden"
    install += " --create-namespace --set memberNamespaces={voice}"  # the README's line
    release = json.loads(_ok(plane, *install.split()))
    assert release["info"]["status"] == "deployed"
    crd = json.loads(_ok(plane, "kubectl", "get", "crd", "failoverpairs.pairwarden.io", "-o=json"))
    assert "x-kubernetes-validations" not in json.dumps(crd), "1.20 gets the CRD without CEL"
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    for name in ("kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        _ok(plane, "kubectl", "get", "crd", name)
    _ok(plane, "kubectl", "apply", "-n", "voice", "-f", "examples/failoverpair.yaml")
    got = json.loads(_ok(plane, "kubectl", "get", "fp", "vm", "-n", "voice", "-o", "json"))
    assert got["spec"]["service"] == "vm-calls"
    sts = json.loads(_ok(plane, "kubectl", "get", "statefulsets", "-n", "pairwarden", "-o=json"))
    (operator,) = sts["items"]
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert "--priority=$(POD_NAME)" in container["args"]
    assert "POD_INDEX" not in {e["name"] for e in container["env"]}
    budgets = _run(plane, "kubectl", "get", "poddisruptionbudgets", "-n", "pairwarden", "-o=name")
    assert budgets.stdout.strip() == "", "no policy/v1 before 1.21: no budget"
