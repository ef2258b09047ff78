"""What bench/scale.py's census reports of a pair's cost on the API server: bytes per object
and of them managedFields, watches served by kind from kube-apiserver's gauge, and the
operator's open sockets (which bench/scale.py bounds by the operator's two pools)."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from bench._common import open_sockets

from bench import _census

WATCHERS = """\
# TYPE apiserver_registered_watchers gauge
apiserver_registered_watchers{group="coordination.k8s.io",kind="Lease",version="v1"} 3
apiserver_registered_watchers{group="",kind="Pod",version="v1"} 4
apiserver_registered_watchers{group="",kind="Node",version="v1"} 0
apiserver_registered_watchers{group="pairwarden.io",kind="FailoverPair",version="v1alpha1"} 2
apiserver_request_total{code="200",resource="leases",verb="PUT"} 40
"""


def test_watches_are_counted_by_kind_and_idle_kinds_left_out() -> None:
    assert _census.registered_watchers(WATCHERS) == {"Lease": 3, "Pod": 4, "FailoverPair": 2}
    assert _census.registered_watchers("") == {}  # the sandbox has no such gauge


def test_an_objects_cost_and_its_managed_fields_are_measured_as_compact_json() -> None:
    managed = [{"manager": "kopf", "fieldsV1": {"f:metadata": {"f:finalizers": {}}}}]
    obj: dict[str, Any] = {"metadata": {"name": "vm", "managedFields": managed}, "spec": {}}
    whole, fields = _census.object_cost(obj)
    assert whole == len(json.dumps(obj, separators=(",", ":")))
    assert fields == len(json.dumps(managed, separators=(",", ":")))
    assert _census.object_cost({"metadata": {"name": "vm"}})[1] == 0


def test_per_pair_figures_divide_by_the_pairs() -> None:
    census = _census.Census(2, {"Lease": _census.KindCost(6, 6000, 3000)})
    assert census.per_pair_bytes() == 3000
    assert census.per_pair_managed() == 1500
    assert census.kinds["Lease"].per_object() == (1000, 500)


def test_open_sockets_counts_this_process_connections() -> None:
    before = open_sockets(os.getpid())
    a, b = socket.socketpair()
    try:
        assert open_sockets(os.getpid()) == before + 2
    finally:
        a.close()
        b.close()
    assert open_sockets(2**22 + 1) == -1  # no such process
