"""The time-per-tier table printed at the end of `make test` (the root conftest.py's hooks)."""

from __future__ import annotations

from conftest import Tier, tier_of, tier_table, worker_group


def test_each_test_falls_in_the_tier_of_its_area_or_its_backend() -> None:
    assert tier_of("tests/engine/test_core.py::test_x") == "tests/engine"
    assert tier_of("tests/realnode/test_node.py::test_x[a-b]") == "tests/realnode"
    assert tier_of("e2e/test_failover.py::test_x[kube-1.20]", "kube-1.20") == "e2e[kube-1.20]"
    assert tier_of("e2e/test_failover.py::test_x[sandbox]", "sandbox") == "e2e[sandbox]"
    assert tier_of("e2e/test_cluster.py::test_on_kind") == "e2e"  # no backend parameter
    assert tier_of("tests/test_tiers.py::test_x") == "tests"
    assert tier_of("test_root.py::test_x") == "."


def test_the_table_puts_the_slowest_tier_first_and_sums_every_column() -> None:
    tiers = {
        "tests/engine": Tier(tests=40, skipped=1, seconds=12.5),
        "e2e[kube-1.20]": Tier(tests=35, failed={"e2e/a", "e2e/b"}, skipped=4, seconds=601.5),
    }
    head, slowest, fastest, total = tier_table(tiers)
    assert head.split() == ["tier", "tests", "failed", "skipped", "time"]
    assert slowest.split() == ["e2e[kube-1.20]", "35", "2", "4", "10:01.5"]
    assert fastest.split() == ["tests/engine", "40", "0", "1", "0:12.5"]
    assert total.split() == ["total", "75", "2", "5", "10:14.0"]


def test_a_worker_takes_each_tier_whole_and_one_takes_every_test_of_the_real_control_plane() -> (
    None
):
    assert worker_group("tests/realnode/test_node.py::test_a") == "tests/realnode"
    assert worker_group("tests/realnode/test_failover.py::test_b[crash]") == "tests/realnode"
    assert worker_group("tests/sandbox/test_watch.py::test_c[sandbox]") == "tests/sandbox"
    real = [
        "tests/sandbox/test_watch.py::test_c[kube-1.20]",
        "tests/sandbox/test_bad_input.py::test_d[kube-1.20-POST-configmaps-{}-400]",
        "e2e/test_failover.py::test_e[kube-1.20]",
        "tests/realk8s/test_operator_rbac.py::test_f",
        "e2e/test_netpol_real.py::test_g",
    ]
    assert {worker_group(nodeid) for nodeid in real} == {"kube-1.20"}
    # a scenario on the sandbox is a group of its own: either worker takes it
    sandbox = "e2e/test_failover.py::test_e[sandbox]"
    assert worker_group(sandbox) == sandbox
