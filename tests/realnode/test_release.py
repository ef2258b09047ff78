"""The quickstart from a release's images on the real node (issue 28): the pair of
tests/realnode/pairs.py is installed from what `make release` ships (tests/realnode/shipped.py:
the packaged chart, its images pinned by digest, the images imported from the release's own
OCI archives), and here its running containers are checked to be exactly those images (by the
digest the release records, so that nothing fell back to a locally tagged image) and its
callers answered."""

from __future__ import annotations

from typing import Any

import pytest
from e2e.sippcall import needs_sipp
from tests.realnode import shipped
from tests.realnode.pairs import Pair
from tests.realnode.shipped import Release

from pairwarden.protocol import MEMBERS

pytestmark = [pytest.mark.realnode, pytest.mark.timeout(900)]


def image_id(pod: Any, container: str) -> str | None:
    """The imageID the kubelet reports for a running container; None when it is not running
    (a replica a `helm upgrade` scaled away, test_operator_life, is Completed or leaving)."""
    (status,) = [s for s in pod.status.container_statuses or [] if s.name == container]
    return str(status.image_id) if status.state.running else None


def test_the_release_verifies(release: Release) -> None:
    assert shipped.unverified(release.directory) == []
    assert release.chart.is_file()


def test_the_chart_pinned_the_release_images(pair: Pair, release: Release) -> None:
    """As installed (a later `helm upgrade` may install another chart): the operator's image
    and the agent image the members run, `pairwarden/NAME:VERSION@DIGEST`."""
    assert pair.chart == release.chart
    for image in shipped.IMAGES:
        pinned = f"pairwarden/{image}:{release.version}@{release.digest(image)}"
        assert pair.installed[image] == pinned
    assert pair.agent_image == pair.installed["agent"]


def test_the_pair_runs_the_images_the_release_ships(pair: Pair, release: Release) -> None:
    """The kubelet ran exactly the images the release's archives hold: the imageID of every
    running operator replica and of both members' agents is the release's recorded digest (the node
    has these two images from the release's archives alone)."""
    operators = pair.core.list_namespaced_pod(
        pair.system, label_selector="app.kubernetes.io/component=operator"
    ).items
    ran = {p.metadata.name: image_id(p, "operator") for p in operators}
    ran = {name: found for name, found in ran.items() if found}
    assert ran, f"no running operator in {pair.system}"
    ran |= {f"vm-{m}": image_id(pair.pod(m), "agent") for m in MEMBERS}  # both must run
    for name, found in ran.items():
        image = "agent" if name.startswith("vm-") else "operator"
        assert found == release.image_id(image), (name, found)


@needs_sipp
def test_a_caller_reaches_the_active_member_through_the_service(pair: Pair) -> None:
    active = pair.routed()
    assert active in MEMBERS
    assert pair.serving(active)
    pair.caller(fixed_port=False).until(f"vm-{active}", 60)


def test_the_node_holds_the_release_images_by_name_and_digest(pair: Pair, release: Release) -> None:
    """Loaded as a node without a registry must (hack/images.sh load): under the release's
    name `repo:VERSION` (hack/release.py oci-name; the build's archive says `:dev`) and as
    `repo@digest`, the name through which the CRI resolves the chart's pinned reference."""
    names = pair.node.ctr("images", "ls", "-q").stdout.split()
    for image in shipped.IMAGES:
        assert f"docker.io/pairwarden/{image}:{release.version}" in names, names
        assert release.image_id(image) in names, names
