"""Fixtures shared by tests/ and e2e/: the real Kubernetes control plane, started once per
session for both (the conformance suite and the e2e scenarios run on it). And the suite's time
per tier, printed at the end of every run (`make test`'s budget is 25 min warm on 2 cores)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

# Service clusterIPs on loopback, where the kube-proxy stand-in can listen without touching
# the machine's network (the sandbox's are 127.1/16; pod IPs are random 127.A.B.x).
SERVICE_CIDR = "127.96.0.0/16"


def tier_of(nodeid: str, backend: str | None = None) -> str:
    """The tier a test belongs to in the time-per-tier table: `tests/<area>` for the tests of
    one area (tests/realnode, tests/realk8s, tests/engine, ...), `e2e[<backend>]` for a
    scenario run on one backend (the parameter of e2e's `cluster` or `backend` fixture:
    sandbox, kube-1.20), else the top-level directory (pure)."""
    parts = PurePosixPath(nodeid.split("::")[0]).parts
    if len(parts) > 2 and parts[0] == "tests":
        return f"tests/{parts[1]}"
    if parts and parts[0] == "e2e" and backend:
        return f"e2e[{backend}]"
    return parts[0] if len(parts) > 1 else "."


@dataclass
class Tier:
    """One row of the table: tests run, failed (any phase) and skipped, and the seconds their
    setup, call and teardown took together. A session-scoped fixture (the real control plane,
    the real node) counts in the tier of the first test that asks for it."""

    tests: int = 0
    failed: set[str] = field(default_factory=set)
    skipped: int = 0
    seconds: float = 0.0


def tier_table(tiers: dict[str, Tier]) -> list[str]:
    """The rows printed at the end of a run, slowest tier first, then the total (pure)."""
    width = max([len("tier"), *map(len, tiers)])
    head = f"{'tier':<{width}}  {'tests':>5}  {'failed':>6}  {'skipped':>7}  {'time':>9}"
    rows = [head]
    for name, t in sorted(tiers.items(), key=lambda kv: (-kv[1].seconds, kv[0])):
        rows.append(
            f"{name:<{width}}  {t.tests:>5}  {len(t.failed):>6}  {t.skipped:>7}  "
            f"{_minutes(t.seconds):>9}"
        )
    total = sum(t.seconds for t in tiers.values())
    tests = sum(t.tests for t in tiers.values())
    failed = sum(len(t.failed) for t in tiers.values())
    skipped = sum(t.skipped for t in tiers.values())
    rows.append(f"{'total':<{width}}  {tests:>5}  {failed:>6}  {skipped:>7}  {_minutes(total):>9}")
    return rows


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


TIERS = pytest.StashKey[dict[str, Tier]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    params = item.callspec.params if hasattr(item, "callspec") else {}
    tier = tier_of(item.nodeid, params.get("cluster") or params.get("backend"))
    row = item.config.stash.setdefault(TIERS, {}).setdefault(tier, Tier())
    row.seconds += report.duration
    row.tests += report.when == "setup"
    row.skipped += bool(report.skipped)
    if report.failed:
        row.failed.add(item.nodeid)
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    tiers = config.stash.get(TIERS, {})
    if tiers:
        terminalreporter.write_sep("=", "time per tier (setup + call + teardown)")
        for line in tier_table(tiers):
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Kubernetes 1.20 control plane (etcd, kube-apiserver, controller-manager,
    scheduler from hack/control-plane.sh), started once per session; a
    `pairwarden_testbed.controlplane.ControlPlane` (.kubeconfig, .server,
    .serviceaccount_kubeconfig(ns, sa)). Skips, naming the reason, when the binaries are
    not built (`make control-plane`) or PAIRWARDEN_REAL_K8S=0.

    PAIRWARDEN_K8S_DIR=DIR keeps it running in DIR between sessions (started by the first,
    reused by the next; `hack/control-plane.sh down DIR` stops it): a developer's warm runs
    then skip the minute it takes to start."""
    from pairwarden_testbed import controlplane

    reason = controlplane.unavailable()
    if reason:
        pytest.skip(reason)
    kept = os.environ.get("PAIRWARDEN_K8S_DIR")
    directory = Path(kept) if kept else tmp_path_factory.mktemp("k8s")
    from pairwarden_testbed.localnode.realnode import LOCAL_NODE

    nodes = (controlplane.NODE_NAME, LOCAL_NODE)  # a real kubelet's and the local one's
    cp = controlplane.ControlPlane(directory, nodes=nodes, service_cidr=SERVICE_CIDR)
    try:
        try:
            started = cp.up()
        except controlplane.ControlPlaneError as error:  # the tests skip, naming why
            pytest.skip(f"the real control plane did not start: {error}")
        yield started
    finally:
        if not kept:
            cp.down()


@pytest.fixture(scope="session")
def plane(real_cluster: Any) -> Any:
    """The control plane that `admin` and `ns` talk to: the session's real_cluster here,
    the real node's own in tests/realnode (which overrides this fixture)."""
    return real_cluster


@pytest.fixture(scope="module")
def admin(plane: Any) -> Iterator[Any]:
    """A kubernetes ApiClient acting as the admin of `plane`."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(plane.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="module")
def make_namespace(admin: Any) -> Iterator[Callable[[str], str]]:
    """Create a namespace named `prefix-<random>` (returned) once pods can be created in it
    (its default ServiceAccount has a token); all of them go at the end of the module, with
    their pods at once (grace 0)."""
    yield from namespaces(admin)


def namespaces(admin: Any) -> Iterator[Callable[[str], str]]:
    """make_namespace's work, for a fixture of any scope (tests/realnode's are the session's:
    its pair is installed once)."""
    from kubernetes import client

    from pairwarden_testbed.waiting import eventually

    core = client.CoreV1Api(admin)
    made: list[str] = []

    def has_token(name: str) -> bool:
        with contextlib.suppress(client.ApiException):
            return bool(core.read_namespaced_service_account("default", name).secrets)
        return False

    def make(prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        core.create_namespace({"metadata": {"name": name}})
        made.append(name)
        # 1.20 refuses a pod of a ServiceAccount whose token the controller has not made yet.
        eventually(lambda: has_token(name), 60, f"the default ServiceAccount token in {name}")
        return name

    yield make
    for name in made:
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name, grace_period_seconds=0)


@pytest.fixture
def ns(make_namespace: Callable[[str], str]) -> str:
    """A fresh namespace of `plane` for one test."""
    return make_namespace("smoke")
