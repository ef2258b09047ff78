"""Which status a new one is compared with before a status write (controller.status.base):
what the server holds, never the operator's memory of a move whose status write is to come."""

from __future__ import annotations

from pairwarden.api import parse_spec
from pairwarden.api.models import FailoverPairStatus
from pairwarden.controller.status import Written, base
from pairwarden.engine import status_patch


def status(holder: str, epoch: int, **extra: object) -> FailoverPairStatus:
    return FailoverPairStatus.model_validate({"activeMember": holder, "epoch": epoch, **extra})


BEFORE = status("secondary", 1)  # what the pair's object showed when the move began
REVOKED = status(
    "none",
    2,
    handoff={"from": "secondary", "to": "primary", "cause": "PartitionHealed", "epoch": 2,
             "since": "2026-01-05T12:00:00Z"},
)  # fmt: skip
GRANTED = status("primary", 3)
SPEC = parse_spec(
    {"members": {"primary": {"podName": "a"}, "secondary": {"podName": "b"}}, "service": "s"}
)


def test_a_grant_right_after_a_revoke_is_written_while_the_watch_lags() -> None:
    """A revoke wrote its status (resourceVersion 11); a moment later the grant wrote the
    active Lease and now writes its status, while the watch still shows version 10. The
    delta is taken against the revoke's status, so the grant reaches the server. (Taken
    against the operator's memory, which already held the grant, it was empty: the status
    said `none` while the Lease named the primary until some later step.)"""
    compared = base(BEFORE, "10", Written(REVOKED, "11"))
    assert compared == REVOKED
    delta = status_patch(compared, GRANTED, SPEC)
    assert delta is not None
    assert delta["activeMember"] == "primary" and delta["epoch"] == 3
    assert delta["handoff"] is None  # merge patch: the revoke's handoff is deleted


def test_once_the_watch_caught_up_the_stored_status_is_the_base() -> None:
    """Ours, or a status someone wrote after ours (then it is overwritten from the Lease)."""
    foreign = status("secondary", 99)
    assert base(foreign, "12", Written(GRANTED, "11")) == foreign
    assert base(GRANTED, "11", Written(GRANTED, "11")) == GRANTED
    assert base(BEFORE, "10", None) == BEFORE  # nothing written by this process yet
    assert base(BEFORE, "abc", Written(GRANTED, "11")) == BEFORE  # opaque versions
