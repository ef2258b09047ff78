"""`kubectl pairwarden doctor`: each misconfiguration a user makes gives a finding that names
its fix. The findings are pure (a pair as the API returns it, whether a live operator watches
its namespace, the time); the namespace's watchers come from kopf's peering objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pairwarden import doctor

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OLD = (NOW - timedelta(minutes=5)).isoformat()


def _pair(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    meta = {"name": "vm", "namespace": "voice", "creationTimestamp": OLD}
    return {"metadata": meta, "spec": {"service": "vm-calls", **spec}, "status": status or {}}


def _condition(kind: str, state: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": state, "reason": reason, "message": message}


def _peering(name: str, lastseen: datetime, lifetime: int = 60) -> dict[str, Any]:
    entry = {"priority": 1, "lifetime": lifetime, "lastseen": lastseen.isoformat()}
    return {"metadata": {"name": name}, "status": {"pod-1@host": entry}}


def test_a_live_peering_entry_covers_its_namespace_and_an_expired_one_does_not() -> None:
    assert doctor.watched([_peering("pairwarden", NOW - timedelta(seconds=20))], "pairwarden", NOW)
    assert not doctor.watched([_peering("pairwarden", NOW - timedelta(hours=1))], "pairwarden", NOW)
    assert not doctor.watched([_peering("other", NOW)], "pairwarden", NOW), "another operator's"
    assert not doctor.watched([{"metadata": {"name": "pairwarden"}}], "pairwarden", NOW)
    garbage = {"metadata": {"name": "pairwarden"}, "status": {"x": "y", "z": {"lastseen": 1}}}
    assert not doctor.watched([garbage], "pairwarden", NOW)


@pytest.mark.parametrize(
    ("covered", "says"),
    [
        (False, "no operator watches namespace voice: the pair has no status"),
        (True, "an operator watches namespace voice but has written no status"),
        (None, "no operator has reconciled it"),
    ],
)
def test_a_pair_nobody_reconciles_points_at_the_watch_settings(
    covered: bool | None, says: str
) -> None:
    (found,) = doctor.findings(_pair(), covered, NOW)
    assert says in found.problem
    if covered is not True:
        assert "watchNamespaces" in found.fix and "operator.watch" in found.fix


def test_a_new_pair_is_given_time_for_the_first_look() -> None:
    young = _pair()
    young["metadata"]["creationTimestamp"] = (NOW - timedelta(seconds=3)).isoformat()
    (found,) = doctor.findings(young, False, NOW)
    assert found.problem == "no status yet (3s old)"


def test_missing_pods_and_service_each_name_the_fix() -> None:
    status = {
        "conditions": [
            _condition("Ready", "False", "ServiceMissing", "Service vm-calls does not exist"),
            _condition(
                "MembersResolved", "False", "PodMissing",
                "spec.members.primary: pod vm-primary does not exist",
            ),
        ]
    }  # fmt: skip
    found = doctor.findings(_pair(status), True, NOW)
    assert [f.problem for f in found] == [
        "members: spec.members.primary: pod vm-primary does not exist",
        "not ready: Service vm-calls does not exist",
    ]
    assert "podName" in found[0].fix and "create the Service vm-calls" in found[1].fix


def test_a_failback_waiting_for_its_window_says_when_and_how_to_move_now() -> None:
    message = "fails back to the primary when the window 02:00-04:00 UTC opens, at 2026-12-08"
    status = {
        "conditions": [
            _condition("Ready", "True", "Serving", "secondary answers"),
            _condition("FailbackScheduled", "True", "WaitingForWindow", message),
        ]
    }
    (found,) = doctor.findings(_pair(status), True, NOW)
    assert message in found.problem and "kubectl pairwarden failback" in found.fix


def test_a_healthy_pair_has_no_findings() -> None:
    status = {
        "conditions": [
            _condition("Ready", "True", "Serving", "primary answers"),
            _condition("MembersResolved", "True", "OnePodEach", "each member names one pod"),
            _condition("FailbackScheduled", "False", "Manual", "failback only on request"),
        ]
    }
    pair = _pair(status)
    assert doctor.findings(pair, True, NOW) == []
    assert doctor.render(pair, []) == "FailoverPair voice/vm: no findings"
