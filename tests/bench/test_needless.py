"""How bench/scale.py sorts what happened to the pairs it did not fault: a Service rewritten
with the same member is no selector change; a role move away from a member whose renewals the
API server stored within W is needless (the operator's defect); one away from a member the API
server did not hear for W is a real silence (the writers' or the server's)."""

from __future__ import annotations

from bench.scale import needless_moves

W = 30.0


def test_rewrites_changes_and_moves_are_told_apart() -> None:
    service = {
        "p1": [
            (5.0, "ADDED", "none"),
            (10.0, "MODIFIED", "primary"),
            (40.0, "MODIFIED", "primary"),
        ],
        "p2": [(10.0, "MODIFIED", "primary"), (70.0, "MODIFIED", "secondary")],
        "p3": [(10.0, "MODIFIED", "primary"), (90.0, "MODIFIED", "none")],
    }
    activated = {"p1": 10.0, "p2": 10.0, "p3": 10.0}
    leases = {
        "p1": [(1.0, 0, "none"), (9.0, 1, "primary")],
        "p2": [(1.0, 0, "none"), (9.0, 1, "primary"), (69.0, 2, "secondary")],
        "p3": [(1.0, 0, "none"), (9.0, 1, "primary"), (89.0, 2, "none")],
    }
    renewals = {
        # renewed every 10 s, each stored 0.1 s after it was sent: the move was needless
        "p2-primary": [(t, t + 0.1, 200) for t in range(0, 70, 10)],
        # its renewals queued in the client and came back 409 or never: silent for W
        "p3-primary": [(0.0, 0.1, 200), (10.0, 10.2, 200), (20.0, 80.0, 409), (30.0, 95.0, 0)],
    }
    tally = needless_moves(service, activated, leases, renewals, W)
    assert (tally.changes, tally.rewrites) == (2, 1)  # p1's second "primary" is a rewrite
    assert (tally.renewing, tally.back, tally.silent) == (1, 0, 1)  # p2 needless; p3 silent


def test_the_first_grant_is_no_move() -> None:
    leases = {"p1": [(1.0, 0, "none"), (9.0, 1, "primary"), (9.5, 1, "primary")]}
    tally = needless_moves({}, {"p1": 10.0}, leases, {}, W)
    assert (tally.renewing, tally.back, tally.silent) == (0, 0, 0)


def test_a_member_back_from_a_silence_at_the_server_is_told_apart() -> None:
    """Both members unheard at the server for 90 s (its writes timing out), then renewing
    again; the role moved 7 s after the holder's first renewal was stored: not needless in
    the operator's sense of a steady member, but a move on coming back (issue 24 wants
    none)."""
    leases = {"p1": [(9.0, 1, "primary"), (236.0, 2, "secondary")]}
    renewals = {"p1-primary": [(100.0, 100.1, 200), (190.0, 195.0, 0), (225.0, 229.0, 200)]}
    tally = needless_moves({}, {"p1": 10.0}, leases, renewals, W)
    assert (tally.renewing, tally.back, tally.silent) == (0, 1, 0)
