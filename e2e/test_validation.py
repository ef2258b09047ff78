"""A spec only a CEL rule would refuse, on a server without CEL (Kubernetes 1.20 drops
x-kubernetes-validations from the CRD): the operator refuses it itself, with SpecValid=False
and a Warning Event naming the field. On the sandbox the CRD's rule refuses it at admission."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiException

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden_testbed.localcluster import LocalCluster, wait_until

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "invalid" / "members-equal.yaml"
FIELD = "spec.members"


def test_an_invalid_spec_is_refused_by_the_operator_without_cel(cluster: LocalCluster) -> None:
    body = yaml.safe_load(EXAMPLE.read_text())
    create = cluster.custom.create_namespaced_custom_object
    if cluster.real is None:
        with pytest.raises(ApiException) as refused:
            create(GROUP, VERSION, cluster.namespace, PLURAL, body)
        assert refused.value.status == 422 and FIELD in refused.value.body
        return
    create(GROUP, VERSION, cluster.namespace, PLURAL, body)  # accepted: no CEL

    def refusal() -> dict[str, str] | None:
        conditions = status_of(cluster, "bad").get("conditions") or []
        found = [c for c in conditions if c["type"] == "SpecValid" and c["status"] == "False"]
        return found[0] if found else None

    condition = wait_until(refusal, timeout=60)
    assert condition["reason"] == "InvalidSpec" and FIELD in condition["message"]
    events = wait_until(
        lambda: [e for e in cluster.events("bad") if e.reason == "InvalidSpec"], timeout=30
    )
    assert events[0].type == "Warning" and FIELD in events[0].message


def status_of(cluster: LocalCluster, name: str) -> dict[str, object]:
    return dict(cluster.pair(name).get("status") or {})
