"""The active Lease is the truth: the engine derives status, Service and labels from it and
repairs them from any state the world produces (a flip cut short, foreign writes, a restored
backup); Ready means answering; never two answering, even on a move by choice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pairwarden.api import FailoverPairStatus, parse_spec
from pairwarden.api.models import FailoverPairSpec, Transition
from pairwarden.engine import (
    Activate,
    Cause,
    Deactivate,
    Decision,
    LeaseView,
    ManualRequest,
    MemberObservation,
    Now,
    Observed,
    RecordMove,
    Route,
    RoutingView,
    Warn,
    decide,
    status_patch,
)
from pairwarden.protocol import LABEL_MEMBER, LABEL_PAIR, MemberReport, member_labels

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MONO = 5000.0
NOW = Now(MONO, T0)
PODS = {"primary": "vm-0", "secondary": "vm-1"}


def make_spec(**extra: Any) -> FailoverPairSpec:
    return parse_spec(
        {
            "members": {"primary": {"podName": "vm-0"}, "secondary": {"podName": "vm-1"}},
            "service": "calls",
            **extra,
        }
    )


def seen(
    name: str, holder: str = "primary", epoch: int = 1, age: float = 1.0, **report: Any
) -> MemberObservation:
    """A healthy member that reports answering exactly when it is `holder`, at `epoch`."""
    fields: dict[str, Any] = {
        "service_up": True,
        "answering": name == holder,
        "epoch": epoch,
        "started": T0 - timedelta(hours=1),
        "primary_contact": T0 - timedelta(minutes=1) if name == "secondary" else None,
    }
    fields.update(report)
    return MemberObservation(
        pod_name=PODS[name],
        pod_running=True,
        last_seen=MONO - age,
        report=MemberReport(**fields),
        labels=member_labels("vm", name, active=name == holder),
    )


def routed(member: str, selected: tuple[str, ...] | None = None) -> RoutingView:
    pods = selected if selected is not None else ((PODS[member],) if member in PODS else ())
    return RoutingView(
        exists=True, selector={"app": "vm", LABEL_PAIR: "vm", LABEL_MEMBER: member}, selected=pods
    )


def status(holder: str, epoch: int) -> FailoverPairStatus:
    return FailoverPairStatus.model_validate({"activeMember": holder, "epoch": epoch})


def look(
    lease: LeaseView,
    previous: FailoverPairStatus,
    primary: MemberObservation,
    secondary: MemberObservation,
    routing: RoutingView | None = None,
    spec: FailoverPairSpec | None = None,
    now: Now = NOW,
    request: ManualRequest | None = None,
) -> Decision:
    observed = Observed(
        previous,
        primary,
        secondary,
        request=request,
        generation=1,
        lease=lease,
        routing=routing,
        service="calls",
        pair="vm",
    )
    return decide(spec or make_spec(), observed, now)


def revoked(request: ManualRequest) -> Decision:
    """`request` made of a whole pair whose primary holds the role: the first step of a move
    by choice (the primary revoked, the handoff begun)."""
    return look(
        LeaseView("vm-0", 1),
        status("primary", 1),
        seen("primary"),
        seen("secondary"),
        routed("primary"),
        request=request,
    )


def ready(decision: Decision) -> tuple[str, str]:
    condition = {c.type: c for c in decision.status.conditions}["Ready"]
    return condition.status, condition.reason


def routes(decision: Decision) -> list[Route]:
    return [a for a in decision.actions if isinstance(a, Route)]


# ------------------------------------------------------------------- one truth


def test_a_flip_cut_after_the_lease_write_is_finished_from_the_lease() -> None:
    """The Lease names the secondary at epoch 2; the Service patch failed, so the Service,
    the labels and the status still name the primary. The status is rebuilt from the Lease
    and the routing repaired: no new epoch, no second flip."""
    p = replace(
        seen("primary", holder="secondary", epoch=2), labels=member_labels("vm", "primary", True)
    )
    s = replace(
        seen("secondary", holder="secondary", epoch=2),
        labels=member_labels("vm", "secondary", False),
    )
    decision = look(LeaseView("vm-1", 2), status("primary", 1), p, s, routed("primary"))
    assert decision.role_change is None
    assert decision.status.active_member == "secondary" and decision.status.epoch == 2
    (route,) = routes(decision)
    assert route.member == "secondary" and "Service calls selects primary" in route.reason
    assert "pod vm-0" in route.reason and "pod vm-1" in route.reason
    assert [a.reason for a in decision.actions if isinstance(a, Warn)] == ["RoutingRepaired"]
    assert ready(decision) == ("False", "ServiceNotRouted")
    after = look(
        LeaseView("vm-1", 2),
        decision.status,
        seen("primary", "secondary", 2),
        seen("secondary", "secondary", 2),
        routed("secondary"),
    )
    assert routes(after) == [] and ready(after) == ("True", "Serving")


def test_a_new_pair_is_routed_to_nobody_without_a_warning() -> None:
    """Nobody held the role yet (epoch 0): the pods carry no labels of ours and the Service
    the user's selector. Routing them is the pair's first routing, not a repair: a healthy
    start shows no Warning. The same state at epoch 1 is a repair and warns."""
    unlabelled = {
        m: replace(seen(m, holder="none", epoch=0, service_up=False), labels={"app": "vm"})
        for m in PODS
    }
    users = RoutingView(exists=True, selector={"app": "vm"}, selected=tuple(PODS.values()))
    new = look(LeaseView("", 0), FailoverPairStatus(), *unlabelled.values(), users)
    (route,) = routes(new)
    assert route.member is None and route.reason.startswith("routed to none")
    assert not [a for a in new.actions if isinstance(a, Warn)]
    held = look(LeaseView("", 1), status("none", 1), *unlabelled.values(), users)
    assert [a.reason for a in held.actions if isinstance(a, Warn)] == ["RoutingRepaired"]


def test_a_foreign_lease_write_naming_the_standby_is_taken_as_the_truth() -> None:
    decision = look(
        LeaseView("vm-1", 7),
        status("primary", 3),
        seen("primary", holder="primary", epoch=3),
        seen("secondary", holder="primary", epoch=3),
        routed("primary"),
    )
    assert decision.status.active_member == "secondary" and decision.status.epoch == 7
    assert [r.member for r in routes(decision)] == ["secondary"]


def test_a_lease_naming_a_stranger_is_rewritten_above_every_epoch_held() -> None:
    """Agents ignore an epoch lower than their own: the rewrite goes above the highest."""
    decision = look(
        LeaseView("intruder", 2),
        status("primary", 5),
        seen("primary", holder="nobody", epoch=5),
        seen("secondary", holder="nobody", epoch=5),
        routed("primary"),
    )
    move = decision.role_change
    assert isinstance(move, Activate) and move.epoch == 6 and move.expected_epoch == 2
    assert move.member == "primary"


# A selector-named member whose pod was deleted (or stopped running) resolves to no pod.
UNRESOLVED = MemberObservation(pod_name=None, pod_running=False, last_seen=MONO - 1.0)


def test_a_deleted_holder_found_by_selector_fails_over_as_pod_gone() -> None:
    """The secondary, found by selector, holds the role; its pod is deleted, so it resolves
    to no pod while the Lease still names vm-1 and, written in the same request, the member
    secondary. The holder is that member with its pod gone: PodGone from it to the primary,
    recorded as secondary -> primary (it was rewritten as a stranger's Lease, none ->
    primary FirstToStart, the move away never recorded)."""
    decision = look(
        LeaseView("vm-1", 3, member="secondary"),
        status("secondary", 3),
        seen("primary", "secondary", 3),
        UNRESOLVED,
        routed("secondary"),
    )
    assert decision.role_change == Activate("primary", 4, Cause.POD_GONE, "secondary")
    last = decision.status.last_transition
    assert last is not None and (last.from_, last.to, last.cause) == (
        "secondary",
        "primary",
        "PodGone",
    )


def test_a_gone_holder_with_no_healthy_standby_is_revoked_not_rewritten_as_a_stranger() -> None:
    """Both gone by selector: the holder is still the secondary (PodGone), and with nobody to
    take over the Lease names nobody above the epoch, the move recorded from it."""
    decision = look(
        LeaseView("vm-1", 3, member="secondary"), status("secondary", 3), UNRESOLVED, UNRESOLVED
    )
    assert decision.role_change == Deactivate(4, Cause.POD_GONE, "secondary")


@pytest.mark.parametrize(
    ("member", "secondary", "why"),
    [
        ("", UNRESOLVED, "no member written: a foreign write, or a Lease before the annotation"),
        ("intruder", UNRESOLVED, "the annotation names no member"),
        ("primary", UNRESOLVED, "the member it names resolves to its own pod vm-0"),
        (
            "secondary",
            replace(UNRESOLVED, pod_problem="spec.members.secondary.selector matches 2 pods"),
            "the member's selector matches several pods: a problem, not a pod gone",
        ),
        (
            "secondary",
            replace(UNRESOLVED, pod_name="vm-7", pod_running=True),
            "the member resolves to another pod (a replacement): the Lease is a stranger's",
        ),
    ],
)
def test_a_holder_no_member_answers_for_stays_a_strangers_lease(
    member: str, secondary: MemberObservation, why: str
) -> None:
    """Only the Lease's own record attributes a pod that is no member's, and only to a member
    that names no pod at all; otherwise the Lease is a stranger's, rewritten as before (the
    pair starts over from nobody: none -> primary, FirstToStart)."""
    decision = look(
        LeaseView("vm-1", 3, member=member),
        status("secondary", 3),
        seen("primary", "secondary", 3),
        secondary,
        routed("secondary"),
    )
    move = decision.role_change
    assert isinstance(move, Activate), why
    assert (move.member, move.epoch, move.cause) == ("primary", 4, Cause.FIRST_TO_START), why
    last = decision.status.last_transition
    assert last is not None and last.from_ == "none", why


def test_a_status_naming_the_gone_pod_does_not_make_it_the_holder() -> None:
    """A status anyone can write (the reverted fd3213f read `status.members.<m>.podName`) is
    not the record: with the Lease's member annotation absent, the Lease stays a stranger's."""
    restored = FailoverPairStatus.model_validate(
        {
            "activeMember": "secondary",
            "epoch": 3,
            "members": {"primary": {"podName": "vm-0"}, "secondary": {"podName": "vm-1"}},
        }
    )
    decision = look(LeaseView("vm-1", 3), restored, seen("primary", "secondary", 3), UNRESOLVED)
    move = decision.role_change
    assert isinstance(move, Activate) and move.cause == Cause.FIRST_TO_START
    assert decision.status.last_transition is not None
    assert decision.status.last_transition.from_ == "none"


def test_a_lease_below_the_epoch_agents_hold_is_rewritten_behind_a_revoke() -> None:
    """The primary answers at epoch 5 while a foreign write put the Lease back at 2, naming
    the secondary: revoke above 5 first, then grant the secondary once the primary stopped."""
    p, s = seen("primary", holder="primary", epoch=5), seen("secondary", "primary", 5)
    decision = look(LeaseView("vm-1", 2), status("primary", 5), p, s, routed("primary"))
    assert decision.role_change == Deactivate(6, Cause.LEASE_REPAIRED, "secondary")
    assert decision.status.handoff is not None and decision.status.handoff.to == "secondary"
    stopped = seen("primary", holder="none", epoch=6)
    grant = look(LeaseView("", 6), decision.status, stopped, seen("secondary", "none", 6))
    assert grant.role_change == Activate("secondary", 7, Cause.LEASE_REPAIRED, "primary")


def test_a_restored_status_is_not_trusted_over_the_lease() -> None:
    """`{"epoch": 99, "activeMember": "secondary"}` written by someone else: the Lease says
    primary at 3, so the status is rewritten to say so, and a loss of the primary fails over
    to the secondary at epoch 4 (from the Lease), not 100."""
    restored = status("secondary", 99)
    healthy = look(
        LeaseView("vm-0", 3),
        restored,
        seen("primary", epoch=3),
        seen("secondary", epoch=3),
        routed("primary"),
    )
    assert healthy.status.active_member == "primary" and healthy.status.epoch == 3
    assert status_patch(restored, healthy.status, make_spec()) is not None
    lost = look(
        LeaseView("vm-0", 3),
        restored,
        seen("primary", epoch=3, age=31),
        seen("secondary", epoch=3),
        routed("primary"),
    )
    assert lost.role_change == Activate("secondary", 4, Cause.HEARTBEAT_LOST, "primary")
    assert lost.role_change.expected_epoch == 3


# ------------------------------------------------------------- Ready means answering


@pytest.mark.parametrize(
    ("routing", "primary", "reason"),
    [
        pytest.param(RoutingView(exists=False), seen("primary"), "ServiceMissing", id="no-service"),
        pytest.param(
            routed("primary", ("vm-0", "vm-1")),
            seen("primary"),
            "SeveralPodsSelected",
            id="several-pods",
        ),
        pytest.param(routed("primary", ()), seen("primary"), "HolderPodNotSelected", id="no-pod"),
        pytest.param(
            routed("primary"),
            seen("primary", answering=False),
            "HolderNotAnswering",
            id="not-answering",
        ),
        pytest.param(
            routed("primary"), seen("primary", epoch=0), "HolderBehindEpoch", id="old-epoch"
        ),
        pytest.param(routed("primary"), seen("primary"), "Serving", id="serving"),
    ],
)
def test_ready_names_the_first_check_that_fails(
    routing: RoutingView, primary: MemberObservation, reason: str
) -> None:
    decision = look(LeaseView("vm-0", 1), status("primary", 1), primary, seen("secondary"), routing)
    assert ready(decision) == ("True" if reason == "Serving" else "False", reason)


def test_a_problem_a_person_must_fix_is_one_event_not_one_per_look() -> None:
    args = (seen("primary"), seen("secondary"), RoutingView(exists=False))
    first = look(LeaseView("vm-0", 1), status("primary", 1), *args)
    warns = [a for a in first.actions if isinstance(a, Warn)]
    assert [w.reason for w in warns] == ["ServiceMissing"] and "calls" in warns[0].message
    again = look(LeaseView("vm-0", 1), first.status, *args)
    assert not any(isinstance(a, Warn) for a in again.actions)
    assert routes(first) == []  # nothing to patch: the Service is not there


def test_a_holder_that_stops_answering_is_failed_over_after_a_window() -> None:
    mute = seen("primary", answering=False)
    first = look(
        LeaseView("vm-0", 1), status("primary", 1), mute, seen("secondary"), routed("primary")
    )
    assert first.role_change is None and first.status.holder_silent_since == T0
    later = Now(MONO + 31, T0 + timedelta(seconds=31))
    fresh = replace(mute, last_seen=MONO + 30)
    second = look(
        LeaseView("vm-0", 1),
        first.status,
        fresh,
        replace(seen("secondary"), last_seen=MONO + 30),
        routed("primary"),
        now=later,
    )
    assert second.role_change == Activate("secondary", 2, Cause.NOT_ANSWERING, "primary")


def test_a_silence_remembered_from_before_a_restart_moves_nothing_once_the_holder_answers() -> None:
    """The status an operator left when it was killed may remember a silence it never saw end
    (the grant's first look, before the agent reported back). A restarted operator reads it
    more than a window later: the holder answers now, so nothing moves (the restart scenario
    failed 4 of 6 runs with NotAnswering, epoch 1 -> 3, on a holder answering for 2.7 s)."""
    mute = seen("primary", answering=False)
    first = look(
        LeaseView("vm-0", 1), status("primary", 1), mute, seen("secondary"), routed("primary")
    )
    assert first.status.holder_silent_since == T0
    later = Now(MONO + 31, T0 + timedelta(seconds=31))
    answering = replace(seen("primary"), last_seen=MONO + 30)
    second = look(
        LeaseView("vm-0", 1),
        first.status,
        answering,
        replace(seen("secondary"), last_seen=MONO + 30),
        routed("primary"),
        now=later,
    )
    assert second.role_change is None
    assert second.status.holder_silent_since is None


# ------------------------------------------------------------- members and pods


def test_members_resolving_to_one_pod_are_refused_naming_the_field() -> None:
    both = replace(seen("secondary"), pod_name="vm-0")
    decision = look(
        LeaseView("vm-0", 1), status("primary", 1), seen("primary"), both, routed("primary")
    )
    resolved = {c.type: c for c in decision.status.conditions}["MembersResolved"]
    assert resolved.status == "False" and "spec.members.secondary" in resolved.message
    assert [a.reason for a in decision.actions if isinstance(a, Warn)] == ["PodUnresolved"]


def test_a_selector_matching_several_pods_makes_the_member_ineligible() -> None:
    several = replace(
        seen("secondary"),
        pod_name=None,
        pod_problem="spec.members.secondary.selector matches 2 running pods (a, b)",
    )
    decision = look(
        LeaseView("vm-0", 1),
        status("primary", 1),
        seen("primary", age=31),
        several,
        routed("primary"),
    )
    assert decision.role_change is None  # not granted; the silent primary keeps the role
    ready = {c.type: c for c in decision.status.conditions}["Ready"]
    assert "secondary cannot take the role (PodUnresolved)" in ready.message


def test_huge_licensing_clocks_do_not_overflow() -> None:
    far = datetime(9999, 12, 31, tzinfo=UTC)
    secondary = seen("secondary", primary_contact=far)
    decision = look(
        LeaseView("vm-0", 1), status("primary", 1), seen("primary"), secondary, routed("primary")
    )
    assert decision.status.licensing.secondary_deadline is not None


# ------------------------------------------------------------- never two answering


def test_a_move_by_choice_revokes_first_and_grants_on_acknowledgement() -> None:
    spec = make_spec()
    request = ManualRequest("m-1", "failover")
    first = revoked(request)
    assert first.role_change == Deactivate(2, Cause.MANUAL_FAILOVER, "primary")
    assert first.status.phase == "HandingOver" and ready(first) == ("False", "HandingOver")
    # The primary has not heard yet: still answering at epoch 1. Nothing is granted.
    waiting = look(
        LeaseView("", 2),
        first.status,
        seen("primary"),
        seen("secondary", "primary"),
        routed("none"),
        request=request,
    )
    assert waiting.role_change is None and waiting.status.handoff is not None
    # It reports not answering at the revoke's epoch: the secondary is granted.
    acked = look(
        LeaseView("", 2),
        waiting.status,
        seen("primary", "none", 2),
        seen("secondary", "none", 2),
        routed("none"),
        spec=spec,
        request=request,
    )
    assert acked.role_change == Activate("secondary", 3, Cause.MANUAL_FAILOVER, "primary")
    assert acked.status.handoff is None and acked.status.last_transition is not None


def test_an_old_holder_that_never_acknowledges_is_waited_out_for_one_window() -> None:
    """Its agent killed or cut off, the old holder cannot hear the revoke; its voicemail stops
    by itself within W - R/2 of its last confirmation. The engine grants after W: the worst
    case this safety adds to a move by choice."""
    request = ManualRequest("m-2", "failover")
    first = revoked(request)
    deaf = seen("primary")  # still says it answers: its reports are stale
    for elapsed in (1.0, 15.0, 29.9):
        at = Now(MONO + elapsed, T0 + timedelta(seconds=elapsed))
        still = look(
            LeaseView("", 2),
            first.status,
            replace(deaf, last_seen=at.monotonic - 1),
            replace(seen("secondary", "primary"), last_seen=at.monotonic - 1),
            routed("none"),
            now=at,
            request=request,
        )
        assert still.role_change is None
    at = Now(MONO + 30, T0 + timedelta(seconds=30))
    granted = look(
        LeaseView("", 2),
        first.status,
        replace(deaf, last_seen=at.monotonic - 1),
        replace(seen("secondary", "primary"), last_seen=at.monotonic - 1),
        routed("none"),
        now=at,
        request=request,
    )
    assert granted.role_change == Activate("secondary", 3, Cause.MANUAL_FAILOVER, "primary")


def test_a_target_that_fails_during_the_handoff_gives_the_role_back_at_once() -> None:
    request = ManualRequest("m-3", "failover")
    first = revoked(request)
    sick = seen("secondary", "primary", service_up=False)
    back = look(
        LeaseView("", 2), first.status, seen("primary"), sick, routed("none"), request=request
    )
    assert back.role_change == Activate("primary", 3, Cause.MANUAL_FAILOVER, "primary")


def test_a_foreign_lease_write_during_a_handoff_ends_it() -> None:
    request = ManualRequest("m-4", "failover")
    first = revoked(request)
    taken = look(
        LeaseView("vm-0", 9),
        first.status,
        seen("primary", epoch=9),
        seen("secondary", epoch=9),
        routed("primary"),
        request=request,
    )
    assert taken.status.handoff is None and taken.status.active_member == "primary"


def test_a_holder_just_granted_gets_one_window_to_start_answering_first() -> None:
    """A slow node hears its grant, orders its voicemail process and reports late: it is not
    failed over for that alone. Silence counts from one window after the grant."""
    spec = make_spec()
    window = spec.heartbeat.window_seconds
    granted = status("primary", 1).model_copy(
        update={
            "last_transition": Transition.model_validate(
                {"time": T0, "from": "none", "to": "primary", "cause": "FirstToStart", "epoch": 1}
            ),
            "holder_silent_since": T0,
        }
    )
    mute = seen("primary", answering=False)

    def at(seconds: float) -> Decision:
        now = Now(MONO + seconds, T0 + timedelta(seconds=seconds))
        fresh = {"last_seen": MONO + seconds - 0.1}
        return look(
            LeaseView("vm-0", 1),
            granted,
            replace(mute, **fresh),
            replace(seen("secondary"), **fresh),
            routed("primary"),
            spec=spec,
            now=now,
        )

    assert at(window + 1).role_change is None
    assert at(2 * window - 1).role_change is None
    assert at(2 * window + 1).role_change == Activate(
        "secondary", 2, Cause.NOT_ANSWERING, "primary"
    )


# ------------------------------------------------------------- a move the status missed


def lost_primary_move(epoch: int = 2, cause: str = "HeartbeatLost") -> Transition:
    """The move an operator wrote into the active Lease before it was killed -9 (its status
    write never happened)."""
    return Transition.model_validate(
        {"time": T0 - timedelta(seconds=20), "from": "primary", "to": "secondary",
         "cause": cause, "epoch": epoch, "durationSeconds": 31.0}
    )  # fmt: skip


def after_the_kill(lease: LeaseView) -> Decision:
    """A restarted operator: the stored status predates the move (primary at epoch 1), the
    primary is gone, the secondary answers at epoch 2 but is not routed yet."""
    gone = replace(seen("primary", holder="secondary", epoch=1), pod_running=False)
    return look(
        lease, status("primary", 1), gone, seen("secondary", "secondary", 2), routed("primary")
    )


def test_a_move_the_status_missed_is_recorded_from_the_active_lease() -> None:
    """The Lease carries the move it made (cause, previous holder, time): the status takes
    it as its lastTransition and history, and its Event is posted, once."""
    move = lost_primary_move()
    decision = after_the_kill(LeaseView("vm-1", 2, move))
    assert decision.role_change is None  # nothing moves again: only the record is made
    assert decision.status.last_transition == move
    assert decision.status.transitions[-1] == move
    assert (decision.status.active_member, decision.status.epoch) == ("secondary", 2)
    assert [a for a in decision.actions if isinstance(a, RecordMove)] == [RecordMove(move)]
    again = look(
        LeaseView("vm-1", 2, move),
        decision.status,
        replace(seen("primary", holder="secondary", epoch=1), pod_running=False),
        seen("secondary", "secondary", 2),
        routed("secondary"),
    )
    assert not [a for a in again.actions if isinstance(a, RecordMove)]
    assert again.status.transitions == decision.status.transitions


@pytest.mark.parametrize(
    ("lease", "why"),
    [
        (LeaseView("vm-0", 2, lost_primary_move()), "a foreign write named another holder"),
        (LeaseView("vm-1", 3, lost_primary_move()), "a foreign write bumped the epoch"),
        (LeaseView("vm-1", 2, lost_primary_move(cause="Whatever")), "an unknown cause"),
        (LeaseView("vm-1", 2), "no record"),
    ],
)
def test_a_lease_record_that_is_not_this_holders_move_is_ignored(
    lease: LeaseView, why: str
) -> None:
    decision = after_the_kill(lease)
    assert not [a for a in decision.actions if isinstance(a, RecordMove)], why
    assert lease.move not in decision.status.transitions, why
