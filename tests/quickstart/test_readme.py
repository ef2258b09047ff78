"""The README's cluster quickstart, command for command, on the sandbox with its local node
(`pairwarden-testbed sandbox up --no-crds --with-node`): kubectl is the real binary, the plugin
is the installed `kubectl-pairwarden` found on PATH by kubectl, helm is Helm's library
(helm-sdkpy, tests/quickstart/helm_step.py). The chart's operator StatefulSet runs as local
processes through the node's StatefulSet stand-in, two replicas with kopf peering, as on a
cluster. Between steps the test waits, with generous deadlines, for what a user would wait for
(the pair Healthy before looking at it); after each it checks what the user would read.

On the real Kubernetes 1.20 control plane (`real_cluster`, hack/control-plane.sh) the same
block runs but for its two helm lines: that control plane has no node that could run the
chart's operator pods (its member pods run on the local kubelet stand-in, which runs only the
pair's namespace). There the test applies instead the chart's rendered RBAC, the CRD without
CEL (`pairwarden crds --without-cel`, what the chart installs before 1.25), and one operator
with `--standalone`, run as the chart's operator ServiceAccount. The chart's own install on
1.20 is tests/realk8s/test_chart_1_20.py. Every kubectl line runs as written."""

from __future__ import annotations

import functools
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HELM_STEP = Path(__file__).resolve().parent / "helm_step.py"
START, END = "<!-- quickstart -->", "<!-- /quickstart -->"


def readme_steps() -> list[list[str]]:
    """The commands of the README's quickstart block, comments stripped."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index(START) + len(START) : text.index(END)]
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("```")]
    return [shlex.split(line, comments=True) for line in lines]


class Cluster:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(home),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def run(self, words: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
        if words[0] == "kubectl":
            argv = [str(BIN / "kubectl"), *words[1:]]
        elif words[0] == "helm":
            argv = [sys.executable, str(HELM_STEP), str(self.kubeconfig), *words[1:]]
        else:
            raise AssertionError(f"the quickstart runs only kubectl and helm: {words}")
        return subprocess.run(
            argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def jsonpath(self, kind: str, name: str, namespace: str, path: str) -> str:
        done = self.run(["kubectl", "get", kind, name, "-n", namespace, "-o", f"jsonpath={path}"])
        return done.stdout if done.returncode == 0 else ""

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.5)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    kubeconfig = tmp_path / "kubeconfig"
    node = ["--with-node", "--node-namespace", "voice", "--node-namespace", "pairwarden"]
    argv = [str(BIN / "pairwarden-testbed"), "sandbox", "up", "--kubeconfig", str(kubeconfig)]
    argv += ["--no-crds", *node, "--node-dir", str(tmp_path / "node")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line.startswith("local node running"):
                break
        home = tmp_path / "home"
        home.mkdir()
        yield Cluster(kubeconfig, home)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _namespace(words: list[str]) -> str:
    return words[words.index("-n") + 1]


def _pair_healthy(cluster: Cluster, namespace: str) -> bool:
    state = cluster.jsonpath("fp", "vm", namespace, "{.status.phase}/{.status.activeMember}")
    return state == "Healthy/primary"


def _secondary_standing_by(cluster: Cluster, namespace: str) -> bool:
    """The secondary's agent renews its Lease and its voicemail service is up."""
    status = cluster.run(["kubectl", "pairwarden", "status", "vm", "-n", namespace]).stdout
    row = next((r.split() for r in status.splitlines() if r.startswith("secondary ")), [])
    return row[2:3] == ["standby"] and "never" not in row and "up" in row


def _operator_gone(cluster: Cluster) -> bool:
    pods = cluster.run(["kubectl", "get", "pods", "-n", "pairwarden", "-o", "name"])
    return pods.returncode == 0 and not pods.stdout.strip()


def test_readme_quickstart(cluster: Cluster) -> None:
    steps = readme_steps()
    assert [w[:2] for w in steps][:2] == [["kubectl", "create"], ["helm", "install"]]
    follow(cluster, steps)


def follow(cluster: Cluster, steps: list[list[str]]) -> None:
    """Run the steps in order as the user would, checking what each prints."""
    for words in steps:
        line = shlex.join(words)
        if words[:3] == ["kubectl", "get", "fp"]:
            healthy = functools.partial(_pair_healthy, cluster, _namespace(words))
            cluster.wait("the pair Healthy with the primary active", healthy)
        if words[1:3] == ["pairwarden", "failover"]:
            standing_by = functools.partial(_secondary_standing_by, cluster, _namespace(words))
            cluster.wait("the secondary standing by", standing_by)
        done = cluster.run(words)
        assert done.returncode == 0, f"{line} failed:\n{done.stdout}\n{done.stderr}"
        if words[:3] == ["kubectl", "get", "fp"]:
            header, row = done.stdout.splitlines()[:2]
            assert header.split()[:4] == ["NAME", "ACTIVE", "PHASE", "EPOCH"]
            assert row.split()[:3] == ["vm", "primary", "Healthy"]
        if words[1:3] == ["pairwarden", "status"]:
            assert f"FailoverPair {_namespace(words)}/vm" in done.stdout
            assert "active primary" in done.stdout
        if words[1:3] == ["pairwarden", "failover"]:
            assert "secondary is active" in done.stdout
        if words[1:3] == ["pairwarden", "history"]:
            rows = done.stdout.splitlines()[1:]
            assert rows[-1].split()[1:3] == ["primary", "secondary"]
        if words[:2] == ["kubectl", "describe"]:
            assert "Events:" in done.stdout
        if words[:2] == ["helm", "uninstall"]:
            cluster.wait("the operator pods gone", lambda: _operator_gone(cluster))
            kept = cluster.run(["kubectl", "get", "crd", "failoverpairs.pairwarden.io"])
            assert kept.returncode == 0, "the CRD is kept on uninstall (resource-policy keep)"


@pytest.mark.timeout(900)  # the control plane's start (1 min) and an operator's under load
def test_readme_quickstart_on_kubernetes_1_20(real_cluster: Any, tmp_path: Path) -> None:
    """The quickstart on the real 1.20 control plane; the chart's lines replaced by what a
    1.20 user applies instead (module docstring). The namespace gets a unique name, as the
    control plane may be shared with other tests (PAIRWARDEN_K8S_DIR keeps it between runs) and
    a deleted namespace lingers there."""
    from tests.chart.conftest import render_chart

    from pairwarden_testbed.localcluster import Chart, LocalCluster, RealBackend

    namespace = f"voice-{uuid.uuid4().hex[:8]}"
    steps = [[namespace if w == "voice" else w for w in words] for words in readme_steps()]
    helm = [words for words in steps if words[0] == "helm"]
    assert [(w[1], steps.index(w)) for w in helm] == [("install", 1), ("uninstall", len(steps) - 1)]
    values = {
        "memberNamespaces": [namespace],
        "operator": {"watch": {"allNamespaces": False, "namespaces": [namespace]}},
    }
    # The release in the member namespace and named after it: the operator's kubeconfig is
    # its ServiceAccount's there (Chart), and the cluster-wide names are this run's.
    rendered = render_chart(namespace, namespace, values, tmp_path / "no-crds")
    kinds = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
    rbac = [o for o in rendered if o["kind"] in kinds]
    (operator,) = [o for o in rendered if o["kind"] == "StatefulSet"]
    home = tmp_path / "home"
    home.mkdir()
    cluster = Cluster(real_cluster.kubeconfig, home)
    follow(cluster, steps[:1])  # kubectl create namespace
    chart = Chart(rbac, operator["spec"]["template"]["spec"])
    real = RealBackend(real_cluster)
    with LocalCluster(namespace, workdir=tmp_path / "cluster", real=real, chart=chart):
        follow(cluster, steps[2:-1])
