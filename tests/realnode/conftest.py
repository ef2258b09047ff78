"""The real node's own tests (marker `realnode`: `pytest -m realnode`): the node, the
images of a release built from this tree on it (`make release`: their OCI archives), the
operator installed from the release's chart, failover as callers see it.
The node and the pair are set up once for this package and shared by its modules (their
start is two minutes or more of the suite's time); each scenario starts from whatever member
the last one left active."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.realnode import shipped
from tests.realnode.pairs import Pair, install
from tests.realnode.shipped import Release

from conftest import namespaces


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realnode: needs a real node (hack/node.sh) beside the real control plane"
    )


@pytest.fixture(scope="package")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """What `make release` ships, built from this tree (tests/realnode/shipped.py): the chart
    packaged with its images pinned by digest and the images' OCI archives, which the node
    loads and the pair installs, so that every scenario here runs on the released artifacts.
    The images are those hack/images.sh has cached for this tree (the release copies them);
    the release's own steps (wheel, sdist, SBOMs, chart, krew, sums) take about a minute.

    Skips, naming the reason, when the node cannot run here (not root, Debian packages or
    binaries missing, PAIRWARDEN_REAL_NODE=0), when the images are not built for this tree
    (`make test` builds them first, `make node-images`; PAIRWARDEN_REAL_NODE=1 builds them
    here) or cannot be built. A release that cannot be built or whose SHA256SUMS does not
    verify is a failure."""
    from pairwarden_testbed import node as realnode

    reason = realnode.cannot_run()  # Debian's containerd, runc, CNI, conntrack installed first
    if reason:
        pytest.skip(reason)
    if os.environ.get("PAIRWARDEN_REAL_NODE") != "1":
        # `make test` builds them before pytest starts (`make node-images`), outside every
        # test's timeout; a bare pytest run spends no image build (tens of minutes cold, a
        # minute or more after a code change) and skips on stale images.
        stale = realnode.images_stale()
        if stale:
            failed = realnode.images_build_failure()
            how = (
                f"`make test` could not build them: {failed}"
                if failed
                else "`make images`, or PAIRWARDEN_REAL_NODE=1 to build them here"
            )
            pytest.skip(
                f"the project's images are not built for this tree ({stale.splitlines()[-1]}): "
                + how
            )
    try:
        realnode.build_images()
    except realnode.NodeError as error:
        pytest.skip(f"the project's images cannot be built here: {error}")
    built = shipped.build(tmp_path_factory.mktemp("release"))
    print(f"real node: the release built in {built.seconds:.1f}s ({built.directory})")
    return built


@pytest.fixture(scope="package")
def real_node(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real node (containerd, runc, bridge CNI, kubelet and kube-proxy 1.20, issue 19)
    beside a control plane of its own, with the release's two images (its OCI archives) and
    the rig's voicemail image loaded: a `pairwarden_testbed.node.Node` (.cp is its control
    plane). Its own control plane because pods must reach the API server through the
    `kubernetes` Service, which a loopback service range (the real_cluster's, for the local
    kube-proxy stand-in) cannot give them. Only the release's archives hold the operator and
    agent images here: a pinned reference that did not resolve would not start.

    PAIRWARDEN_REAL_NODE_DIR=DIR keeps the control plane and the node running in DIR between
    sessions, as PAIRWARDEN_K8S_DIR does for real_cluster (`hack/control-plane.sh down DIR`
    stops both): a developer's next run skips their start.

    Package-scoped (tests/realnode is a package for this): the node, its control plane and
    the pair stop after the last test here, not at the end of `make test`'s session, where
    they kept about 0.2 of the machine's 2 cores busy through the other half of the suite."""
    from pairwarden_testbed import controlplane
    from pairwarden_testbed import node as realnode

    kept = os.environ.get("PAIRWARDEN_REAL_NODE_DIR")
    directory = Path(kept) if kept else tmp_path_factory.mktemp("k8snode")
    try:
        images = ["voicemail", *(str(release.archive(i)) for i in shipped.IMAGES)]
        node = realnode.start(directory, images)
    except controlplane.ControlPlaneError as error:
        pytest.skip(f"the real node did not start: {error}")
    try:
        yield node
    finally:
        if not kept:
            realnode.stop(node)
    # Checked here, once per session: `down` leaves no containers, mounts, network
    # namespaces, veths, bridge, iptables chains or pod logs behind.
    assert kept or not node.leftovers(), f"the real node left behind: {node.leftovers()}"


@pytest.fixture(scope="package")
def plane(real_node: Any) -> Any:
    """`admin` and `ns` talk to the real node's own control plane here."""
    return real_node.cp


@pytest.fixture(scope="package")
def admin(plane: Any) -> Iterator[Any]:
    """The session's admin client (the pair below outlives a module)."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(plane.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="package")
def make_namespace(admin: Any) -> Iterator[Callable[[str], str]]:
    yield from namespaces(admin)


@pytest.fixture(scope="package")
def pair(
    real_node: Any,
    release: Release,
    admin: Any,
    make_namespace: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Pair:
    """The release's chart and the example pair with the release's agent image, installed
    once (tests/realnode/pairs.py)."""
    workdir = tmp_path_factory.mktemp("pair")
    return install(real_node, admin, make_namespace, workdir, release.chart)
