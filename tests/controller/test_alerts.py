"""The Alertmanager receiver's pure parts: which alerts become which requests, with what id,
and who may send them; hostile bodies are refused, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from pairwarden.controller.alerts import AlertRequest, authorized, requests_from_webhook


def alert(status: str = "firing", starts: str = "2026-01-05T12:00:00Z", **labels: str) -> Any:
    base = {"alertname": "Degraded", "pairwarden_pair": "vm", "pairwarden_action": "failover"}
    return {"status": status, "labels": {**base, **labels}, "startsAt": starts, "fingerprint": "f1"}


def test_a_firing_alert_names_the_pair_and_the_action() -> None:
    parsed = requests_from_webhook({"alerts": [alert(namespace="voice")]}, "ops")
    (request,) = parsed.requests
    assert (request.namespace, request.pair, request.action) == ("voice", "vm", "failover")
    assert request.id.startswith("am-")
    explicit = requests_from_webhook(
        {"alerts": [alert(pairwarden_namespace="b", namespace="a")]}, "ops"
    )
    assert explicit.requests[0].namespace == "b"
    assert requests_from_webhook({"alerts": [alert()]}, "ops").requests[0].namespace == "ops"


def test_one_firing_is_one_id_and_a_new_firing_a_new_one() -> None:
    def first(body: Any) -> AlertRequest:
        return requests_from_webhook(body, "ops").requests[0]

    once = first({"alerts": [alert()]})
    assert first({"alerts": [alert()]}) == once  # Alertmanager's repeat notification
    assert first({"alerts": [alert(starts="2026-01-05T13:00:00Z")]}).id != once.id


def test_alerts_that_ask_for_nothing_are_skipped_with_a_reason() -> None:
    body = {
        "alerts": [
            alert(status="resolved"),
            alert(pairwarden_action="reboot"),
            {"status": "firing", "labels": {"alertname": "NoPair"}},
            {"labels": "not a map"},
            "not an alert",
        ]
    }
    parsed = requests_from_webhook(body, "ops")
    assert parsed.requests == ()
    assert len(parsed.skipped) == 5
    assert "not firing" in parsed.skipped[0] and "pairwarden_action" in parsed.skipped[1]


def test_a_pair_named_twice_in_one_notification_acts_once() -> None:
    body = {"alerts": [alert(), alert(pairwarden_action="failback")]}
    assert [r.action for r in requests_from_webhook(body, "ops").requests] == ["failover"]


@pytest.mark.parametrize("body", [None, [], "x", {"alerts": "x"}, {"version": "4"}])
def test_a_body_that_is_no_notification_is_refused(body: Any) -> None:
    with pytest.raises(ValueError, match="alerts"):
        requests_from_webhook(body, "ops")


def test_only_the_bearer_token_authorizes() -> None:
    assert authorized("Bearer s3cret", "s3cret")
    assert authorized("bearer s3cret", "s3cret")
    assert not authorized("Bearer wrong", "s3cret")
    assert not authorized("Basic s3cret", "s3cret")
    assert not authorized(None, "s3cret")
    assert not authorized("Bearer ", "")  # an unreadable or empty token file opens nothing
