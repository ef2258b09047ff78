"""External triggers that fire every time: a request annotation written without an id (a
script, `kubectl annotate`) acts each time it is written, and an Alertmanager webhook acts
once per firing of an alert, with the real operator process and its receiver."""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from e2e.conftest import start, start_on_primary
from e2e.scenarios import assert_serving, epoch, next_transition, other, status

from pairwarden.protocol import ANNOTATION_REQUEST, ANNOTATION_REQUEST_ID
from pairwarden_testbed.localcluster import LocalCluster, free_port, wait_until


def _annotate(cluster: LocalCluster, action: str) -> None:
    """What `kubectl annotate failoverpair vm pairwarden.io/request=ACTION --overwrite` does."""
    cluster.patch_pair({"metadata": {"annotations": {ANNOTATION_REQUEST: action}}})


def _consumed(cluster: LocalCluster) -> bool:
    annotations = cluster.pair()["metadata"].get("annotations") or {}
    return ANNOTATION_REQUEST not in annotations and ANNOTATION_REQUEST_ID not in annotations


def test_a_request_without_an_id_fires_every_time_it_is_written(cluster: LocalCluster) -> None:
    active = start(cluster)
    away, back = ("failover", "failback") if active == "primary" else ("failback", "failover")
    # Away, back, and away again with the very same annotation: each write is a request.
    for action, target in ((away, other(active)), (back, active), (away, other(active))):
        before = epoch(cluster)
        _annotate(cluster, action)
        transition = next_transition(cluster, before)
        assert (transition["to"], transition["cause"]) == (target, f"Manual{action.title()}")
        assert_serving(cluster, target)
        wait_until(lambda: _consumed(cluster), timeout=15)  # removed once acknowledged
        last = cluster.pair()["status"]["lastRequest"]
        assert last["outcome"] == "Accepted" and last["id"].startswith("auto-")


def test_a_trigger_after_a_kubectl_pairwarden_request_is_not_paired_with_its_id(
    cluster: LocalCluster,
) -> None:
    """`kubectl pairwarden failover` writes an id of its own; a trigger written later without
    one (`kubectl annotate ... request=failback --overwrite`) must not inherit that id, or
    the engine takes it for the request it already answered and ignores it while kubectl
    says "annotated" (found replaying issue 16 from the outside)."""
    active = start(cluster)
    away, back = ("failover", "failback") if active == "primary" else ("failback", "failover")
    before = epoch(cluster)
    request_id = cluster.request(away)
    assert next_transition(cluster, before)["to"] == other(active)
    wait_until(lambda: _consumed(cluster), timeout=15)  # its id is not left behind
    assert cluster.pair()["status"]["lastRequest"]["id"] == request_id

    _annotate(cluster, back)

    def answered() -> dict[str, Any] | None:
        last: dict[str, Any] = cluster.pair()["status"]["lastRequest"]
        return last if last["id"] != request_id else None

    # Answered as a request of its own (AlreadyActive when a loaded machine's automatic
    # failover got there first), not taken for the one already answered.
    last = wait_until(answered, timeout=30)
    assert last["id"].startswith("auto-") and last["action"] == back, last
    assert last["outcome"] in ("Accepted", "AlreadyActive"), last
    wait_until(lambda: status(cluster).get("activeMember") == active, timeout=30)
    wait_until(lambda: _consumed(cluster), timeout=15)


def _post(port: int, token: str, body: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/alertmanager",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _notification(
    namespace: str, action: str, starts_at: str, status: str = "firing"
) -> dict[str, Any]:
    labels = {
        "alertname": "VoicemailPrimaryDegraded",
        "namespace": namespace,
        "pairwarden_pair": "vm",
        "pairwarden_action": action,
    }
    alert = {"status": status, "labels": labels, "startsAt": starts_at, "fingerprint": action}
    return {"version": "4", "status": status, "receiver": "pairwarden", "alerts": [alert]}


def test_alertmanager_alerts_fail_over_and_back(cluster: LocalCluster, tmp_path: Path) -> None:
    assert cluster.operator is not None
    cluster.operator.stop()
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    port = free_port()
    receiver = ["--alertmanager-port", str(port), "--alertmanager-token-file", str(token)]
    cluster.start_operator(["--standalone", *receiver])
    start_on_primary(cluster)
    wait_until(lambda: _reachable(port), timeout=30)
    alert = functools.partial(_notification, cluster.namespace)  # where the pair lives

    before = epoch(cluster)
    assert _post(port, "wrong", alert("failover", "2026-01-05T12:00:00Z"))[0] == 401
    assert epoch(cluster) == before

    code, answer = _post(port, "s3cret", alert("failover", "2026-01-05T12:00:00Z"))
    assert code == 200 and answer["requests"][0]["outcome"] == "requested", answer
    assert next_transition(cluster, before)["cause"] == "ManualFailover"
    assert_serving(cluster, "secondary")

    before = epoch(cluster)
    assert _post(port, "s3cret", alert("failback", "2026-01-05T12:05:00Z"))[0] == 200
    assert next_transition(cluster, before)["cause"] == "ManualFailback"
    assert_serving(cluster, "primary")

    # A repeat notification of the same firing does nothing; resolved alerts do nothing.
    repeat = cluster.pair()["status"]["lastRequest"]["id"]
    assert _post(port, "s3cret", alert("failback", "2026-01-05T12:05:00Z"))[0] == 200
    resolved = alert("failover", "2026-01-05T12:00:00Z", "resolved")
    assert _post(port, "s3cret", resolved)[1]["skipped"]
    assert cluster.pair()["status"]["lastRequest"]["id"] == repeat
    # The same alert firing again later is a new request.
    before = epoch(cluster)
    assert _post(port, "s3cret", alert("failover", "2026-01-05T13:00:00Z"))[0] == 200
    assert next_transition(cluster, before)["cause"] == "ManualFailover"
    assert cluster.pair()["status"]["lastRequest"]["id"] != repeat


def _reachable(port: int) -> bool:
    try:
        return _post(port, "", {})[0] == 401
    except OSError:  # not listening yet
        return False
