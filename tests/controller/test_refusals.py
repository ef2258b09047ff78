"""A request the API server refused (5xx, 429) is sent again when repeating it changes
nothing (kube.retry_refusals): one refused request no longer fails a whole
reconciliation. Against the sandbox, with its faults on each verb."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client as aclient

from pairwarden.controller import leases
from pairwarden.kube import REFUSAL_PAUSES, async_api_client, refused, retry_refusals
from pairwarden.protocol import member_lease_name
from pairwarden_testbed.sandbox import Sandbox

NAME = member_lease_name("vm", "primary")


async def no_wait(_: float) -> None:
    """The pause between attempts, not slept: tests are not timed."""


@pytest.fixture
async def api(sandbox_only: Sandbox) -> AsyncIterator[aclient.ApiClient]:
    api = await async_api_client(str(sandbox_only.kubeconfig_path))
    retry_refusals(api, sleep=no_wait)
    yield api
    await api.close()
    sandbox_only.clear_faults()


def body(namespace: str) -> dict[str, object]:
    return {"metadata": {"name": NAME, "namespace": namespace}, "spec": {"holderIdentity": "a"}}


def left(sandbox: Sandbox, namespace: str) -> list[int]:
    """The count each fault injected in `namespace` has left."""
    return [int(f["count"]) for f in sandbox.pending_faults() if f["namespace"] == namespace]


@pytest.mark.parametrize(
    ("verb", "status"), [("get", 503), ("list", 500), ("patch", 429), ("update", 503)]
)
async def test_a_refused_repeatable_request_is_sent_again(
    api: aclient.ApiClient, namespace: str, sandbox_only: Sandbox, verb: str, status: int
) -> None:
    coordination = aclient.CoordinationV1Api(api)
    await coordination.create_namespaced_lease(namespace, body(namespace))
    sandbox_only.inject_fault(verb, "leases", namespace=namespace, status=status, count=2)
    if verb == "get":
        await coordination.read_namespaced_lease(NAME, namespace)
    elif verb == "list":
        await coordination.list_namespaced_lease(namespace)
    elif verb == "patch":
        patch = {"spec": {"holderIdentity": "b"}}
        await coordination.patch_namespaced_lease(NAME, namespace, patch)
    else:
        lease = await coordination.read_namespaced_lease(NAME, namespace)
        await coordination.replace_namespaced_lease(NAME, namespace, lease)
    assert left(sandbox_only, namespace) == []  # both refusals met, then served


async def test_the_confirming_read_unread_by_the_client_is_sent_again(
    api: aclient.ApiClient, namespace: str, sandbox_only: Sandbox
) -> None:
    """`leases.read_member` reads the raw response (`_preload_content=False`): the client
    raises nothing for its status, and the retry looks at it itself."""
    await aclient.CoordinationV1Api(api).create_namespaced_lease(namespace, body(namespace))
    sandbox_only.inject_fault("get", "leases", namespace=namespace, status=503, count=3)
    lease = await leases.read_member(api, namespace, "vm", "primary")
    assert lease["spec"]["holderIdentity"] == "a"
    assert left(sandbox_only, namespace) == []


async def test_a_refusal_that_lasts_is_raised_after_the_last_attempt(
    api: aclient.ApiClient, namespace: str, sandbox_only: Sandbox
) -> None:
    sandbox_only.inject_fault("get", "leases", namespace=namespace, status=503, count=100)
    with pytest.raises(aclient.ApiException) as raised:
        await aclient.CoordinationV1Api(api).read_namespaced_lease(NAME, namespace)
    assert raised.value.status == 503
    assert left(sandbox_only, namespace) == [100 - (len(REFUSAL_PAUSES) + 1)]
    with pytest.raises(aclient.ApiException):  # unread: the caller raises for the last one
        await leases.read_member(api, namespace, "vm", "primary")
    assert left(sandbox_only, namespace) == [100 - 2 * (len(REFUSAL_PAUSES) + 1)]


@pytest.mark.parametrize(
    ("verb", "status"),
    [("create", 503), ("delete", 503), ("get", 404), ("patch", 409), ("get", 403)],
)
async def test_a_create_a_delete_or_an_answer_is_sent_once(
    api: aclient.ApiClient, namespace: str, sandbox_only: Sandbox, verb: str, status: int
) -> None:
    """A create or a delete may have been carried out before the server failed: never sent
    twice. A 4xx is the server's answer, not a refusal."""
    coordination = aclient.CoordinationV1Api(api)
    if verb != "create":
        await coordination.create_namespaced_lease(namespace, body(namespace))
    sandbox_only.inject_fault(verb, "leases", namespace=namespace, status=status, count=2)
    with pytest.raises(aclient.ApiException):
        if verb == "create":
            await coordination.create_namespaced_lease(namespace, body(namespace))
        elif verb == "delete":
            await coordination.delete_namespaced_lease(NAME, namespace)
        elif verb == "get":
            await coordination.read_namespaced_lease(NAME, namespace)
        else:
            await coordination.patch_namespaced_lease(NAME, namespace, {"spec": {}})
    assert left(sandbox_only, namespace) == [1]


def test_which_answers_are_refusals() -> None:
    assert [s for s in (200, 400, 404, 409, 422, 429, 500, 502, 503, 504) if refused(s)] == [
        429,
        500,
        502,
        503,
        504,
    ]
