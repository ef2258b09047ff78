"""Fault schedules only a real control plane has (issue 24): its etcd or its kube-apiserver
stopped with SIGSTOP while a caller dials through the Service (chaos.PAUSES), alone and with
the operator restarting meanwhile. None faults a member, so every call must be answered and no
role may move (chaos.judge_moves), and the pair must be whole again within the bound.
The sandbox's schedules are in test_chaos.py; these run on the session's real control plane.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from pairwarden_testbed import chaos
from pairwarden_testbed.chaos import REAL_WINDOW, Fault, Schedule

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("PAIRWARDEN_E2E_CLUSTER")), reason="the faults need the local kubelet"
)

PAUSED = (
    Schedule(
        0,
        (Fault(0.0, "etcd_pause", "primary", lasts=3 * REAL_WINDOW),),
        "etcd paused for three windows",
    ),
    Schedule(
        0,
        (Fault(0.0, "apiserver_pause", "primary", lasts=3 * REAL_WINDOW),),
        "kube-apiserver paused for three windows",
    ),
    Schedule(
        0,
        (
            Fault(0.0, "etcd_pause", "primary", lasts=2 * REAL_WINDOW),
            Fault(1.0, "kill_operator", "primary", lasts=REAL_WINDOW),
        ),
        "etcd paused while the operator is killed and started again",
    ),
)


def test_a_paused_control_plane_moves_nothing(
    real_cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    failures = chaos.play_all(list(PAUSED), runners=lambda: chaos.real_runner(real_cluster))
    out = capsys.readouterr().out
    print(out)
    assert failures == 0, out
    for schedule in PAUSED:
        assert f"ok   {schedule.name} whole after" in out
