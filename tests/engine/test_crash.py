"""A crash the node sees (engine.crashed): the kubelet reports every container of the
holder's pod dead after its last renewal, and the engine fails over then, not at W."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.engine.test_decide import (
    MONO,
    T0,
    contacted,
    holding,
    make_spec,
    member,
    own_pod,
    role,
    run,
)

from pairwarden.engine import (
    Activate,
    Cause,
    Deactivate,
    ManualRequest,
    MemberObservation,
    Observed,
    crashed,
    probed_gone,
)
from pairwarden.protocol import PeerGone

RENEWED = MONO - 1.0  # member() renewed one second ago


def died(seen: MemberObservation, *deaths: float | None) -> MemberObservation:
    return replace(seen, container_deaths=deaths)


@pytest.mark.parametrize(
    ("deaths", "last_seen", "expected"),
    [
        ((), RENEWED, False),  # not watched (no node, no container statuses yet)
        ((None, None), RENEWED, False),  # running as first seen: no death
        ((RENEWED + 0.5, RENEWED + 0.6), RENEWED, True),  # both died after the last renewal
        ((RENEWED + 0.5,), RENEWED, True),  # a one-container pod
        ((RENEWED + 0.5, None), RENEWED, False),  # one of two: the other one reports or answers
        ((RENEWED - 100, RENEWED + 0.5), RENEWED, False),  # an old death, renewed since
        ((RENEWED + 0.5, RENEWED + 0.6), RENEWED + 1.0, False),  # restarted and renewed: back
        ((RENEWED, RENEWED), RENEWED, False),  # not after it: the same instant is no news
        ((RENEWED + 0.5, RENEWED + 0.6), None, True),  # never renewed since the operator began
    ],
)
def test_crashed_needs_every_container_dead_since_the_last_renewal(
    deaths: tuple[float | None, ...], last_seen: float | None, expected: bool
) -> None:
    seen = MemberObservation(last_seen=last_seen, container_deaths=deaths)
    assert crashed(seen) is expected


@pytest.mark.parametrize("holder", ["primary", "secondary"])
def test_a_crashed_holder_fails_over_at_once_not_at_w(holder: str) -> None:
    """One second after its last renewal, well within W (30 s): the node said it died."""
    dead = died(member(), MONO - 0.5, MONO - 0.4)
    primary, secondary = (dead, contacted()) if holder == "primary" else (member(), dead)
    decision = run(make_spec(), holding(holder, 4), primary, secondary)
    standby = "secondary" if holder == "primary" else "primary"
    # A fault: granted at once, no revoke first (every container of the old holder is dead).
    assert role(decision) == Activate(standby, 5, Cause.POD_CRASHED, holder)
    assert decision.status.last_transition is not None
    assert decision.status.last_transition.cause == "PodCrashed"


def test_a_readiness_blip_or_one_container_is_not_a_crash() -> None:
    """A container not Ready records no death; one container of two dying is the agent's to
    report (voicemail) or leaves the voicemail answering (agent): no move."""
    one = died(member(), MONO - 0.5, None)
    decision = run(make_spec(), holding("primary", 4), one, contacted())
    assert role(decision) is None


def test_a_restarted_holder_back_before_the_look_keeps_the_role() -> None:
    """The kubelet restarted both containers and the agent renewed before the operator
    looked: it is back and judged by its report (the callers' gap was the restart)."""
    back = died(member(age=0.1), MONO - 0.5, MONO - 0.4)
    decision = run(make_spec(), holding("primary", 4), back, contacted())
    assert role(decision) is None


def test_the_restarted_member_rejoins_as_standby() -> None:
    """After PodCrashed moved the role, the old holder's restarted agent renews: eligible
    again, not the holder, and nothing moves (failback stays by the pair's policy)."""
    dead = died(member(), MONO - 0.5, MONO - 0.4)
    moved = run(make_spec(), holding("primary", 4), dead, contacted())
    assert role(moved) == Activate("secondary", 5, Cause.POD_CRASHED, "primary")
    back = died(member(age=0.1, answering=False), MONO - 0.5, MONO - 0.4)
    after = run(make_spec(), moved.status, back, contacted(answering=True))
    assert role(after) is None
    assert after.status.active_member == "secondary"
    # FailedOver once Ready; this world shows the Service no holder's answer yet, and the
    # phase is never FailedOver while Ready is False (docs/api.md): Degraded meanwhile.
    ready = next(c for c in after.status.conditions if c.type == "Ready")
    assert after.status.phase == ("FailedOver" if ready.status == "True" else "Degraded")


def test_a_crashed_holder_with_no_standby_leaves_no_holder_until_it_is_back() -> None:
    dead = died(member(), MONO - 0.5, MONO - 0.4)
    decision = run(make_spec(), holding("primary", 4), dead, contacted(service_up=False))
    assert role(decision) == Deactivate(5, Cause.POD_CRASHED, "primary")


def test_a_crashed_standby_is_not_eligible() -> None:
    """A manual failover to a standby whose pod just crashed is refused with the cause."""
    dead = died(contacted(), MONO - 0.5, MONO - 0.4)
    decision = run(
        make_spec(), holding("primary", 4), member(), dead, ManualRequest("r", "failover")
    )
    assert role(decision) is None
    assert decision.status.last_request is not None
    assert "PodCrashed" in decision.status.last_request.message


def test_deaths_are_compared_with_the_renewal_as_observed_not_the_counted_sighting() -> None:
    """A 5xx storm: the holder's last renewal was observed 10 s ago, but the operator's own
    failed requests since count as deafness, so its silence counts from 0.1 s ago. The pod
    watch saw both containers die 5 s ago: that is after the renewal, a crash, found at once."""
    deaf = replace(member(), last_seen=MONO - 0.1, renewal_seen=MONO - 10.0)
    dead = died(deaf, MONO - 5.0, MONO - 5.0)
    assert crashed(dead)
    decision = run(make_spec(), holding("primary", 4), dead, contacted())
    assert role(decision) == Activate("secondary", 5, Cause.POD_CRASHED, "primary")
    # Renewed (observed) after the deaths: back, whatever the deaf credit says.
    back = replace(member(), last_seen=MONO - 0.1, renewal_seen=MONO - 1.0)
    assert not crashed(died(back, MONO - 5.0, MONO - 5.0))


# ---- the same crash proven by the standby's probe (engine.probed_gone) ----------------------

HOLDER_IP = "10.0.0.7"


def claiming(epoch: int = 4, pod: str = "vm-0", address: str = HOLDER_IP) -> MemberObservation:
    """A standby whose report claims the holder's processes gone (protocol.PeerGone)."""
    return replace(contacted(), report=replace(contacted().report, peer_gone=PeerGone(
        epoch, pod, address, T0)))  # fmt: skip


def at(seen: MemberObservation, ip: str | None = HOLDER_IP) -> MemberObservation:
    return replace(seen, pod_ip=ip)


@pytest.mark.parametrize(
    ("claim", "holder_ip", "epoch", "gone"),
    [
        (claiming(), HOLDER_IP, 4, True),  # the holder, at its address, at this epoch
        (contacted(), HOLDER_IP, 4, False),  # no claim
        (claiming(epoch=3), HOLDER_IP, 4, False),  # a standby behind, or a claim left over
        (claiming(epoch=5), HOLDER_IP, 4, False),  # not the Lease's epoch either way
        (claiming(pod="vm-9"), HOLDER_IP, 4, False),  # about another pod
        (claiming(address="10.0.0.8"), HOLDER_IP, 4, False),  # the holder's pod moved address
        (claiming(), None, 4, False),  # the operator read no address: no proof of which pod
    ],
)
def test_probed_gone_needs_the_holders_pod_address_and_epoch(
    claim: MemberObservation, holder_ip: str | None, epoch: int, gone: bool
) -> None:
    observed = Observed(
        holding("primary", epoch), at(own_pod(member(), "vm-0"), holder_ip), own_pod(claim, "vm-1")
    )
    assert probed_gone(observed, "primary", epoch) is gone
    assert not probed_gone(observed, None, epoch)  # nobody holds the role


def test_a_claim_fails_over_at_once_as_a_crash() -> None:
    """Renewed one second ago, pod Running, no death reported by the kubelet yet: the
    standby's claim alone moves the role, one conditional write, no revoke first."""
    decision = run(make_spec(), holding("primary", 4), at(member()), claiming())
    assert role(decision) == Activate("secondary", 5, Cause.POD_CRASHED, "primary")


def test_a_claim_is_final_for_its_epoch_even_after_the_holder_renewed() -> None:
    """The kubelet restarted the holder and its agent renewed (age 0.1 s) before the look:
    the claim still moves the role, since that agent holds back at this epoch (it read the
    claim at its start) and waiting for the move is the only way forward."""
    decision = run(make_spec(), holding("primary", 4), at(member(age=0.1)), claiming())
    assert role(decision) == Activate("secondary", 5, Cause.POD_CRASHED, "primary")


def test_a_claim_with_no_standby_to_serve_leaves_no_holder() -> None:
    """The claimant cannot serve (its voicemail down): nobody at a new epoch; the restarted
    holder is then the first to start again, its claim moot."""
    down = replace(claiming(), report=replace(claiming().report, service_up=False))
    decision = run(make_spec(), holding("primary", 4), at(member()), down)
    assert role(decision) == Deactivate(5, Cause.POD_CRASHED, "primary")
    again = run(make_spec(), decision.status, at(member(answering=False)), down)
    assert role(again) == Activate("primary", 6, Cause.FIRST_TO_START, None)


def test_a_claim_about_the_secondary_holder_fails_back() -> None:
    holder = at(replace(contacted(), pod_name="vm-1"))
    claim = replace(member(), report=replace(member().report, peer_gone=PeerGone(
        4, "vm-1", HOLDER_IP)))  # fmt: skip
    decision = run(make_spec(), holding("secondary", 4), claim, holder)
    assert role(decision) == Activate("primary", 5, Cause.POD_CRASHED, "secondary")
