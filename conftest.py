"""Fixtures shared by tests/ and e2e/: the real Kubernetes control plane, started once per
session for both (the conformance suite and the e2e scenarios run on it). And the suite's time
per tier, printed at the end of every run (`make test`'s budget is 25 min warm on 2 cores)."""

from __future__ import annotations

import contextlib
import os
import time
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
# The tier of a test with this parameter value runs on the real control plane (e2e's `cluster`
# and `backend`, tests/sandbox's `sandbox`).
REAL_BACKEND = "kube-1.20"
# The other tests on the real control plane (`real_cluster` among their fixtures): the rule
# below checks the list at every `make test`.
REAL_MODULES = (
    "tests/realk8s/",
    "tests/localnode/test_real_node.py",
    "tests/quickstart/test_readme.py",
    "e2e/test_netpol_real.py",
    "e2e/test_chaos_real.py",
)


def backend_of(item: pytest.Item) -> str | None:
    """The backend parameter of a test (e2e's `cluster` or `backend`), None without one."""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    found = params.get("cluster") or params.get("backend")
    return str(found) if found is not None else None


def worker_group(nodeid: str) -> str:
    """The group of tests one `make test` worker runs together, in their order
    (`pytest -n 2 --dist loadscope`, with this as the scope); a scenario's own id when any
    worker may take it (pure).

    - every test on the real control plane (a `kube-1.20` parameter, or a module of
      REAL_MODULES): one group, so one worker starts that control plane, as one session did
      (and PAIRWARDEN_K8S_DIR's kept one is not started twice at once);
    - each other tier of tests/ (tests/realnode, tests/sim, ...): a group, so a package's or
      module's fixtures are set up once (the real node, one at a time on a machine, and its
      pair) and its tests run in their order (tests/realnode's start where the last left);
    - the e2e scenarios on the sandbox: none. Each has its own sandbox, operator, pod
      addresses and ports (free_port, IpAllocator's and the kubelet's random loopback
      ranges), and mostly waits (windows, held faults: under half a core each on 2 cores).
    """
    path, _, name = nodeid.partition("::")
    params = name[name.find("[") :] if "[" in name else ""
    if REAL_BACKEND in params or path.startswith(REAL_MODULES):
        return REAL_BACKEND
    if path.startswith("tests/"):
        return tier_of(nodeid)
    return nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope` with worker_group as the scope (xdist's own `loadgroup` cannot name
    a group on pytest 9, whose node ids it no longer rewrites)."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class TierScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return TierScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker of `make test`: every test on the real control plane is in its group."""
    if not hasattr(config, "workerinput"):
        return
    for item in items:
        if (
            "real_cluster" in getattr(item, "fixturenames", ())
            and worker_group(item.nodeid) != REAL_BACKEND
        ):
            # Fails this test before it starts a second control plane, and says why (an
            # error at collection ends a worker silently: xdist reports only its next test).
            item.add_marker(pytest.mark.usefixtures("_stray_from_the_real_group"))
            item.fixturenames.insert(0, "_stray_from_the_real_group")


@pytest.fixture
def _stray_from_the_real_group(request: pytest.FixtureRequest) -> None:
    pytest.fail(
        f"{request.node.nodeid} runs on the real control plane but not in its worker group: "
        "add its module to REAL_MODULES in conftest.py"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Each report names its tier (`report.tier`): made where the test ran, it travels with
    the report to the process that prints the table (pytest-xdist's controller)."""
    report = yield
    report.tier = tier_of(item.nodeid, backend_of(item))
    return report


class TierClock:
    """Adds up each report's seconds in its tier's row, in the process that prints the table
    (the only one under pytest -n: the workers' reports all reach it), and times the run."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        tier = getattr(report, "tier", None) or tier_of(report.nodeid)
        row = self.config.stash.setdefault(TIERS, {}).setdefault(tier, Tier())
        row.seconds += report.duration
        row.tests += report.when == "setup"
        row.skipped += bool(report.skipped)
        if report.failed:
            row.failed.add(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tiers = self.config.stash.get(TIERS, {})
        if not tiers:
            return
        terminalreporter.write_sep("=", "time per tier (setup + call + teardown)")
        for line in tier_table(tiers):
            terminalreporter.write_line(line)
        workers = getattr(self.config.option, "numprocesses", None) or 0
        if workers:
            wall = time.monotonic() - self.started
            terminalreporter.write_line(
                f"{workers} workers: {_minutes(wall)} wall clock (the tiers' times overlap)"
            )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(TierClock(config), "pairwarden-tier-clock")


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
