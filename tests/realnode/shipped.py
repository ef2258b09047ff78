"""What a release ships (`make release`, hack/release.sh), built for the real node's tests so
that they run on the released artifacts: the packaged chart with its images pinned by digest,
and the images from the release's own OCI archives (issue 28: "the quickstart from the
release's images on the real node"). Nothing here reads the source tree's chart or the image
cache's archives: a test that passes used what a user downloads."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE_SCRIPT = ROOT / "hack" / "release.sh"
IMAGES = ("operator", "agent")  # the images a release ships (the voicemail one is the rig's)


class ReleaseError(RuntimeError):
    """`hack/release.sh` failed, or what it wrote does not verify."""


@dataclass(frozen=True)
class Release:
    """One release's directory (hack/release.sh OUT) and what the tests install from it."""

    directory: Path
    version: str
    seconds: float  # how long hack/release.sh took (the suite's budget counts it)

    @property
    def chart(self) -> Path:
        return self.directory / f"pairwarden-{self.version}.tgz"

    def archive(self, image: str) -> Path:
        return self.directory / "images" / f"{image}-{self.version}.oci.tar"

    def digest(self, image: str) -> str:
        """The manifest digest the release records (images/NAME-V.digest), `sha256:...`."""
        return (self.directory / "images" / f"{image}-{self.version}.digest").read_text().strip()

    def image_id(self, image: str) -> str:
        """The imageID a container started from this release's `image` reports (the CRI gives
        the image's repo digest): what no locally tagged image of other content can show."""
        return f"docker.io/pairwarden/{image}@{self.digest(image)}"


def version() -> str:
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise ReleaseError("no version in pyproject.toml")


def build(out: Path) -> Release:
    """hack/release.sh into `out`, from this tree as it is (RELEASE_ALLOW_DIRTY: a test runs on
    uncommitted changes), the images hack/images.sh has cached (the caller built them); then
    its SHA256SUMS checked. The real node's lock is the caller's (tests/realnode runs one node
    at a time): the script must not wait for it again."""
    env = {
        **os.environ,
        "RELEASE_ALLOW_DIRTY": "1",
        "PAIRWARDEN_REALNODE_LOCK_HELD": "1",
        "PYTHON": sys.executable,
    }
    env.pop("RELEASE_REGISTRY", None)  # the chart's default registry, the one the node names
    t0 = time.monotonic()
    done = subprocess.run(
        ["bash", str(RELEASE_SCRIPT), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-12:])
        raise ReleaseError(f"hack/release.sh failed ({done.returncode}):\n{tail}")
    release = Release(out, version(), time.monotonic() - t0)
    bad = unverified(out)
    if bad:
        raise ReleaseError(f"{out}/SHA256SUMS does not verify: {bad}")
    for image in IMAGES:
        if not release.archive(image).is_file() or not release.digest(image).startswith("sha256:"):
            raise ReleaseError(f"the release has no {image} image archive and digest")
    return release


def unverified(directory: Path) -> list[str]:
    """The files SHA256SUMS lists whose content differs or that are missing, and the files
    it does not list (`sha256sum --check`, and then some): empty when the release verifies."""
    listed: dict[str, str] = {}
    for line in (directory / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    bad = [
        name
        for name, digest in listed.items()
        if not (directory / name).is_file()
        or hashlib.sha256((directory / name).read_bytes()).hexdigest() != digest
    ]
    present = {
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != "SHA256SUMS"
    }
    return bad + sorted(f"{name} (not listed)" for name in present - listed.keys())
