from typing import Any

from pairwarden.controller.observations import (
    ActiveSighting,
    ObservationBook,
    PairBook,
    relays_standby,
)
from pairwarden.protocol import HeartbeatSizing, MemberReport


def lease(member: str, renew: str, **report: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"vm-{member}",
            "namespace": "voice",
            "labels": {"pairwarden.io/pair": "vm", "pairwarden.io/member": member},
            "annotations": MemberReport(**report).to_annotations(),
        },
        "spec": {"renewTime": renew, "holderIdentity": f"vm-{member}"},
    }


def test_a_lease_the_operator_created_is_not_a_heartbeat() -> None:
    book = ObservationBook()
    created = {"metadata": {**lease("primary", "")["metadata"]}, "spec": {}}
    assert book.record_lease(created, "ADDED", now=5.0) is False
    assert "primary" not in book.pair("voice", "vm").members


def test_first_sighting_counts_as_observed_now_whatever_the_agent_wrote() -> None:
    book = ObservationBook()
    book.record_lease(lease("primary", "2001-01-01T00:00:00.000000Z", service_up=True), None, 50.0)
    assert book.pair("voice", "vm").members["primary"].last_seen == 50.0


def test_only_a_new_renew_time_moves_last_seen() -> None:
    book = ObservationBook()
    book.record_lease(lease("primary", "t1", service_up=True), None, 10.0)
    book.record_lease(lease("primary", "t1", service_up=True, cpu_percent=40), "MODIFIED", 20.0)
    assert book.pair("voice", "vm").members["primary"].last_seen == 10.0
    book.record_lease(lease("primary", "t2", service_up=True), "MODIFIED", 30.0)
    assert book.pair("voice", "vm").members["primary"].last_seen == 30.0


def test_urgent_reports_wake_the_pair_and_routine_ones_do_not() -> None:
    book = ObservationBook()
    pair = book.pair("voice", "vm")
    assert book.record_lease(lease("primary", "t1", service_up=True), None, 1.0)
    pair.wake.clear()
    assert not book.record_lease(lease("primary", "t2", service_up=True), "MODIFIED", 2.0)
    assert not pair.wake.is_set()
    assert book.record_lease(lease("primary", "t2", service_up=False), "MODIFIED", 2.5)
    assert pair.wake.is_set()


def test_an_agent_that_heard_a_new_epoch_wakes_the_pair() -> None:
    """A move by choice revokes the old holder, then grants the new one once the old one
    reports not answering at the revoke's epoch. A holder that was already not answering
    reports only the new epoch: that report must wake the pair, or the grant waits for the
    next timed look (a renewal period, 10 s by default)."""
    book = ObservationBook()
    pair = book.pair("voice", "vm")
    book.record_lease(lease("primary", "t1", service_up=True, epoch=1), None, 1.0)
    pair.wake.clear()
    assert book.record_lease(lease("primary", "t2", service_up=True, epoch=2), "MODIFIED", 2.0)
    assert pair.wake.is_set() and pair.woken_at == 2.0


def test_new_data_on_a_member_wakes_the_pair_for_its_replication() -> None:
    """An idle pair sleeps until its data moves (replication.seconds_until_due is None):
    the renewal that reports a new data version wakes it."""
    book = ObservationBook()
    pair = book.pair("voice", "vm")
    book.record_lease(lease("primary", "t1", service_up=True, data_version="v1"), None, 1.0)
    pair.wake.clear()
    book.record_lease(lease("primary", "t2", service_up=True, data_version="v1"), "MODIFIED", 2.0)
    assert not pair.wake.is_set()
    book.record_lease(lease("primary", "t3", service_up=True, data_version="v2"), "MODIFIED", 3.0)
    assert pair.wake.is_set()


def test_deleted_lease_marks_the_member_gone_and_wakes() -> None:
    book = ObservationBook()
    book.record_lease(lease("secondary", "t1", service_up=True), None, 1.0)
    assert book.record_lease(lease("secondary", "t1"), "DELETED", 2.0)
    assert book.pair("voice", "vm").members["secondary"].deleted


def test_leases_of_no_pair_are_ignored() -> None:
    book = ObservationBook()
    stray = {"metadata": {"name": "kube-scheduler", "namespace": "kube-system"}, "spec": {}}
    assert book.record_lease(stray, "ADDED", 1.0) is False


def test_a_member_back_after_a_window_of_silence_wakes_its_pair() -> None:
    book = ObservationBook()
    pair = book.pair("voice", "vm")
    pair.sizing = HeartbeatSizing(window=30.0, renew_period=30.0 / 3)
    book.record_lease(lease("primary", "t1", service_up=True), None, 100.0)
    pair.wake.clear()
    assert not book.record_lease(lease("primary", "t2", service_up=True), "MODIFIED", 120.0)
    assert book.record_lease(lease("primary", "t3", service_up=True), "MODIFIED", 160.0)
    assert pair.wake.is_set()


def test_a_namespace_is_heard_only_after_its_member_leases_were_listed() -> None:
    """A restarted operator's first look may come before its first listing of the member
    Leases; the reconciler waits for it (every member unseen would be judged silent), and
    the listing wakes the pairs that waited, once."""
    book = ObservationBook()
    waiting, elsewhere = book.pair("voice", "vm"), book.pair("other", "vm")
    assert not book.hearing("voice")
    book.listed("voice", now=7.0)
    assert book.hearing("voice") and not book.hearing("other")
    assert waiting.wake.is_set() and waiting.woken_at == 7.0
    assert not elsewhere.wake.is_set()
    waiting.wake.clear()
    book.listed("voice", now=9.0)  # a re-list after an error is no first listing
    assert not waiting.wake.is_set()
    book.listed(None, now=11.0)  # the watch of every namespace
    assert book.hearing("other") and elsewhere.wake.is_set()


def test_the_active_lease_sighting_carries_the_member_it_names() -> None:
    """`pairwarden.io/member`, written with the holder by leases.write_active: the engine
    finds the holder's member by it when that member's pod is gone (engine.gone_holder)."""
    active = {
        "metadata": {
            "name": "vm-active",
            "namespace": "voice",
            "resourceVersion": "12",
            "labels": {"pairwarden.io/pair": "vm"},
            "annotations": {"pairwarden.io/member": "secondary"},
        },
        "spec": {"holderIdentity": "vm-secondary-7f9c", "leaseTransitions": 3},
    }
    book = ObservationBook()
    book.record_lease(active, "MODIFIED", now=1.0)
    seen = book.pair("voice", "vm").active
    assert seen is not None and (seen.holder, seen.epoch, seen.member) == (
        "vm-secondary-7f9c",
        3,
        "secondary",
    )


def test_a_member_back_after_a_lost_heartbeat_must_be_heard_twice() -> None:
    book = ObservationBook()
    pair = book.pair("voice", "vm")
    pair.sizing = HeartbeatSizing(window=6.0, renew_period=6.0 / 3)
    book.listening.heard(0.0)
    book.record_lease(lease("primary", "t1", service_up=True), None, 1.0)
    book.listening.heard(20.0)  # the operator heard all along: the silence is the member's
    pair.confirmed_silent("primary")  # a read showed t1 still: judged lost
    book.record_lease(lease("primary", "t2", service_up=True), "MODIFIED", 20.0)
    assert pair.members["primary"].back_since == 20.0
    book.record_lease(lease("primary", "t2", service_up=False), "MODIFIED", 21.0)  # no renewal
    assert pair.members["primary"].back_since == 20.0
    pair.wake.clear()
    urgent = book.record_lease(lease("primary", "t3", service_up=True), "MODIFIED", 22.0)
    assert pair.members["primary"].back_since is None
    # Back: the pair looks at once (the report says nothing new; the member is eligible again).
    assert urgent and pair.wake.is_set()


def test_a_renewal_the_confirming_read_finds_is_no_return() -> None:
    """The watch lagged past the window: the read finds a renewal the watch had not brought.
    The member was never judged lost, so it is heard at once, not on probation."""
    book = ObservationBook()
    pair = book.pair("voice", "vm")
    pair.sizing = HeartbeatSizing(window=2.0, renew_period=2.0 / 3)
    book.listening.heard(0.0)
    book.record_lease(lease("primary", "t1", service_up=True), None, 1.0)
    book.listening.heard(3.5)
    book.record_lease(lease("primary", "t5", service_up=True), None, 3.5)  # the read's
    assert pair.members["primary"].back_since is None
    assert pair.silent_beyond(2.0, 3.5) == []


def test_the_operators_own_deafness_makes_no_return() -> None:
    """Cut off from the API itself for 30 s, the operator relists: the members renewed all
    along, and none is a member back from a loss (which would make the holder ineligible)."""
    book = ObservationBook()
    pair = book.pair("voice", "vm")
    pair.sizing = HeartbeatSizing(window=6.0, renew_period=6.0 / 3)
    book.listening.heard(0.0)
    book.record_lease(lease("primary", "t1", service_up=True), None, 1.0)
    book.listening.heard(2.0)
    book.listening.missed(3.0)
    book.listening.heard(33.0)  # the relisting
    book.record_lease(lease("primary", "t9", service_up=True), None, 33.0)
    assert pair.members["primary"].back_since is None
    assert pair.silent_beyond(6.0, 33.0) == []


def test_a_lagging_watch_event_older_than_what_was_read_is_not_a_renewal() -> None:
    """The confirming read showed the Lease at version 12; the watch, behind, then delivers
    version 11: counting it would stamp a renewal that happened before the read as now."""
    book = ObservationBook()
    read = lease("primary", "t2", service_up=True)
    read["metadata"]["resourceVersion"] = "12"
    book.record_lease(read, None, 10.0)
    late = lease("primary", "t1", service_up=True)
    late["metadata"]["resourceVersion"] = "11"
    assert book.record_lease(late, "MODIFIED", 14.0) is False
    assert book.pair("voice", "vm").members["primary"].last_seen == 10.0
    newer = lease("primary", "t3", service_up=True)
    newer["metadata"]["resourceVersion"] = "13"
    book.record_lease(newer, "MODIFIED", 15.0)
    assert book.pair("voice", "vm").members["primary"].last_seen == 15.0


# ---- the relay (docs/protocol.md, "The standby's heartbeat rides the holder's renewal") ----
def held_by_primary(book: ObservationBook) -> PairBook:
    """The pair with the active Lease naming the primary: only the holder's renewal relays."""
    pair = book.pair("voice", "vm")
    pair.see_active(ActiveSighting("vm-primary", 1, "1", member="primary"))
    return pair


def test_a_relayed_hello_is_a_sighting_of_the_standby() -> None:
    book = ObservationBook()
    pair = held_by_primary(book)
    book.record_lease(lease("secondary", "s1", service_up=True), None, 10.0)
    book.record_lease(lease("primary", "p1", service_up=True), None, 10.0)
    # the holder's renewal, observed at 30, heard the standby's hello 1.5 s before its write
    book.record_lease(lease("primary", "p2", service_up=True, peer_heard_ms=1500), "MODIFIED", 30.0)
    assert pair.members["secondary"].last_seen == 28.5
    assert pair.members["secondary"].renew_time == "s1"  # its own Lease did not move
    assert pair.members["primary"].last_seen == 30.0
    assert pair.silent_beyond(30.0, 58.0) == []
    assert pair.silent_beyond(30.0, 59.0) == ["secondary"]


def test_only_a_new_renewal_of_the_holder_relays() -> None:
    """The same write delivered again (a relist, a confirming read) is no new hello: crediting
    it again would move the sighting later than the truth, forever."""
    book = ObservationBook()
    pair = held_by_primary(book)
    book.record_lease(lease("secondary", "s1", service_up=True), None, 10.0)
    relaying = lease("primary", "p1", service_up=True, peer_heard_ms=1000)
    book.record_lease(relaying, None, 10.0)
    book.record_lease(lease("primary", "p2", service_up=True, peer_heard_ms=1000), None, 20.0)
    assert pair.members["secondary"].last_seen == 19.0
    book.record_lease(lease("primary", "p2", service_up=True, peer_heard_ms=1000), None, 50.0)
    assert pair.members["secondary"].last_seen == 19.0
    # an older hello relayed later moves nothing back, nor does a relay without an age
    book.record_lease(lease("primary", "p3", service_up=True, peer_heard_ms=25000), None, 40.0)
    book.record_lease(lease("primary", "p4", service_up=True), None, 45.0)
    assert pair.members["secondary"].last_seen == 19.0


def test_a_foreign_relay_age_is_no_sighting() -> None:
    book = ObservationBook()
    pair = held_by_primary(book)
    book.record_lease(lease("secondary", "s1", service_up=True), None, 10.0)
    junk = lease("primary", "p1", service_up=True)
    junk["metadata"]["annotations"]["pairwarden.io/peer-heard"] = "-3000"
    book.record_lease(junk, None, 40.0)
    assert pair.members["secondary"].last_seen == 10.0


def test_a_relay_cannot_create_a_member_never_seen_renewing() -> None:
    book = ObservationBook()
    pair = held_by_primary(book)
    book.record_lease(lease("primary", "p1", service_up=True, peer_heard_ms=0), None, 10.0)
    assert "secondary" not in pair.members


def test_a_member_judged_lost_is_back_after_two_relayed_hellos() -> None:
    """The relay is a renewal for the rule that a lost member must be heard twice (a late
    relay may carry a hello from a member that is cut off again)."""
    book = ObservationBook()
    pair = held_by_primary(book)
    pair.sizing = HeartbeatSizing(window=30.0, renew_period=30.0 / 3)
    book.record_lease(lease("secondary", "s1", service_up=True), None, 0.0)
    book.record_lease(lease("primary", "p1", service_up=True), None, 0.0)
    pair.confirmed_silent("secondary")
    pair.wake.clear()
    assert book.record_lease(lease("primary", "p2", service_up=True, peer_heard_ms=0), None, 40.0)
    assert pair.members["secondary"].back_since == 40.0 and not pair.members["secondary"].lost
    pair.wake.clear()
    assert book.record_lease(lease("primary", "p3", service_up=True, peer_heard_ms=0), None, 50.0)
    assert pair.members["secondary"].back_since is None
    assert pair.wake.is_set()


def test_the_standbys_renewal_relays_no_holder() -> None:
    """A holder is judged by its own renewals alone (its fence counts from them). A member
    granted the role while cut from the API server never hears its grant and says hello to
    the old holder as before; the old holder's renewals must not keep it "alive" (the
    simulator: nobody answering for 47 s at W = 30 s). Nor does anyone relay while the
    operator has not seen the active Lease yet."""
    book = ObservationBook()
    pair = book.pair("voice", "vm")
    book.record_lease(lease("secondary", "s1", service_up=True), None, 10.0)
    book.record_lease(lease("primary", "p1", service_up=True), None, 10.0)
    book.record_lease(lease("primary", "p2", service_up=True, peer_heard_ms=0), None, 20.0)
    assert pair.members["secondary"].last_seen == 10.0  # no active Lease seen yet
    pair.see_active(ActiveSighting("vm-secondary", 3, "3", member="secondary"))
    book.record_lease(lease("primary", "p3", service_up=True, peer_heard_ms=0), None, 30.0)
    assert pair.members["secondary"].last_seen == 10.0
    assert pair.silent_beyond(15.0, 30.0) == ["secondary"]
    assert not relays_standby("primary", None) and relays_standby("secondary", "secondary")


# An outage of the API server for everyone, at the chaos pair's sizing: W = 2 s, R = 2/3 s, a
# request 0.5 s, so a live member renews within back_within = 1/3 + 2 * 0.5 s of the server's
# return, and a lull is a span over max(W - back_within, 1.5 R) = 1 s with no renewal heard.
LULL_SIZING = HeartbeatSizing(window=2.0, renew_period=2.0 / 3)


def _both_heard(book: ObservationBook) -> PairBook:
    """Both members heard until 10.0 (the primary last at 9.9), at the chaos pair's sizing."""
    pair = book.pair("voice", "vm")
    pair.sizing = LULL_SIZING
    book.listening.heard(0.0)
    book.record_lease(lease("primary", "t1", service_up=True), None, 9.9)
    book.record_lease(lease("secondary", "t1", service_up=True), "MODIFIED", 10.0)
    return pair


def _outage(book: ObservationBook) -> PairBook:
    """Then nothing (the API server down for everyone, and the idle operator sending nothing,
    so not deaf itself) until the secondary renews first at 13.2; the primary is still in its
    retry pause."""
    pair = _both_heard(book)
    book.record_lease(lease("secondary", "t2", service_up=True), "MODIFIED", 13.2)
    return pair


def test_a_member_silent_across_a_shared_lull_gets_back_within_to_renew() -> None:
    assert LULL_SIZING.back_within == 2.0 / 6 + 1.0 and LULL_SIZING.lull == 1.0
    book = ObservationBook()
    pair = _outage(book)
    # Silent 3.3 s > W, but the server answered again only at 13.2 (the first renewal).
    assert pair.silent_beyond(2.0, 13.2) == []
    assert pair.silent_beyond(2.0, 13.2 + LULL_SIZING.back_within - 0.01) == []
    book.record_lease(lease("primary", "t2", service_up=True), "MODIFIED", 14.3)
    assert pair.silent_beyond(2.0, 15.0) == []
    assert pair.members["primary"].lull_ended is None  # its own renewal ends the grace


def test_a_member_that_died_in_the_lull_is_lost_back_within_after_it() -> None:
    book = ObservationBook()
    pair = _outage(book)
    assert pair.silent_beyond(2.0, 13.2 + LULL_SIZING.back_within + 0.01) == ["primary"]


def test_only_the_first_lull_of_a_silence_gives_grace() -> None:
    """A second lull (the secondary starved again) moves nothing later: no run of lulls holds
    a dead member's verdict for ever."""
    book = ObservationBook()
    pair = _outage(book)
    book.record_lease(lease("secondary", "t3", service_up=True), "MODIFIED", 14.4)  # gap 1.2 s
    assert pair.members["primary"].lull_ended == 13.2
    assert pair.silent_beyond(2.0, 14.6) == ["primary"]


def test_a_confirming_read_ends_no_lull() -> None:
    """The watch lagging (or closed) shows nothing; the read that confirms a verdict finds the
    standby's renewal. That is not the server answering again after a silence of everyone:
    a holder crashed under a lagging watch was held past its bound when it counted."""
    book = ObservationBook()
    pair = _both_heard(book)
    book.record_lease(lease("secondary", "t2", service_up=True), None, 13.2, watched=False)
    assert pair.silent_beyond(2.0, 13.2) == ["primary"]


def test_a_member_already_judged_lost_gets_no_grace_from_a_lull() -> None:
    """Both down, the holder's silence confirmed (revoked), then the secondary starts first:
    its renewal ends a lull, but the old holder is not alive for it (FirstToStart stands)."""
    book = ObservationBook()
    pair = _both_heard(book)
    pair.confirmed_silent("primary")
    pair.confirmed_silent("secondary")
    book.record_lease(lease("secondary", "t2", service_up=True), "MODIFIED", 30.0)
    assert pair.silent_beyond(2.0, 30.0) == ["primary"]


def test_a_working_pairs_gaps_are_no_lull() -> None:
    """Renewals R apart, each a request's time late or early: no lull, no grace."""
    book = ObservationBook()
    pair = book.pair("voice", "vm")
    pair.sizing = LULL_SIZING
    book.listening.heard(0.0)
    book.record_lease(lease("primary", "t1", service_up=True), None, 10.0)
    book.record_lease(lease("secondary", "t1", service_up=True), "MODIFIED", 10.9)  # R + 0.23
    assert pair.members["primary"].lull_ended is None
