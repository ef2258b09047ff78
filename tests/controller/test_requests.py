"""Requests without an id: stamped with an id derived from the write, acted on once, then
removed, so the same annotation written again is a new request; on the sandbox, the stamp and
the removal are conditional (a later write is never stamped with an older id, a rewrite is
never removed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client as sync_client

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.api.models import RequestStatus
from pairwarden.controller import requests
from pairwarden.engine import ManualRequest
from pairwarden.kube import async_api_client
from pairwarden.protocol import ANNOTATION_REQUEST, ANNOTATION_REQUEST_ID
from pairwarden_testbed.localcluster import failover_pair


def test_a_request_with_an_id_is_acted_on_as_written() -> None:
    wanted = requests.pending({ANNOTATION_REQUEST: "failover", ANNOTATION_REQUEST_ID: "x1"}, "7")
    assert wanted == requests.Pending(ManualRequest(id="x1", action="failover"))


def test_a_request_without_an_id_waits_for_the_stamp_of_this_write() -> None:
    assert requests.pending({ANNOTATION_REQUEST: "failover"}, "41") == requests.Pending(
        None, stamp="auto-41"
    )
    assert requests.pending({ANNOTATION_REQUEST: "failover"}, None) == requests.Pending(None)
    assert requests.pending({}, "41") == requests.Pending(None)


def _ack(request_id: str, action: str = "failover") -> RequestStatus:
    return RequestStatus(
        id=request_id, action=action, outcome="Accepted", time=datetime(2026, 1, 5, tzinfo=UTC)
    )


def test_only_an_acknowledged_request_is_consumed() -> None:
    stamped = {ANNOTATION_REQUEST: "failover", ANNOTATION_REQUEST_ID: "auto-41"}
    assert requests.consumable(stamped, _ack("auto-41"))
    assert not requests.consumable(stamped, _ack("auto-40"))  # not acknowledged yet
    assert not requests.consumable(stamped, None)
    # Another action written over the id since: a new request, not to be removed unseen.
    assert not requests.consumable(stamped, _ack("auto-41", "failback"))
    # An id of the writer's own (`kubectl pairwarden`, Alertmanager) is removed as well once
    # answered: left behind, a trigger written later without an id would inherit it.
    assert requests.consumable(
        {ANNOTATION_REQUEST: "failover", ANNOTATION_REQUEST_ID: "x1"}, _ack("x1")
    )


def test_an_action_rewritten_over_an_acknowledged_id_is_a_new_request() -> None:
    """`kubectl pairwarden failback` (id x1) answered, then, before its annotations are
    removed, `kubectl annotate ... request=failover --overwrite`: the failover is new."""
    rewritten = {ANNOTATION_REQUEST: "failover", ANNOTATION_REQUEST_ID: "x1"}
    assert requests.pending(rewritten, "52", _ack("x1", "failback")) == requests.Pending(
        None, stamp="auto-52"
    )
    # The same action under the same id is the answered request itself: nothing new.
    assert requests.pending(rewritten, "52", _ack("x1")) == requests.Pending(
        ManualRequest(id="x1", action="failover")
    )
    # An id not answered yet is acted on as written.
    assert requests.pending(rewritten, "52", _ack("x0", "failback")) == requests.Pending(
        ManualRequest(id="x1", action="failover")
    )


def _pair(objects: sync_client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = objects.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "vm"
    )
    return body


def _annotate(objects: sync_client.CustomObjectsApi, namespace: str, values: dict[str, Any]) -> str:
    patch = {"metadata": {"annotations": values}}
    objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "vm", patch)
    return str(_pair(objects, namespace)["metadata"]["resourceVersion"])


async def test_stamp_and_consume_are_conditional_on_the_sandbox(
    sandbox: Any, api_client: sync_client.ApiClient, namespace: str
) -> None:
    objects = sync_client.CustomObjectsApi(api_client)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, failover_pair())
    first = _annotate(objects, namespace, {ANNOTATION_REQUEST: "failover"})
    later = _annotate(objects, namespace, {"someone/else": "wrote"})
    api = await async_api_client(str(sandbox.kubeconfig_path))
    try:
        # The write it was derived from is no longer the latest: no stamp with an old id.
        assert not await requests.stamp(api, namespace, "vm", first, f"auto-{first}")
        assert ANNOTATION_REQUEST_ID not in _pair(objects, namespace)["metadata"]["annotations"]
        assert await requests.stamp(api, namespace, "vm", later, f"auto-{later}")
        annotations = _pair(objects, namespace)["metadata"]["annotations"]
        assert annotations[ANNOTATION_REQUEST_ID] == f"auto-{later}"

        # Rewritten meanwhile (a failback now): the consume leaves the new request alone.
        _annotate(objects, namespace, {ANNOTATION_REQUEST: "failback"})
        await requests.consume(api, namespace, "vm", annotations)
        assert (
            _pair(objects, namespace)["metadata"]["annotations"][ANNOTATION_REQUEST] == "failback"
        )

        annotations = _pair(objects, namespace)["metadata"]["annotations"]
        await requests.consume(api, namespace, "vm", annotations)
        left = _pair(objects, namespace)["metadata"]["annotations"]
        assert ANNOTATION_REQUEST not in left and ANNOTATION_REQUEST_ID not in left
        assert left["someone/else"] == "wrote"
        # Written again, the same request is a change, with a new id of its own.
        again = _annotate(objects, namespace, {ANNOTATION_REQUEST: "failover"})
        assert requests.pending(
            _pair(objects, namespace)["metadata"]["annotations"], again
        ).stamp == (f"auto-{again}")
        assert again != later
    finally:
        await api.close()
