"""Sandbox stand-ins for the node: a kubelet that runs `pairwarden/...` containers as local
processes, a kube-proxy that forwards Service connections to the selected pod, and network
links that can be cut between an agent and the API server.

    from pairwarden_testbed.localnode import LocalKubelet, LocalServiceProxy, NetworkLink
"""

from pairwarden_testbed.localnode.kubelet import LocalKubelet
from pairwarden_testbed.localnode.link import NetworkLink
from pairwarden_testbed.localnode.proxy import LocalServiceProxy

__all__ = ["LocalKubelet", "LocalServiceProxy", "NetworkLink"]
