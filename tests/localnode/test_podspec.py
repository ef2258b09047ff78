"""Translation of Pod manifests into local processes (pure)."""

from __future__ import annotations

import sys
from pathlib import Path

from pairwarden_testbed.localnode import podspec
from pairwarden_testbed.localnode.proxy import backends

POD = {
    "metadata": {"name": "vm-primary", "namespace": "voice", "uid": "u1", "labels": {"app": "vm"}},
    "spec": {
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "x"}}],
        "containers": [
            {
                "name": "voicemail",
                "image": "pairwarden/voicemail:dev",
                "command": ["pairwarden-testbed", "voicemail"],
                "args": ["--data-dir", "/data/vm", "--state-dir=/data", "--other=/etc/x"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "APP",
                     "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "PLAIN", "value": "/data/file"},
                ],
                "ports": [{"name": "calls", "containerPort": 5070}],
            }
        ],
    },
    "status": {"phase": "Running", "podIP": "127.9.9.2",
               "conditions": [{"type": "Ready", "status": "True"}]},
}  # fmt: skip


def test_only_pairwarden_images_are_local() -> None:
    assert podspec.is_local_pod(POD)
    other = {"spec": {"containers": [{"name": "x", "image": "nginx:1"}]}}
    assert not podspec.is_local_pod(other)
    assert not podspec.is_local_pod({"spec": {}})


def test_command_env_and_volumes(tmp_path: Path) -> None:
    volumes = podspec.volume_paths(POD, tmp_path)
    assert volumes == {"data": tmp_path / "volumes" / "data"}
    container = POD["spec"]["containers"][0]  # type: ignore[index]
    mounts = podspec.mount_map(container, volumes)
    argv = podspec.command_line(container, mounts)
    host = str(tmp_path / "volumes" / "data")
    assert argv == [sys.executable, "-m", "pairwarden_testbed.cli", "voicemail",
                    "--data-dir", f"{host}/vm", f"--state-dir={host}",
                    "--other=/etc/x"]  # fmt: skip
    env = podspec.environment(
        container, POD, "127.9.9.2", mounts, {"PATH": "/bin", "SECRET": "x"}, {"KUBECONFIG": "k"}
    )
    assert env["POD_NAME"] == "vm-primary" and env["POD_IP"] == "127.9.9.2"
    assert env["NS"] == "voice" and env["APP"] == "vm" and env["PLAIN"] == f"{host}/file"
    assert env["PATH"] == "/bin" and env["KUBECONFIG"] == "k" and "SECRET" not in env


def test_service_backends_follow_the_selector() -> None:
    service = {
        "spec": {"selector": {"app": "vm"}, "ports": [{"port": 5070, "targetPort": "calls"}]}
    }
    port = service["spec"]["ports"][0]  # type: ignore[index]
    assert backends(service, port, [POD]) == [("127.9.9.2", 5070)]
    not_ready = {
        **POD,
        "status": {**POD["status"], "conditions": [{"type": "Ready", "status": "False"}]},
    }  # type: ignore[dict-item]
    assert backends(service, port, [not_ready]) == []
    flipped = {"spec": {"selector": {"app": "other"}, "ports": service["spec"]["ports"]}}  # type: ignore[index]
    assert backends(flipped, port, [POD]) == []
    deleting = {**POD, "metadata": {**POD["metadata"], "deletionTimestamp": "now"}}  # type: ignore[dict-item]
    assert backends(service, port, [deleting]) == []
