"""The operator's blindness is never a member's silence (observations.Hearing), and a
HeartbeatLost verdict is confirmed by a fresh read (reconcile.confirm_silences)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client as aclient

from pairwarden.clock import ManualClock
from pairwarden.controller import reconcile
from pairwarden.controller.client import report_waits
from pairwarden.controller.observations import (
    ActiveSighting,
    Hearing,
    ObservationBook,
    covered,
    unheard,
)
from pairwarden.controller.pods import Resolution
from pairwarden.controller.reconcile import PairMemory, Runtime, Seen, confirm_silences
from pairwarden.engine.types import Decision, RoutingView
from pairwarden.kube import async_api_client
from pairwarden.protocol import (
    LABEL_MEMBER,
    LABEL_PAIR,
    HeartbeatSizing,
    MemberReport,
    member_lease_name,
)
from pairwarden_testbed.sandbox import Sandbox

W = 6.0
SIZING = HeartbeatSizing(window=W, renew_period=W / 3)  # a request may take 1 s


def lease(member: str, renew: str, namespace: str = "voice") -> dict[str, Any]:
    return {
        "metadata": {
            "name": member_lease_name("vm", member),
            "namespace": namespace,
            "labels": {LABEL_PAIR: "vm", LABEL_MEMBER: member},
            "annotations": MemberReport(service_up=True).to_annotations(),
        },
        "spec": {"renewTime": renew, "holderIdentity": f"vm-{member}"},
    }


def test_a_member_silent_while_the_operator_hears_is_lost_at_w() -> None:
    book = ObservationBook()
    book.listening.heard(0.0)
    book.record_lease(lease("primary", "t1"), None, 1.0)
    for t in (2.0, 4.0, 6.0):  # the other member's renewals: the watch works
        book.listening.heard(t)
    pair = book.pair("voice", "vm")
    assert pair.silent_beyond(W, 7.0) == []
    assert pair.silent_beyond(W, 7.1) == ["primary"]


def test_an_outage_of_any_length_is_not_counted_and_the_operator_hears_again_first() -> None:
    hearing = Hearing()
    hearing.heard(10.0)  # a member renewed at 10.0, seen then
    hearing.missed(12.0)  # the API stops answering; the failure is noticed at 12
    hearing.missed(500.0)  # still failing
    assert hearing.silence_counted_from(10.0, 600.0) == 600.0  # deaf from 10 until now
    hearing.heard(1000.0)  # it answers again
    assert hearing.silence_counted_from(10.0, 1000.0) == 1000.0  # silent for 0 s counted
    # The member is judged W of hearing time later, not at once: it can renew meanwhile.
    assert hearing.silence_counted_from(10.0, 1000.0 + W) == 1000.0


def test_silence_before_and_after_an_outage_adds_up() -> None:
    """A crash before an outage is detected after W of hearing time in all, so an outage
    delays the detection by its own length and no more."""
    hearing = Hearing()
    hearing.heard(0.0)
    hearing.heard(4.0)  # the member's last renewal was seen at 0; the watch worked till 4
    hearing.missed(5.0)
    hearing.heard(30.0)
    counted = hearing.silence_counted_from(0.0, 32.0)
    assert 32.0 - counted == pytest.approx(4.0 + 2.0)


def test_a_5xx_storm_leaves_most_time_counted() -> None:
    """Half the requests fail, but the watch keeps delivering: each episode runs from the
    success before a failure to the one after, and a crash is still detected near W."""
    hearing = Hearing()
    t = 0.0
    while t < 60.0:
        hearing.heard(t)
        hearing.missed(t + 0.1)
        t += 0.2
    hearing.heard(60.0)
    assert hearing.deaf_between(0.0, 60.0) == pytest.approx(60.0)  # every gap had a failure
    hearing = Hearing()
    for step in range(300):
        t = step * 0.2
        hearing.heard(t)
        if step % 2:
            hearing.heard(t + 0.1)
            hearing.missed(t + 0.15)
    hearing.heard(60.0)
    assert hearing.deaf_between(0.0, 60.0) == pytest.approx(150 * 0.1, rel=0.05)


def test_episodes_merge_and_are_bounded() -> None:
    hearing = Hearing()
    for i in range(1000):
        hearing.heard(float(i))
        hearing.missed(i + 0.5)
    hearing.heard(1000.0)
    assert len(hearing.episodes) == 1  # each began where the last success was: one span
    assert hearing.deaf_between(0.0, 1000.0) == pytest.approx(1.0 * 1000 - 0.0, abs=1.0)


def test_an_answer_later_than_a_pairs_patience_is_deafness_since_the_last_success() -> None:
    """A request held by a stalled server (etcd paused) and answered when it resumes: for a
    pair whose renewals may take less than that wait, the time is not hearing time, from the
    last success before it was sent, as for a timeout; for a pair with more patience it is."""
    hearing = Hearing()
    hearing.heard(10.0)  # the last watch event before the stall
    hearing.waited(10.0, 16.0, 16.9)  # prompt for a pair with 1 s: heard
    assert hearing.deaf_between(0.0, 17.0, patience=1.0) == 0.0
    hearing.waited(10.0, 17.0, 30.0)  # sent at 17, held 13 s
    assert hearing.deaf_between(0.0, 30.0, patience=1.0) == pytest.approx(20.0)
    assert hearing.silence_counted_from(10.0, 31.0, patience=1.0) == pytest.approx(30.0)
    assert hearing.deaf_between(0.0, 30.0, patience=15.0) == 0.0  # that wait was within
    assert hearing.deaf_between(0.0, 30.0) == 0.0
    hearing.missed(31.0)  # an episode over the stall's span counts once
    hearing.heard(40.0)
    assert hearing.deaf_between(0.0, 40.0, patience=1.0) == pytest.approx(30.0)


def test_covered_counts_overlapping_spans_once() -> None:
    spans = [(5.0, 8.0), (0.0, 2.0), (1.0, 3.0), (7.0, 20.0)]
    assert covered(spans, 0.0, 10.0) == pytest.approx(3.0 + 5.0)
    assert covered(spans, 2.5, 6.0) == pytest.approx(0.5 + 1.0)
    assert covered([], 0.0, 10.0) == 0.0


def test_which_failures_are_deafness() -> None:
    assert unheard(aclient.ApiException(status=503))
    assert unheard(aclient.ApiException(status=429))
    assert unheard(TimeoutError())
    assert unheard(aiohttp.ServerDisconnectedError())
    assert unheard(ConnectionRefusedError())
    assert not unheard(aclient.ApiException(status=409))  # an answer
    assert not unheard(aclient.ApiException(status=403))
    assert not unheard(ValueError("a bug is not deafness"))


# ------------------------------------------------------------------ the confirming read


@pytest.fixture
async def api(sandbox_only: Sandbox) -> AsyncIterator[aclient.ApiClient]:
    api = await async_api_client(str(sandbox_only.kubeconfig_path))
    yield api
    await api.close()


async def _put(
    api: aclient.ApiClient, namespace: str, member: str, renew: str, heard_ms: int | None = None
) -> None:
    body = lease(member, renew, namespace)
    body["spec"]["renewTime"] = renew
    report = MemberReport(service_up=True, peer_heard_ms=heard_ms)
    body["metadata"]["annotations"] = report.to_annotations()
    leases = aclient.CoordinationV1Api(api)
    try:
        old = await leases.read_namespaced_lease(member_lease_name("vm", member), namespace)
    except aclient.ApiException:
        await leases.create_namespaced_lease(namespace, body)
        return
    body["metadata"]["resourceVersion"] = old.metadata.resource_version
    await leases.replace_namespaced_lease(member_lease_name("vm", member), namespace, body)


RENEW_1 = "2026-12-07T11:00:00.000000Z"
RENEW_2 = "2026-12-07T11:00:05.000000Z"


async def test_a_renewal_the_watch_did_not_deliver_is_found_by_the_read(
    api: aclient.ApiClient, namespace: str
) -> None:
    clock = ManualClock(monotonic=100.0)
    book = ObservationBook()
    rt = Runtime(api=api, book=book, clock=clock)
    await _put(api, namespace, "primary", RENEW_1)
    book.record_lease(lease("primary", RENEW_1, namespace), None, 100.0)
    await _put(api, namespace, "primary", RENEW_2)  # renewed; the watch lags behind
    clock.advance(W + 1)
    pair = book.pair(namespace, "vm")
    assert pair.silent_beyond(W, clock.monotonic()) == ["primary"]
    await confirm_silences(rt, namespace, "vm", pair, W, clock.monotonic())
    assert pair.silent_beyond(W, clock.monotonic()) == []
    assert pair.members["primary"].last_seen == clock.monotonic()
    assert not pair.members["primary"].lost and pair.members["primary"].back_since is None


async def test_an_unchanged_renewal_confirms_the_silence(
    api: aclient.ApiClient, namespace: str
) -> None:
    clock = ManualClock(monotonic=100.0)
    book = ObservationBook()
    rt = Runtime(api=api, book=book, clock=clock)
    await _put(api, namespace, "primary", RENEW_1)
    book.record_lease(lease("primary", RENEW_1, namespace), None, 100.0)
    clock.advance(W + 1)
    pair = book.pair(namespace, "vm")
    await confirm_silences(rt, namespace, "vm", pair, W, clock.monotonic())
    assert pair.silent_beyond(W, clock.monotonic()) == ["primary"]
    assert pair.members["primary"].lost  # its next renewal is a return, heard once


async def test_a_read_in_a_shared_lull_gives_both_members_time_to_renew(
    api: aclient.ApiClient, namespace: str
) -> None:
    """The API server was away for everyone and the idle operator never noticed (nothing it
    sent failed). It wakes at the holder's deadline just after the server came back: both
    Leases read stale, but the members may still be in their retry pause. Neither is
    confirmed before `back_within` from that read; both are then, if still silent (both
    really down: the revoke comes that much later, once)."""
    clock = ManualClock(monotonic=100.0)
    book = ObservationBook()
    rt = Runtime(api=api, book=book, clock=clock)
    pair = book.pair(namespace, "vm")
    pair.sizing = SIZING
    for member in ("primary", "secondary"):
        await _put(api, namespace, member, RENEW_1)
        book.record_lease(lease(member, RENEW_1, namespace), None, 100.0)
    clock.advance(W + 1)
    await confirm_silences(rt, namespace, "vm", pair, W, clock.monotonic())
    assert pair.silent_beyond(W, clock.monotonic()) == []
    assert not pair.members["primary"].lost and not pair.members["secondary"].lost
    clock.advance(SIZING.back_within + 0.01)
    await confirm_silences(rt, namespace, "vm", pair, W, clock.monotonic())
    assert pair.silent_beyond(W, clock.monotonic()) == ["primary", "secondary"]
    assert pair.members["primary"].lost and pair.members["secondary"].lost


async def test_a_failed_read_confirms_nothing(
    api: aclient.ApiClient, namespace: str, sandbox_only: Sandbox
) -> None:
    clock = ManualClock(monotonic=100.0)
    book = ObservationBook()
    rt = Runtime(api=api, book=book, clock=clock)
    book.record_lease(lease("primary", RENEW_1, namespace), None, 100.0)
    clock.advance(W + 1)
    sandbox_only.inject_fault("get", "leases", namespace=namespace, status=503, count=1)
    with pytest.raises(aclient.ApiException):  # the step fails and is retried: no verdict
        await confirm_silences(rt, namespace, "vm", book.pair(namespace, "vm"), W, 107.0)


async def test_a_read_answered_after_a_stall_confirms_nothing(
    api: aclient.ApiClient, namespace: str
) -> None:
    """etcd paused for three windows: the read of the verdict waits in kube-apiserver and is
    answered when etcd resumes, with the renewTime from before the pause (the member's
    renewals waited and failed too). That is a stalled server, not a silent member: no
    verdict, and the member has the rest of its window to renew. (On the real control plane
    this moved the role at once: epoch 1 -> 2, 5 calls lost.)"""
    clock = ManualClock(monotonic=100.0)
    book = ObservationBook()
    rt = Runtime(api=api, book=book, clock=clock)
    await _put(api, namespace, "primary", RENEW_1)
    book.listening.heard(100.0)
    book.record_lease(lease("primary", RENEW_1, namespace), None, 100.0)
    book.listening.heard(101.0)  # the last event the watch delivered before the pause
    clock.advance(W + 1)
    send = api.rest_client.request

    async def stalled(*args: Any, **kwargs: Any) -> Any:
        clock.advance(3 * W)  # held until etcd resumes
        return await send(*args, **kwargs)

    api.rest_client.request = stalled
    report_waits(api, clock, book.listening)  # as the operator's
    pair = book.pair(namespace, "vm")
    pair.sizing = SIZING  # as the step sets it
    assert pair.silent_beyond(W, clock.monotonic()) == ["primary"]
    await confirm_silences(rt, namespace, "vm", pair, W, clock.monotonic())
    assert not pair.members["primary"].lost
    assert pair.silent_beyond(W, clock.monotonic()) == []
    # Counted: the 1 s of hearing before the pause; the member renews within W of now.
    assert clock.monotonic() - pair.counted_last_seen("primary", clock.monotonic()) == 1.0
    api.rest_client.request = send
    clock.advance(W - 1.0 + 0.1)  # and a member that stays silent is lost W later
    assert pair.silent_beyond(W, clock.monotonic()) == ["primary"]
    await confirm_silences(
        rt, namespace, "vm", pair, W, clock.monotonic()
    )  # answered at once: confirmed
    assert pair.members["primary"].lost


class _Judged(Exception):
    """Ends a step once the engine has decided: what it decided is what is tested."""


async def test_the_engine_judges_at_the_instant_the_verdicts_were_confirmed(
    api: aclient.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late watch event: the holder renewed (the server holds RENEW_2), the operator's watch
    has delivered only RENEW_1, seen W - 0.2 s ago. No verdict yet, so no read; then the
    step's reads of the world take 0.5 s (a loaded machine, a slow API). The engine judged at
    the end of those reads, found the holder silent past W, unconfirmed, and failed it over
    (HeartbeatLost, epoch 1 -> 2, with the watch 9 s behind and the agent renewing every 2 s).
    It must judge at the instant the verdicts were confirmed."""
    clock = ManualClock(monotonic=100.0)
    book = ObservationBook()
    book.listed(namespace, 100.0)
    rt = Runtime(api=api, book=book, clock=clock)
    await _put(api, namespace, "primary", RENEW_2)  # the renewal the watch has not delivered
    book.record_lease(lease("primary", RENEW_1, namespace), None, 100.0)
    book.record_lease(lease("secondary", RENEW_1, namespace), None, 105.0)
    pair = book.pair(namespace, "vm")
    pair.see_active(ActiveSighting("vm-primary", 1, "1", member="primary"))
    clock.advance(W - 0.2)

    async def slow_world(*_: Any) -> Seen:
        clock.advance(0.5)
        running = {m: Resolution(f"vm-{m}", running=True) for m in ("primary", "secondary")}
        return Seen(running, RoutingView(selector={LABEL_PAIR: "vm"}, selected=("vm-primary",)))

    decided: list[Decision] = []

    def judged(*args: Any) -> Decision:
        decided.append(reconcile_decide(*args))
        raise _Judged

    reconcile_decide = reconcile.decide
    monkeypatch.setattr(reconcile, "_read_world", slow_world)
    monkeypatch.setattr(reconcile, "decide", judged)
    body = {
        "apiVersion": "pairwarden.io/v1alpha1",
        "kind": "FailoverPair",
        "metadata": {"namespace": namespace, "name": "vm", "uid": "u", "generation": 1},
        "spec": {
            "members": {
                "primary": {"podName": "vm-primary"},
                "secondary": {"podName": "vm-secondary"},
            },
            "service": "vm-calls",
            "heartbeat": {"intervalMs": 100, "missedBeforeFailover": 60},
        },
        "status": {"activeMember": "primary", "epoch": 1},
    }
    with pytest.raises(_Judged):
        await reconcile.step(rt, body, PairMemory(leases_ready=True))
    (decision,) = decided
    assert (decision.status.active_member, decision.status.epoch) == ("primary", 1), decision.reason
    assert pair.members["primary"].renew_time == RENEW_1  # not read: no verdict was due


async def test_a_standby_relayed_by_a_renewal_the_watch_did_not_deliver_is_not_lost(
    api: aclient.ApiClient, namespace: str
) -> None:
    """The standby's heartbeat rides the holder's renewal: its own Lease read shows nothing
    new, so the holder's is read too, and the hello that renewal relays is a sighting."""
    clock = ManualClock(monotonic=100.0)
    book = ObservationBook()
    rt = Runtime(api=api, book=book, clock=clock)
    for member in ("primary", "secondary"):
        await _put(api, namespace, member, RENEW_1)
        book.record_lease(lease(member, RENEW_1, namespace), None, 100.0)
    await _put(api, namespace, "primary", RENEW_2, heard_ms=500)  # the watch lags behind
    clock.advance(W + 1)
    pair = book.pair(namespace, "vm")
    pair.see_active(ActiveSighting("vm-primary", 1, "1", member="primary"))  # the relaying holder
    assert set(pair.silent_beyond(W, clock.monotonic())) == {"primary", "secondary"}
    await confirm_silences(rt, namespace, "vm", pair, W, clock.monotonic())
    assert pair.silent_beyond(W, clock.monotonic()) == []
    assert pair.members["secondary"].last_seen == clock.monotonic() - 0.5
    assert not pair.members["secondary"].lost


async def test_a_standby_whose_hello_the_holder_no_longer_relays_is_confirmed_lost(
    api: aclient.ApiClient, namespace: str
) -> None:
    clock = ManualClock(monotonic=100.0)
    book = ObservationBook()
    rt = Runtime(api=api, book=book, clock=clock)
    await _put(api, namespace, "secondary", RENEW_1)
    book.record_lease(lease("secondary", RENEW_1, namespace), None, 100.0)
    await _put(api, namespace, "primary", RENEW_1, heard_ms=0)
    book.record_lease(lease("primary", RENEW_1, namespace), None, 100.0)
    clock.advance(W + 1)
    # the holder renews on; its last hello from the standby ages in every renewal
    await _put(api, namespace, "primary", RENEW_2, heard_ms=round((W + 1) * 1000))
    pair = book.pair(namespace, "vm")
    await confirm_silences(rt, namespace, "vm", pair, W, clock.monotonic())
    assert pair.silent_beyond(W, clock.monotonic()) == ["secondary"]
    assert pair.members["secondary"].lost
    assert not pair.members["primary"].lost
