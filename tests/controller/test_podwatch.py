"""The member pods as the kubelet reports them (controller.pods.sight_pod, controller.podwatch):
which reports are a death that wakes the pair, and which are not. The shapes are the real
kubelet's (1.20: terminated, then running again with the termination in lastState) and the
sandbox stand-in's (waiting in CrashLoopBackOff, restartCount grown, lastState without ids)."""

from __future__ import annotations

from typing import Any

from pairwarden.controller import podwatch
from pairwarden.controller.observations import ObservationBook
from pairwarden.controller.pods import sight_pod

RUNNING = {"running": {"startedAt": "2026-01-05T12:00:00Z"}}


def terminated(container_id: str, finished: str) -> dict[str, Any]:
    return {"terminated": {"exitCode": 137, "reason": "Error", "containerID": container_id,
                           "finishedAt": finished}}  # fmt: skip


def container(
    name: str,
    restarts: int = 0,
    state: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
    ready: bool = True,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": state or RUNNING,
    }
    if last is not None:
        out["lastState"] = last
    return out


def pod(
    *containers: dict[str, Any],
    uid: str = "u1",
    phase: str = "Running",
    member: str | None = "primary",
    deleting: bool = False,
) -> dict[str, Any]:
    labels = {"pairwarden.io/pair": "vm"}
    if member:
        labels["pairwarden.io/member"] = member
    meta: dict[str, Any] = {"name": "vm-0", "namespace": "voice", "uid": uid, "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-05T12:00:01Z"
    return {"metadata": meta, "status": {"phase": phase, "containerStatuses": list(containers)}}


BOTH = (container("voicemail"), container("agent"))


def test_the_real_kubelets_two_reports_of_one_death_count_once() -> None:
    first, news = sight_pod(None, pod(*BOTH), 10.0)
    assert not news and first.container_deaths() == (None, None)
    died = terminated("containerd://a1", "2026-01-05T12:00:05Z")
    second, news = sight_pod(first, pod(container("voicemail"), container("agent", 0, died)), 11.0)
    assert news and second.container_deaths() == (None, 11.0)
    # Restarted: running again, the same termination now in lastState, restartCount grown.
    again = pod(container("voicemail"), container("agent", 1, RUNNING, died))
    third, news = sight_pod(second, again, 12.5)
    assert not news and third.container_deaths() == (None, 11.0)


def test_a_restart_seen_only_after_it_happened_is_a_death() -> None:
    """The terminated report missed (a watch gap, both updates coalesced): the grown
    restartCount with a termination not counted before is the death."""
    first, _ = sight_pod(None, pod(*BOTH), 10.0)
    died = terminated("containerd://a1", "2026-01-05T12:00:05Z")
    both = pod(container("voicemail", 1, RUNNING, died), container("agent", 1, RUNNING, died))
    second, news = sight_pod(first, both, 12.0)
    assert news and second.container_deaths() == (12.0, 12.0)


def test_the_stand_ins_restart_without_ids_is_a_death() -> None:
    first, _ = sight_pod(None, pod(*BOTH), 10.0)
    waiting = {"waiting": {"reason": "CrashLoopBackOff"}}
    last = {"terminated": {"exitCode": -9, "reason": "Error"}}
    second, news = sight_pod(first, pod(container("voicemail", 1, waiting, last), BOTH[1]), 11.0)
    assert news and second.container_deaths() == (11.0, None)
    # Running again: the same restartCount is no second death.
    third, news = sight_pod(second, pod(container("voicemail", 1, RUNNING, last), BOTH[1]), 12.0)
    assert not news and third.container_deaths() == (11.0, None)


def test_a_readiness_blip_is_no_news() -> None:
    first, _ = sight_pod(None, pod(*BOTH), 10.0)
    blip = pod(container("voicemail", ready=False), container("agent", ready=False))
    second, news = sight_pod(first, blip, 11.0)
    assert not news and second.container_deaths() == (None, None)


def test_a_readiness_blip_after_an_old_death_is_no_news() -> None:
    """The real kubelet's shape of a failing readiness probe on a member that restarted long
    ago: both containers running, not Ready, the old termination still in lastState, the same
    restartCount, and the pod's Ready condition False. Neither the blip nor the recovery is a
    death: nothing moves (issue 26: a readiness blip is not a crash)."""
    old = terminated("containerd://a0", "2026-01-05T11:00:00Z")
    ready = pod(container("voicemail", 1, RUNNING, old), container("agent", 1, RUNNING, old))
    first, _ = sight_pod(None, ready, 10.0)
    blip = pod(
        container("voicemail", 1, RUNNING, old, ready=False),
        container("agent", 1, RUNNING, old, ready=False),
    )
    blip["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
    ]
    second, news = sight_pod(first, blip, 11.0)
    assert not news and second.container_deaths() == (None, None)
    third, news = sight_pod(second, ready, 12.0)
    assert not news and third.container_deaths() == (None, None)


def test_the_first_sighting_is_a_baseline() -> None:
    """An operator that starts (or a pod recreated under the same name: a new uid) counts no
    death it did not see happen; silence covers what came before."""
    died = terminated("containerd://a1", "2026-01-05T12:00:05Z")
    crashed = pod(container("voicemail", 3, died), container("agent", 3, RUNNING, died))
    first, news = sight_pod(None, crashed, 10.0)
    assert not news and first.container_deaths() == (None, None)
    earlier, _ = sight_pod(None, pod(*BOTH), 5.0)
    recreated, news = sight_pod(earlier, {**crashed, "metadata": {
        **crashed["metadata"], "uid": "u2"}}, 10.0)  # fmt: skip
    assert not news and recreated.container_deaths() == (None, None)


def test_a_pod_going_is_news_once() -> None:
    first, _ = sight_pod(None, pod(*BOTH), 10.0)
    for gone in (pod(*BOTH, deleting=True), pod(*BOTH, phase="Failed")):
        second, news = sight_pod(first, gone, 11.0)
        assert news and second.gone
        _, news = sight_pod(second, gone, 12.0)
        assert not news
    _, news = sight_pod(first, pod(*BOTH), 11.0, deleted=True)
    assert news


def test_record_pod_wakes_the_pair_on_a_death_only() -> None:
    book = ObservationBook()
    assert podwatch.record_pod(book, pod(*BOTH), None, 10.0) is False
    pair = book.pair("voice", "vm")
    assert not pair.wake.is_set()
    assert podwatch.record_pod(book, pod(container("voicemail", ready=False), BOTH[1]), "MODIFIED",
                               11.0) is False  # fmt: skip
    died = terminated("containerd://v1", "2026-01-05T12:00:05Z")
    both = pod(container("voicemail", 0, died), container("agent", 0, died))
    assert podwatch.record_pod(book, both, "MODIFIED", 12.0) is True
    assert pair.wake.is_set() and pair.woken_at == 12.0
    assert pair.pods["primary"].container_deaths() == (12.0, 12.0)


def test_pods_that_are_no_member_are_ignored() -> None:
    book = ObservationBook()
    died = terminated("containerd://v1", "2026-01-05T12:00:05Z")
    assert podwatch.record_pod(book, pod(container("job", 0, died), member=None), "ADDED", 1.0) \
        is False  # fmt: skip
    assert podwatch.record_pod(book, pod(container("x"), member="tertiary"), "ADDED", 1.0) is False
    assert book.pair("voice", "vm").pods == {}


def test_the_deaths_reach_the_engine_only_for_the_pod_the_member_names() -> None:
    """A sighting of another pod under the member's labels (a pod recreated under another
    name, a stray label) says nothing of the pod the member names now."""
    from pairwarden.controller.pods import Resolution
    from pairwarden.controller.reconcile import _member

    book = ObservationBook()
    podwatch.record_pod(book, pod(*BOTH), None, 10.0)
    died = terminated("containerd://v1", "2026-01-05T12:00:05Z")
    podwatch.record_pod(book, pod(container("voicemail", 0, died), container("agent", 0, died)),
                        "MODIFIED", 12.0)  # fmt: skip
    pair = book.pair("voice", "vm")
    named = _member(pair, "primary", Resolution("vm-0", running=True), 0.0)
    assert named.container_deaths == (12.0, 12.0)
    another = _member(pair, "primary", Resolution("vm-0-new", running=True), 0.0)
    assert another.container_deaths == ()
    assert _member(pair, "secondary", Resolution("vm-1", running=True), 0.0).container_deaths == ()


def test_a_crash_in_the_operators_deaf_span_is_still_a_crash() -> None:
    """A 5xx storm: the holder's last renewal was observed at 10, then the operator's own
    requests failed (a deaf episode, observations.Hearing, still open) and the pod watch saw
    both containers die at 12. Its silence counts from later and later, nearly now; the
    deaths are judged against the renewal as observed, so the crash is found at once (it
    was missed: the crash in the storm was not failed over within 26 s)."""
    from tests.controller.test_hearing import lease

    from pairwarden.controller.pods import Resolution
    from pairwarden.controller.reconcile import _member
    from pairwarden.engine import crashed

    book = ObservationBook()
    book.listening.heard(9.0)
    book.record_lease(lease("primary", "t1"), None, 10.0)
    podwatch.record_pod(book, pod(*BOTH), None, 10.0)
    book.listening.missed(11.0)  # a 503: deaf since the last success (9)
    died = terminated("containerd://v1", "2026-01-05T12:00:05Z")
    dead = pod(container("voicemail", 0, died), container("agent", 0, died))
    podwatch.record_pod(book, dead, "MODIFIED", 12.0)
    seen = _member(book.pair("voice", "vm"), "primary", Resolution("vm-0", running=True), 14.0)
    assert seen.last_seen == 14.0  # no hearing time since the renewal: silent for 0 s
    assert seen.renewal_seen == 10.0
    assert crashed(seen)
