"""The real node's crash timeline (tests/realnode/timeline.py) read back from what the node
writes: container log stamps, the kubelet's PLEG lines, the pod watch's container states, and
the stage rows the benchmark prints."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from tests.realnode.timeline import Stage, cri_stamp, died, first_line, kubelet_pleg, stage_rows

KILL = datetime(2026, 12, 7, 17, 30, 0, tzinfo=UTC).timestamp()


def test_a_cri_stamp_keeps_its_nanoseconds() -> None:
    assert cri_stamp("2026-12-07T17:30:01.250000000Z") == KILL + 1.25
    assert cri_stamp("2026-12-07T17:30:01Z") == KILL + 1.0


def test_the_first_line_after_the_kill_holding_every_needle() -> None:
    lines = [
        (KILL - 1, "vm: ... PodCrashed"),  # an earlier run's
        (KILL + 0.5, "vm: no change: Healthy"),
        (KILL + 1.2, "voice/vm: primary -> secondary (PodCrashed)"),
        (KILL + 1.4, "voice/vm: PodCrashed again"),
    ]
    assert first_line(lines, KILL, "PodCrashed") == KILL + 1.2
    assert math.isnan(first_line(lines, KILL, "HeartbeatLost"))


def test_the_kubelets_pleg_line_of_the_killed_pod(tmp_path: Path) -> None:
    log = tmp_path / "kubelet.log"
    log.write_text(
        'I1207 17:29:59.900000  100 kubelet.go:1] SyncLoop (PLEG): "vm-primary_voice(u)", '
        "event: &{ID:u Type:ContainerDied Data:a}\n"
        'I1207 17:30:00.600000  100 kubelet.go:1] SyncLoop (PLEG): "vm-secondary_voice(w)", '
        "event: &{ID:w Type:ContainerDied Data:b}\n"
        'I1207 17:30:00.700000  100 kubelet.go:1] SyncLoop (PLEG): "vm-primary_voice(u)", '
        "event: &{ID:u Type:ContainerStarted Data:c}\n"
        'I1207 17:30:00.812345  100 kubelet.go:1] SyncLoop (PLEG): "vm-primary_voice(u)", '
        "event: &{ID:u Type:ContainerDied Data:d}\n"
    )
    assert kubelet_pleg(log, KILL, "vm-primary") == KILL + 0.812345
    assert math.isnan(kubelet_pleg(tmp_path / "absent.log", KILL, "vm-primary"))


def test_the_pod_status_shows_every_container_dead_once_both_deaths_are_reported() -> None:
    """The kubelet may report the two deaths a relist apart (the agent first, restarted at
    once, then the voicemail): dead is when the last one shows; back is the agent running
    again after that."""
    values = [
        (9.0, "vm-primary/agent=0:R,vm-primary/voicemail=0:R,vm-secondary/agent=0:R"),
        (10.2, "vm-primary/agent=0:T,vm-primary/voicemail=0:R,vm-secondary/agent=0:R"),
        (10.4, "vm-primary/agent=1:R,vm-primary/voicemail=0:R,vm-secondary/agent=0:R"),
        (11.2, "vm-primary/agent=1:R,vm-primary/voicemail=0:T,vm-secondary/agent=0:R"),
        (11.5, "vm-primary/agent=1:R,vm-primary/voicemail=1:R,vm-secondary/agent=0:R"),
    ]
    assert died(values, "vm-primary", 10.0) == (11.2, 11.2)
    assert all(math.isnan(x) for x in died(values[:3], "vm-primary", 10.0))  # voicemail up
    readiness_blip = [(9.0, "vm-primary/agent=0:R"), (10.5, "vm-primary/agent=0:R")]
    assert all(math.isnan(x) for x in died(readiness_blip, "vm-primary", 10.0))


def test_stage_rows_in_the_order_they_happened_with_the_unseen_last() -> None:
    rows = stage_rows(
        KILL,
        [
            Stage("Service selector flipped", KILL + 1.3, "Service watch"),
            Stage("kubelet PLEG: ContainerDied", math.nan, "kubelet log"),
            Stage("pod status: all containers dead", KILL + 1.2, "pod watch"),
        ],
    )
    assert [r.split()[0] for r in rows[1:]] == ["pod", "Service", "kubelet"]
    assert "1.200   1.200" in rows[1] and "1.300   0.100" in rows[2]
    assert "(not seen)" in rows[3]
