from datetime import UTC, datetime, timedelta

from pairwarden.api.models import FailoverPairStatus, parse_spec
from pairwarden.controller.jobs import JobResult
from pairwarden.controller.replication import (
    ReplicationMemory,
    copy_key,
    due,
    seconds_until_due,
    stale,
    unread_job,
    with_result,
)
from pairwarden.protocol import MemberReport, ReplicationReport

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SPEC = parse_spec(
    {
        "members": {"primary": {"podName": "a"}, "secondary": {"podName": "b"}},
        "service": "calls",
        "replication": {"fileIntervalSeconds": 30, "databaseIntervalSeconds": 60},
    }
)


def status(**fields: object) -> FailoverPairStatus:
    return FailoverPairStatus.model_validate({"activeMember": "primary", "epoch": 1, **fields})


def test_first_run_is_due_at_once_and_then_at_the_shorter_interval() -> None:
    assert due(SPEC, status(), both_up=True, now=T0)
    ran = status(replication={"lastRun": T0.isoformat(), "epoch": 1})
    assert not due(SPEC, ran, True, T0 + timedelta(seconds=29))
    assert due(SPEC, ran, True, T0 + timedelta(seconds=30))
    assert seconds_until_due(SPEC, ran, T0 + timedelta(seconds=10)) == 20


def moved_at(when: datetime, **fields: object) -> FailoverPairStatus:
    """Failed over to the secondary at `when` (epoch 1 -> 2)."""
    transition = {"time": when.isoformat(), "from": "primary", "to": "secondary",
                  "cause": "ManualFailover", "epoch": 2}  # fmt: skip
    return status(activeMember="secondary", epoch=2, lastTransition=transition, **fields)


def test_a_role_change_makes_replication_due_in_the_new_direction() -> None:
    moved = moved_at(T0 + timedelta(seconds=5), replication={"lastRun": T0.isoformat(), "epoch": 1})
    assert due(SPEC, moved, True, T0 + timedelta(seconds=6))
    assert due(SPEC, moved_at(T0, replication={"lastRun": T0.isoformat()}), True, T0)  # no epoch


def test_a_job_of_the_new_epoch_is_not_repeated_within_the_same_second() -> None:
    """Job times have whole seconds: a Job started after a role change at 12:00:00.4 and done
    at 12:00:00.9 reads as finished at 12:00:00, before the change. Its epoch says otherwise;
    comparing the times started a Job per reconciliation until the second turned."""
    quick = JobResult("j1", True, T0, None, "replication done", epoch=2)
    after = with_result(moved_at(T0 + timedelta(milliseconds=400)), quick, T0)
    assert after.replication is not None and after.replication.epoch == 2
    assert not due(SPEC, after, True, T0 + timedelta(milliseconds=950))


def test_nothing_runs_paused_without_an_active_member_or_with_a_member_down() -> None:
    paused = SPEC.model_copy(update={"paused": True})
    assert not due(paused, status(), True, T0)
    assert not due(SPEC, status(activeMember="none"), True, T0)
    assert not due(SPEC, status(), both_up=False, now=T0)


def report(files: int, bytes: int) -> ReplicationReport:
    return ReplicationReport("http://a", "http://b", ok=True, files=files, bytes=bytes)


def test_a_failed_job_keeps_the_last_success_and_turns_the_condition_false() -> None:
    good = JobResult("j1", True, T0, report(files=3, bytes=10), "copied 3 files")
    after = with_result(status(), good, T0 + timedelta(seconds=2))
    assert after.replication is not None
    assert after.replication.last_success == T0 and after.replication.files == 3
    assert after.replication.lag_seconds == 2
    bad = JobResult("j2", False, T0 + timedelta(seconds=60), None, "target refused: 503")
    later = with_result(after, bad, T0 + timedelta(seconds=61))
    assert later.replication is not None
    assert later.replication.last_run == T0 + timedelta(seconds=60)
    assert later.replication.last_success == T0
    condition = next(c for c in later.conditions if c.type == "ReplicationHealthy")
    assert condition.status == "False" and "503" in condition.message


def test_unchanged_data_needs_no_job_but_a_change_or_a_role_change_does() -> None:
    copied = status(replication={"lastRun": T0.isoformat(), "dataVersion": "v1", "epoch": 1})
    later = T0 + timedelta(seconds=120)
    assert not due(SPEC, copied, True, later, version="v1")
    assert due(SPEC, copied, True, later, version="v2")
    assert due(SPEC, copied, True, later, version="")  # an agent that publishes no version
    moved = moved_at(
        T0 + timedelta(seconds=5),
        replication={"lastRun": T0.isoformat(), "dataVersion": "v1", "epoch": 1},
    )
    assert due(SPEC, moved, True, later, version="v1")


def test_an_idle_pair_is_not_due_until_its_data_changes() -> None:
    """The reconciler sleeps to its resync, not a retry every few seconds, while the data
    it copied last is the active member's data now; new data is due at the interval."""
    copied = status(replication={"lastRun": T0.isoformat(), "dataVersion": "v1", "epoch": 1})
    assert seconds_until_due(SPEC, copied, T0 + timedelta(seconds=120), "v1") is None
    assert seconds_until_due(SPEC, copied, T0 + timedelta(seconds=10), "v2") == 20
    assert seconds_until_due(SPEC, copied, T0 + timedelta(seconds=10), "") == 20


def test_a_successful_job_records_the_version_it_copied() -> None:
    good = JobResult("j1", True, T0, report(files=1, bytes=1), "copied 1 files")
    after = with_result(status(), good, T0, version="v7")
    assert after.replication is not None and after.replication.data_version == "v7"
    bad = JobResult("j2", False, T0, None, "refused")
    assert with_result(after, bad, T0, version="v8").replication.data_version == "v7"  # type: ignore[union-attr]


def finished_job(name: str, epoch: int = 1) -> dict[str, object]:
    """Done at T0, with the whole-second times the Job controller writes."""
    stamp = T0.strftime("%Y-%m-%dT%H:%M:%SZ")
    complete = {"type": "Complete", "status": "True", "lastTransitionTime": stamp}
    return {
        "metadata": {"name": name, "annotations": {"pairwarden.io/epoch": str(epoch)}},
        "status": {"succeeded": 1, "completionTime": stamp, "conditions": [complete]},
    }


def test_our_jobs_result_is_read_by_name_even_within_the_same_second() -> None:
    """Two Jobs finishing in one second have the same time: ours is known by its name."""
    recorded = status(replication={"lastRun": T0.isoformat(), "epoch": 1})
    listed = [finished_job("j1"), {"metadata": {"name": "j2"}, "status": {"active": 1}}]
    assert unread_job(listed, ReplicationMemory(running="j2"), recorded) is None  # runs
    listed[1] = finished_job("j2")
    mine = unread_job(listed, ReplicationMemory(running="j2"), recorded)
    assert mine is not None and mine["metadata"]["name"] == "j2"
    # after a restart nothing is ours: only a result newer than the recorded run counts
    assert unread_job(listed, ReplicationMemory(), recorded) is None
    assert unread_job(listed, ReplicationMemory(), status()) is not None


def test_a_job_in_the_direction_the_pair_left_is_stale() -> None:
    """A Job started before a failover copies towards the new active member, which refuses
    its writes: the operator stops it instead of letting the copy back wait for it."""
    running = ReplicationMemory(running="vm-replicate-1", version="v1", epoch=1)
    assert not stale(running, status(epoch=1))
    assert stale(running, status(activeMember="secondary", epoch=2))
    assert not stale(ReplicationMemory(running=None, epoch=1), status(epoch=2))  # none runs
    # A Job a previous operator process started: its direction is unknown here, so it is left
    # to finish (its result is read as before).
    assert not stale(ReplicationMemory(running="vm-replicate-1"), status(epoch=2))


def test_a_standby_that_started_again_needs_a_copy_though_the_data_did_not_change() -> None:
    """A standby pod recreated with an empty volume: the active's data version is the one
    copied, yet the copy went to the standby's previous incarnation."""
    source = MemberReport(data_version="v1")
    first = copy_key(source, MemberReport(started=T0))
    copied = status(replication={"lastRun": T0.isoformat(), "dataVersion": first, "epoch": 1})
    later = T0 + timedelta(seconds=120)
    assert not due(SPEC, copied, True, later, version=first)
    again = copy_key(source, MemberReport(started=T0 + timedelta(seconds=100)))
    assert due(SPEC, copied, True, later, version=again)
    assert copy_key(MemberReport(), MemberReport(started=T0)) == ""  # no version: by interval
