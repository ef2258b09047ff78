"""What the operator holds per pair and per connection on a real API server.

The body kopf keeps for a pair's daemon is the dict of the pair's latest event, and
`pair_changed` (run before the daemon is spawned or refreshed) drops its managedFields, as a
real API server writes them (kube-apiserver 1.20: one entry per client that wrote the object).
kopf's session opens a bounded number of connections (its own has no limit): a TLS connection
costs the operator about 300 KiB."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import kopf
import pytest

from pairwarden.clock import ManualClock
from pairwarden.controller import handlers
from pairwarden.controller.observations import ObservationBook
from pairwarden.kube import drop_managed_fields

MANAGED = [
    {
        "manager": "kopf",
        "operation": "Update",
        "apiVersion": "pairwarden.io/v1alpha1",
        "time": "2026-12-07T17:26:27Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:finalizers": {".": {}, 'v:"pairwarden.io/finalizer"': {}}}},
    },
    {
        "manager": "OpenAPI-Generator",
        "operation": "Update",
        "apiVersion": "pairwarden.io/v1alpha1",
        "time": "2026-12-07T17:26:40Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:status": {".": {}, "f:activeMember": {}, "f:epoch": {}}},
    },
]


def pair_as_served(name: str = "vm") -> dict[str, Any]:
    """A FailoverPair as kube-apiserver 1.20 serves it after the operator's first writes."""
    return {
        "apiVersion": "pairwarden.io/v1alpha1",
        "kind": "FailoverPair",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": "8429",
            "generation": 1,
            "finalizers": ["pairwarden.io/finalizer"],
            "annotations": {"pairwarden.io/request": "failover"},
            "managedFields": copy.deepcopy(MANAGED),
        },
        "spec": {"service": f"{name}-calls"},
        "status": {"activeMember": "primary", "epoch": 1},
    }


def memo() -> kopf.Memo:
    return kopf.Memo(book=ObservationBook(), clock=ManualClock(monotonic=5.0))


async def test_the_body_kopf_keeps_has_no_managed_fields_and_all_else() -> None:
    raw = pair_as_served()
    expected = copy.deepcopy(raw)
    del expected["metadata"]["managedFields"]
    event: Any = {"type": "MODIFIED", "object": raw}
    state = memo()
    await handlers.pair_changed(name="vm", namespace="ns", memo=state, type="MODIFIED", event=event)
    assert raw == expected  # the same dict, in place: kopf's Body for the daemon wraps it
    assert state.book.pair("ns", "vm").wake.is_set()  # and the pair is woken as before


async def test_a_body_without_managed_fields_is_taken_as_it_is() -> None:
    """The sandbox writes none; a deleted pair's last event is handled as ever."""
    raw = pair_as_served()
    del raw["metadata"]["managedFields"]
    before = copy.deepcopy(raw)
    event: Any = {"type": "DELETED", "object": raw}
    state = memo()
    known = state.book.pair("ns", "vm")
    await handlers.pair_changed(name="vm", namespace="ns", memo=state, type="DELETED", event=event)
    assert raw == before
    assert state.book.pair("ns", "vm") is not known  # forgotten


def test_drop_managed_fields_leaves_objects_without_metadata_alone() -> None:
    assert drop_managed_fields({"kind": "Status"}) == {"kind": "Status"}
    assert drop_managed_fields({"metadata": None}) == {"metadata": None}


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [
        pytest.param([], 2 + handlers.KOPF_REQUEST_CONNECTIONS, id="every-namespace"),
        pytest.param(None, 2 + handlers.KOPF_REQUEST_CONNECTIONS, id="unset"),
        pytest.param(["a", "b", "c"], 6 + handlers.KOPF_REQUEST_CONNECTIONS, id="three"),
    ],
)
def test_each_kopf_watch_has_its_connection_and_requests_share_the_rest(
    namespaces: list[str] | None, expected: int
) -> None:
    """A watch holds its connection for its life: a limit below the watches would leave
    kopf's requests waiting for ever once every connection is a watch's."""
    assert handlers.kopf_connections(namespaces) == expected


async def test_kopfs_session_is_bounded_and_carries_the_credentials() -> None:
    info = kopf.ConnectionInfo(
        server="https://127.0.0.1:6443",
        scheme="Bearer",
        token="t0k",
        default_namespace="voice",
        priority=3,
    )
    context = handlers.bounded_session(info, 7)
    session = context.aiohttp_session
    try:
        assert (context.server, context.default_namespace, context.priority) == (
            "https://127.0.0.1:6443",
            "voice",
            3,
        )
        assert isinstance(session.connector, aiohttp.TCPConnector)
        assert session.connector.limit == 7  # kopf's own: 0, no limit
        assert session.headers["Authorization"] == "Bearer t0k"
    finally:
        await session.close()
