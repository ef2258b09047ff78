"""`data_dir`: objects and the resourceVersion counter survive a restart and a kill -9
right after an acknowledged write; watch history does not (resuming gets 410)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from pairwarden_testbed.sandbox import Sandbox

from .helpers import WIDGET_CRD, install_crd


def _api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def test_restart_keeps_objects_counter_and_crds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Sandbox(data_dir=data, crds_dir=tmp_path / "none") as sb:
        api = _api(sb.kubeconfig_path)
        install_crd(api, WIDGET_CRD)
        core = client.CoreV1Api(api)
        cm = core.create_namespaced_config_map("default", {"metadata": {"name": "kept"}})
        svc = core.create_namespaced_service("default", {"metadata": {"name": "s"}, "spec": {}})
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "test.pairwarden.io",
            "v1",
            "default",
            "widgets",
            {
                "apiVersion": "test.pairwarden.io/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"color": "red"},
            },
        )
        last_rv = int(core.list_namespaced_config_map("default").metadata.resource_version)
        api.close()
    with Sandbox(data_dir=data, crds_dir=tmp_path / "none") as sb:
        api = _api(sb.kubeconfig_path)
        core = client.CoreV1Api(api)
        again = core.read_namespaced_config_map("kept", "default")
        assert again.metadata.uid == cm.metadata.uid
        widget = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "test.pairwarden.io", "v1", "default", "widgets", "w"
        )
        assert widget["spec"]["size"] == "small"
        other = core.create_namespaced_service("default", {"metadata": {"name": "t"}, "spec": {}})
        assert other.spec.cluster_ip != svc.spec.cluster_ip
        assert int(other.metadata.resource_version) > last_rv
        stream = watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=cm.metadata.resource_version,
            timeout_seconds=5,
        )
        with pytest.raises(ApiException) as exc:
            next(iter(stream))
        assert exc.value.status == 410
        api.close()


def test_kill_9_after_acknowledged_write_loses_nothing(tmp_path: Path) -> None:
    data, kubeconfig = tmp_path / "data", tmp_path / "kc"
    command = [
        sys.executable,
        "-m",
        "pairwarden_testbed.cli",
        "sandbox",
        "up",
        "--kubeconfig",
        str(kubeconfig),
        "--data-dir",
        str(data),
        "--crds",
        str(tmp_path / "none"),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and "listening" in proc.stdout.readline()
        api = _api(kubeconfig)
        core = client.CoreV1Api(api)
        acked = core.create_namespaced_config_map(
            "default", {"metadata": {"name": "acked"}, "data": {"v": "1"}}
        )
        api.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and "listening" in proc.stdout.readline()
        api = _api(kubeconfig)
        got = client.CoreV1Api(api).read_namespaced_config_map("acked", "default")
        api.close()
        assert got.data == {"v": "1"}
        assert got.metadata.resource_version == acked.metadata.resource_version
    finally:
        proc.terminate()
        proc.wait()
