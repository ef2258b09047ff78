"""The real kubectl binary against the cluster under test: apply, get, patch, delete, watch."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from .helpers import KUBECTL

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

WIDGET_YAML = """
apiVersion: test.pairwarden.io/v1
kind: Widget
metadata:
  name: w1
spec:
  color: {color}
"""


def test_apply_get_patch_delete_custom_resource(
    kubectl: Kubectl, widgets: Any, namespace: str
) -> None:
    out = kubectl("apply", "-n", namespace, "-f", "-", stdin=WIDGET_YAML.format(color="red"))
    assert "widget.test.pairwarden.io/w1 created" in out.stdout
    table = kubectl("get", "widgets", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "PHASE"]  # no AGE: the CRD names its columns
    assert table[1].split()[:2] == ["w1", "small"]
    again = kubectl("apply", "-n", namespace, "-f", "-", stdin=WIDGET_YAML.format(color="blue"))
    assert "configured" in again.stdout
    obj = yaml.safe_load(kubectl("get", "wd", "w1", "-n", namespace, "-o", "yaml").stdout)
    assert obj["spec"] == {"color": "blue", "size": "small", "replicas": 1}
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    kubectl(
        "patch",
        "widget",
        "w1",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"size":"large"}}',
    )
    size = kubectl("get", "widget", "w1", "-n", namespace, "-o", "jsonpath={.spec.size}")
    assert size.stdout == "large"
    bad = kubectl(
        "patch",
        "widget",
        "w1",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"replicas":30}}',
        check=False,
    )
    assert bad.returncode != 0 and "spec.replicas" in bad.stderr
    kubectl("delete", "widget", "w1", "-n", namespace)
    gone = kubectl("get", "widget", "w1", "-n", namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_apply_built_ins_with_strategic_merge(kubectl: Kubectl, namespace: str) -> None:
    manifest = """
apiVersion: v1
kind: Pod
metadata: {{name: p, labels: {{app: vm}}}}
spec:
  containers: [{{name: c, image: {image}, ports: [{{containerPort: 80}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: callers}}
spec:
  selector: {{app: vm}}
  ports: [{{port: 80}}]
"""
    kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest.format(image="one"))
    kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest.format(image="two"))
    pod = yaml.safe_load(kubectl("get", "pod", "p", "-n", namespace, "-o", "yaml").stdout)
    assert pod["spec"]["containers"][0]["image"] == "two"
    assert pod["status"]["phase"] == "Pending"

    rows = {r.split()[0]: r.split() for r in kubectl("api-resources").stdout.splitlines()[1:]}
    assert "coordination.k8s.io/v1" in rows["leases"]
    assert rows["services"][1] == "svc" and rows["services"][3] == "true"


def _watch_line(kubectl: Kubectl, args: list[str], change: Callable[[], None], want: str) -> str:
    """Start `kubectl get --watch`, make a change, return the first line containing `want`.
    Lines are read on a thread, so a watch that goes quiet fails at the deadline, not never."""
    env = kubectl.env  # type: ignore[attr-defined]
    proc = subprocess.Popen(
        [KUBECTL, *args, "--watch", "--output-watch-events"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    try:
        assert lines.get(timeout=20)  # the header or first row: the watch is established
        change()
        deadline = time.monotonic() + 20
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if want in line:
                return line
        pytest.fail(f"kubectl watch never printed {want!r}")
    finally:
        proc.kill()
        proc.wait()


def test_watch_custom_resource(kubectl: Kubectl, widgets: Any, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=WIDGET_YAML.format(color="red"))
    line = _watch_line(
        kubectl,
        ["get", "widgets", "-n", namespace],
        lambda: kubectl(
            "patch",
            "widget",
            "w1",
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            '{"spec":{"size":"large"}}',
        ),
        "large",
    )
    assert line.split()[:2] == ["MODIFIED", "w1"]


def test_watch_lease(kubectl: Kubectl, namespace: str) -> None:
    lease = """
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: vm-active}
spec: {holderIdentity: pod-a, leaseDurationSeconds: 30}
"""
    kubectl("apply", "-n", namespace, "-f", "-", stdin=lease)
    line = _watch_line(
        kubectl,
        ["get", "lease", "vm-active", "-n", namespace],
        lambda: kubectl("delete", "lease", "vm-active", "-n", namespace),
        "DELETED",
    )
    assert "vm-active" in line


def test_typed_create_commands(kubectl: Kubectl, namespace: str) -> None:
    """kubectl's typed `create` commands send protobuf and never retry with JSON; the server
    reads them as a real one does and answers JSON, which kubectl also accepts."""
    kubectl("create", "configmap", "c", "-n", namespace, "--from-literal=greeting=hi")
    kubectl("create", "secret", "generic", "s", "-n", namespace, "--from-literal=token=t0p")
    kubectl("create", "serviceaccount", "robot", "-n", namespace)
    cm = yaml.safe_load(kubectl("get", "cm", "c", "-n", namespace, "-o", "yaml").stdout)
    assert cm["data"] == {"greeting": "hi"}
    secret = yaml.safe_load(kubectl("get", "secret", "s", "-n", namespace, "-o", "yaml").stdout)
    assert secret["data"] == {"token": "dDBw"} and secret["type"] == "Opaque"
    assert "generateName" not in secret["metadata"]
    sa = kubectl("get", "sa", "robot", "-n", namespace, "-o", "jsonpath={.metadata.name}")
    assert sa.stdout == "robot"
    other = f"{namespace}-x"
    kubectl("create", "namespace", other)
    try:
        phase = kubectl("get", "ns", other, "-o", "jsonpath={.status.phase}").stdout
        assert phase == "Active"
    finally:
        kubectl("delete", "namespace", other, "--wait=false")


def test_explain_custom_and_built_in_kinds(kubectl: Kubectl, widgets: Any) -> None:
    """`kubectl explain` finds each kind's schema by its group-version-kind in OpenAPI v3
    (a 1.20 server has only v2: kubectl falls back, and aligns its header differently)."""
    spec = kubectl("explain", "widgets.spec").stdout
    assert re.search(r"KIND:\s+Widget\n", spec) and "FIELDS:" in spec and "color" in spec
    top = kubectl("explain", "wd").stdout
    assert "apiVersion" in top and "metadata" in top
    pods = kubectl("explain", "pods").stdout
    assert re.search(r"KIND:\s+Pod\n", pods) and "spec" in pods
