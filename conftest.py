"""Fixtures shared by tests/ and e2e/: the real Kubernetes control plane, started once per
session for both (the conformance suite and the e2e scenarios run on it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Service clusterIPs on loopback, where the kube-proxy stand-in can listen without touching
# the machine's network (the sandbox's are 127.1/16; pod IPs are random 127.A.B.x).
SERVICE_CIDR = "127.96.0.0/16"


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Kubernetes 1.20 control plane (etcd, kube-apiserver, controller-manager,
    scheduler from hack/control-plane.sh), started once per session; a
    `pairwarden_testbed.controlplane.ControlPlane` (.kubeconfig, .server,
    .serviceaccount_kubeconfig(ns, sa)). Skips, naming the reason, when the binaries are
    not built (`make control-plane`) or PAIRWARDEN_REAL_K8S=0.

    PAIRWARDEN_K8S_DIR=DIR keeps it running in DIR between sessions (started by the first,
    reused by the next; `hack/control-plane.sh down DIR` stops it): a developer's warm runs
    then skip the minute it takes to start."""
    from pairwarden_testbed import controlplane

    reason = controlplane.unavailable()
    if reason:
        pytest.skip(reason)
    kept = os.environ.get("PAIRWARDEN_K8S_DIR")
    directory = Path(kept) if kept else tmp_path_factory.mktemp("k8s")
    from pairwarden_testbed.localnode.realnode import LOCAL_NODE

    nodes = (controlplane.NODE_NAME, LOCAL_NODE)  # a real kubelet's and the local one's
    cp = controlplane.ControlPlane(directory, nodes=nodes, service_cidr=SERVICE_CIDR)
    try:
        try:
            started = cp.up()
        except controlplane.ControlPlaneError as error:  # the tests skip, naming why
            pytest.skip(f"the real control plane did not start: {error}")
        yield started
    finally:
        if not kept:
            cp.down()
