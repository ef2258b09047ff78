"""The operator's reads of member pods and the callers' Service, from the outside: a missing
object is an answer (a member gone, a Service to report), any other API error is raised
(kube.absent_as_none, shared with the agent's reads of its Lease and pair)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client as aclient

from pairwarden.controller import pods, services
from pairwarden.kube import async_api_client
from pairwarden_testbed.sandbox import Sandbox


@pytest.fixture
async def api(sandbox_only: Sandbox) -> AsyncIterator[aclient.ApiClient]:
    api = await async_api_client(str(sandbox_only.kubeconfig_path))
    yield api
    await api.close()


async def test_missing_pod_and_service_are_answers(api: aclient.ApiClient, namespace: str) -> None:
    assert await pods.ip(api, namespace, "vm-0") is None
    assert await pods.label(api, namespace, "vm-0", "vm", "primary", True) is False
    gone = await pods.resolve_member(api, namespace, "spec.primary", "vm-0", None)
    assert gone == pods.Resolution("vm-0", running=False, exists=False)
    assert await services.read_selector(api, namespace, "calls") is None


async def test_other_errors_are_raised(
    api: aclient.ApiClient, namespace: str, sandbox_only: Sandbox
) -> None:
    sandbox_only.inject_fault("get", "pods", namespace=namespace, status=403, count=1)
    with pytest.raises(aclient.ApiException) as refused:
        await pods.ip(api, namespace, "vm-0")
    assert refused.value.status == 403
    sandbox_only.inject_fault("get", "services", namespace=namespace, status=500, count=1)
    with pytest.raises(aclient.ApiException) as failed:
        await services.read_selector(api, namespace, "calls")
    assert failed.value.status == 500


async def test_a_step_reads_both_pods_and_the_service_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step woken by a crash decides after these reads: they go out together, one round trip
    rather than three (issue 26), and each answer lands where it belongs."""
    import asyncio

    from pairwarden.api.models import parse_spec
    from pairwarden.clock import ManualClock
    from pairwarden.controller import reconcile
    from pairwarden.controller.observations import ObservationBook

    in_flight, most = 0, 0
    release = asyncio.Event()

    async def read(answer: object) -> object:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if most == 3:
            release.set()
        await asyncio.wait_for(release.wait(), 5)  # a step that reads one at a time: never 3
        in_flight -= 1
        return answer

    def resolve(api: object, ns: str, path: str, name: str | None, sel: object) -> object:
        return read(pods.Resolution(name, running=True))

    async def selected(api: object, ns: str, selector: object) -> tuple[str, ...]:
        return ("a",)

    monkeypatch.setattr(pods, "resolve_member", resolve)
    monkeypatch.setattr(pods, "selected", selected)
    monkeypatch.setattr(services, "read_selector", lambda api, ns, name: read({"m": "primary"}))
    spec = parse_spec(
        {"members": {"primary": {"podName": "a"}, "secondary": {"podName": "b"}}, "service": "c"}
    )
    rt = reconcile.Runtime(api=None, book=ObservationBook(), clock=ManualClock())  # type: ignore[arg-type]
    seen = await reconcile._read_world(rt, "voice", spec, rt.book.pair("voice", "vm"))
    assert most == 3
    assert {m: r.name for m, r in seen.pods.items()} == {"primary": "a", "secondary": "b"}
    assert seen.routing.selector == {"m": "primary"} and seen.routing.selected == ("a",)


async def test_a_member_pod_the_watch_holds_running_is_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Resyncs read both member pods by name every 30 s: 0.067 of an idle pair's 0.133
    reads/s on kube-apiserver. A pod the member pod watch holds (the one the spec names,
    running) stands for that read; one it holds as gone, another pod of the name (a new
    uid is a new sighting, but a watch may lag), or one it never saw, is read."""
    from pairwarden.api.models import parse_spec
    from pairwarden.clock import ManualClock
    from pairwarden.controller import podwatch, reconcile
    from pairwarden.controller.observations import ObservationBook

    read: list[str | None] = []

    async def resolve(api: object, ns: str, path: str, name: str | None, sel: object) -> object:
        read.append(name)
        return pods.Resolution(name, running=False, exists=False)

    async def selector(api: object, ns: str, name: str) -> dict[str, str]:
        return {"pairwarden.io/pair": "vm", "pairwarden.io/member": "primary"}

    async def selected(api: object, ns: str, selector: object) -> tuple[str, ...]:
        return ("a",)

    monkeypatch.setattr(pods, "resolve_member", resolve)
    monkeypatch.setattr(pods, "selected", selected)
    monkeypatch.setattr(services, "read_selector", selector)
    spec = parse_spec(
        {"members": {"primary": {"podName": "a"}, "secondary": {"podName": "b"}}, "service": "c"}
    )
    book = ObservationBook()
    rt = reconcile.Runtime(api=None, book=book, clock=ManualClock())  # type: ignore[arg-type]

    def member_pod(name: str, member: str, phase: str = "Running") -> dict[str, object]:
        labels = {"pairwarden.io/pair": "vm", "pairwarden.io/member": member, "x": "y"}
        meta = {"name": name, "namespace": "voice", "uid": f"u-{name}", "labels": labels}
        return {"metadata": meta, "status": {"phase": phase, "podIP": f"10.0.0.{len(name)}"}}

    podwatch.record_pod(book, member_pod("a", "primary"), None, 1.0)
    podwatch.record_pod(book, member_pod("b", "secondary", phase="Pending"), None, 1.0)
    seen = await reconcile._read_world(rt, "voice", spec, book.pair("voice", "vm"))
    assert read == ["b"]  # the pending one is read, the running one is not
    # With its address: the standby's probe claim counts only for the address the operator
    # holds (engine.probed_gone); taken from the watch without it, a crash the probe proved
    # waited for W (HeartbeatLost), found by e2e once both changes met on main.
    assert seen.pods["primary"] == pods.Resolution("a", True, labels={
        "pairwarden.io/pair": "vm", "pairwarden.io/member": "primary", "x": "y"},
        ip="10.0.0.1")  # fmt: skip

    read.clear()  # deleted: the watch's word is "gone", and gone is read
    podwatch.record_pod(book, member_pod("a", "primary"), "DELETED", 2.0)
    await reconcile._read_world(rt, "voice", spec, book.pair("voice", "vm"))
    assert read == ["a", "b"]

    read.clear()  # the spec names another pod than the one watched as the primary
    podwatch.record_pod(book, member_pod("a2", "primary"), None, 3.0)
    await reconcile._read_world(rt, "voice", spec, book.pair("voice", "vm"))
    assert read == ["a", "b"]


def test_a_relist_forgets_member_pods_deleted_in_the_gap() -> None:
    """A watch closed by the server, then 410 Gone: the pod deleted meanwhile sends no
    event, and the listing does not hold it. Kept as running, a step would take it from the
    watch instead of reading it gone."""
    from pairwarden.controller import podwatch
    from pairwarden.controller.observations import ObservationBook

    book = ObservationBook()

    def member_pod(pair: str, member: str) -> dict[str, object]:
        labels = {"pairwarden.io/pair": pair, "pairwarden.io/member": member}
        meta = {"name": f"{pair}-{member}", "namespace": "voice", "uid": "u", "labels": labels}
        return {"metadata": meta, "status": {"phase": "Running"}}

    for pair in ("vm", "mail"):
        for member in ("primary", "secondary"):
            podwatch.record_pod(book, member_pod(pair, member), None, 1.0)
    relisted = [member_pod("vm", "primary"), member_pod("mail", "primary")]
    for item in relisted:
        podwatch.record_pod(book, item, None, 9.0)
    podwatch.forget_unlisted(book, "voice", {podwatch.member_key(p) for p in relisted})
    assert set(book.pair("voice", "vm").pods) == {"primary"}
    assert set(book.pair("voice", "mail").pods) == {"primary"}
    assert pods.watched(book.pair("voice", "vm").pods.get("secondary"), "vm-secondary") is None
    assert pods.watched(book.pair("voice", "vm").pods["primary"], "vm-primary") is not None
