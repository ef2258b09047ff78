"""The node stand-ins together, for a sandbox that clients use like a cluster: per namespace,
a kubelet that runs `pairwarden/...` pods as local processes, a kube-proxy for Services, a
runner for replication Jobs and a StatefulSet controller (for the chart's operator).
`pairwarden-testbed sandbox up --with-node` starts one, so `kubectl apply -f examples/` brings
up a pair outside the demo and the tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from pairwarden_testbed.lifecycle import Service
from pairwarden_testbed.localnode.jobrunner import LocalJobRunner
from pairwarden_testbed.localnode.kubelet import LocalKubelet
from pairwarden_testbed.localnode.proxy import LocalServiceProxy
from pairwarden_testbed.localnode.statefulsets import LocalStatefulSets


class LocalNode(Service):
    """`with LocalNode(kubeconfig, ["voice"], workdir) as node:` the stand-ins run until exit.

    The stand-ins watch one namespace each (as the tests use them), so the node is told its
    namespaces up front; pods elsewhere stay Pending, as on a cluster whose nodes are down."""

    def __init__(
        self, kubeconfig: str | os.PathLike[str], namespaces: Iterable[str], workdir: Path
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.namespaces = list(dict.fromkeys(namespaces))
        self.workdir = workdir
        self.kubelets: dict[str, LocalKubelet] = {}
        self._stack = contextlib.ExitStack()

    def start(self) -> LocalNode:
        try:
            for ns in self.namespaces:
                base = self.workdir / ns
                kubelet = LocalKubelet(self.kubeconfig, ns, workdir=base / "pods")
                self.kubelets[ns] = kubelet.start()
                self._stack.callback(kubelet.stop)
                proxy = LocalServiceProxy(self.kubeconfig, ns).start()
                self._stack.callback(proxy.stop)
                self._stack.enter_context(
                    LocalJobRunner(self.kubeconfig, ns, workdir=base / "jobs")
                )
                self._stack.enter_context(LocalStatefulSets(self.kubeconfig, ns))
        except BaseException:
            self._stack.close()
            raise
        return self

    def stop(self) -> None:
        self._stack.close()
