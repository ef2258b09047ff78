"""The steps of `hack/release.sh` that are easier in Python than in shell, one subcommand each.
Every output is reproducible: the same inputs give the same bytes (sorted archive members, fixed
times from SOURCE_DATE_EPOCH, gzip without a timestamp), so SHA256SUMS can be compared between
two builds of one commit.

  dists OUT                 the wheel and sdist (PEP 517 hooks of the locked setuptools)
  image-digest ARCHIVE      the manifest digest of an OCI archive (what a registry serves)
  oci-name ARCHIVE NAME     name the archive's image NAME (the release's, not the build's
                            `:dev`); its blobs, so its digest, unchanged
  sbom ARCHIVE NAME OUT     an SPDX 2.3 JSON SBOM of the image: its Python distributions
                            (*.dist-info) and Debian packages (var/lib/dpkg/status)
  chart CHART OUT DIGESTS   a copy of the chart whose image references are pinned by digest
                            (DIGESTS: JSON {"operator": "sha256:...", ...}; {} pins nothing)
  krew WHEEL OUT MANIFEST   the plugin's krew archive (a launcher and the wheel) and the krew
                            manifest generated from MANIFEST (the template) with its sha256
  normalize TGZ             rewrite a .tar.gz made by another tool (the sdist, Helm's chart
                            package) deterministically: members sorted, times SOURCE_DATE_EPOCH
  sums DIR                  SHA256SUMS of every file under DIR
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _deterministic_tgz(out: Path, members: list[tuple[str, bytes, int]]) -> None:
    """A .tar.gz of (name, data, mode), sorted, owned by root, every time SOURCE_DATE_EPOCH."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    with out.open("wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=EPOCH, filename="") as gz:
        gz.write(raw.getvalue())


def normalize(path: Path) -> None:
    """The same members, in name order, every time SOURCE_DATE_EPOCH, owned by root."""
    raw = io.BytesIO()
    with tarfile.open(path) as source:
        members = sorted(source.getmembers(), key=lambda m: m.name)
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for member in members:
                data = source.extractfile(member) if member.isfile() else None
                member.mtime, member.uid, member.gid = EPOCH, 0, 0
                member.uname = member.gname = ""
                member.pax_headers = {}
                tar.addfile(member, data)
    with path.open("wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=EPOCH, filename="") as gz:
        gz.write(raw.getvalue())


# ------------------------------------------------------------------------------- dists


def dists(out: Path) -> None:
    from setuptools import build_meta

    out.mkdir(parents=True, exist_ok=True)
    here = os.getcwd()
    os.chdir(REPO)
    try:
        sdist = build_meta.build_sdist(str(out))
        build_meta.build_wheel(str(out))
        normalize(out / sdist)
    finally:
        os.chdir(here)
    for junk in REPO.glob("operator/*.egg-info"):
        shutil.rmtree(junk)
    shutil.rmtree(REPO / "build", ignore_errors=True)


# ------------------------------------------------------------------------------ images


def _oci_blob(tar: tarfile.TarFile, digest: str) -> bytes:
    member = tar.extractfile("blobs/" + digest.replace(":", "/"))
    assert member is not None, f"no blob {digest}"
    return member.read()


def image_digest(archive: Path) -> str:
    """The digest of the image's manifest, as the index of the OCI archive names it."""
    with tarfile.open(archive) as tar:
        index = json.loads(_oci_blob_by_name(tar, "index.json"))
    (manifest,) = index["manifests"]
    return str(manifest["digest"])


REF_NAME = "org.opencontainers.image.ref.name"


def oci_name(archive: Path, name: str) -> None:
    """Rewrite the archive's index.json so that its one image is called `name`
    (`docker.io/pairwarden/operator:V`): the name `ctr images import`, `docker load` and
    `hack/images.sh load` give it. The build's archive names `:dev`, which a user loading a
    release must not get. Only index.json changes: the manifest and its digest stay."""
    renamed = archive.with_name(archive.name + ".renamed")
    with tarfile.open(archive) as source, tarfile.open(renamed, "w", format=source.format) as out:
        for member in source:
            data = source.extractfile(member) if member.isfile() else None
            if member.name.lstrip("./") == "index.json" and data is not None:
                index = json.loads(data.read())
                (manifest,) = index["manifests"]
                manifest.setdefault("annotations", {})[REF_NAME] = name
                body = json.dumps(index, separators=(",", ":")).encode()
                member.size, data = len(body), io.BytesIO(body)
            out.addfile(member, data)
    renamed.replace(archive)


def _oci_blob_by_name(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    assert member is not None, f"no {name} in the archive"
    return member.read()


def _layers(archive: Path) -> Iterator[tarfile.TarFile]:
    with tarfile.open(archive) as tar:
        index = json.loads(_oci_blob_by_name(tar, "index.json"))
        manifest = json.loads(_oci_blob(tar, index["manifests"][0]["digest"]))
        for layer in manifest["layers"]:
            data = _oci_blob(tar, layer["digest"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                yield inner


DIST_INFO = re.compile(r"site-packages/([^/]+)-([^/-]+)\.dist-info/METADATA$")


def installed(archive: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The Python distributions and Debian packages the image's layers install (a later
    layer's file replaces an earlier one's; whiteouts remove)."""
    python: dict[str, str] = {}
    debian: dict[str, str] = {}
    for layer in _layers(archive):
        for member in layer.getmembers():
            name = member.name.lstrip("./")
            if "/.wh." in "/" + name:
                gone = DIST_INFO.search(name.replace(".wh.", "") + "/METADATA")
                if gone:
                    python.pop(gone.group(1).lower(), None)
                continue
            found = DIST_INFO.search(name)
            if found:
                python[found.group(1).lower().replace("_", "-")] = found.group(2)
            elif name == "var/lib/dpkg/status" and member.isfile():
                text = (layer.extractfile(member) or io.BytesIO()).read().decode("utf-8", "replace")
                debian = _dpkg_status(text)
    return python, debian


def _dpkg_status(text: str) -> dict[str, str]:
    packages: dict[str, str] = {}
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != " "
        )
        if "installed" in fields.get("Status", "") and "Package" in fields:
            packages[fields["Package"]] = fields.get("Version", "")
    return packages


def sbom(archive: Path, name: str, out: Path) -> None:
    """An SPDX 2.3 JSON document listing what the image installs (no SBOM tool is packaged
    for this machine: the list is read from the image itself)."""
    python, debian = installed(archive)
    digest = image_digest(archive)
    packages: list[dict[str, Any]] = [
        {
            "SPDXID": "SPDXRef-image",
            "name": name,
            "versionInfo": digest,
            "downloadLocation": "NOASSERTION",
            "checksums": [{"algorithm": "SHA256", "checksumValue": digest.split(":", 1)[1]}],
            "primaryPackagePurpose": "CONTAINER",
        }
    ]
    for kind, found in (("pypi", python), ("deb", debian)):
        for pkg, version in sorted(found.items()):
            ref = re.sub(r"[^A-Za-z0-9.-]", "-", f"{kind}-{pkg}-{version}")
            purl = f"pkg:{kind}/{pkg}@{version}" + ("?distro=debian-12" if kind == "deb" else "")
            packages.append(
                {
                    "SPDXID": f"SPDXRef-{ref}",
                    "name": pkg,
                    "versionInfo": version,
                    "downloadLocation": "NOASSERTION",
                    "externalRefs": [
                        {
                            "referenceCategory": "PACKAGE-MANAGER",
                            "referenceType": "purl",
                            "referenceLocator": purl,
                        }
                    ],
                }
            )
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{name}@{digest}",
        "documentNamespace": f"https://pairwarden.io/spdx/{uuid.uuid5(uuid.NAMESPACE_URL, digest)}",
        "creationInfo": {
            "created": _iso(EPOCH),
            "creators": ["Tool: pairwarden hack/release.py"],
        },
        "packages": packages,
        "relationships": [
            {
                "spdxElementId": "SPDXRef-image",
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": p["SPDXID"],
            }
            for p in packages[1:]
        ],
        "documentDescribes": ["SPDXRef-image"],
    }
    out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


def _iso(epoch: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------- chart


def pin_chart(chart: Path, out: Path, digests: dict[str, str]) -> Path:
    """A copy of the chart with `image.<name>.digest` set from `digests` (repository@digest:
    what the cluster pulls cannot change under the same reference)."""
    target = out / chart.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(chart, target)
    values_path = target / "values.yaml"
    text = values_path.read_text()
    for name, digest in sorted(digests.items()):
        pattern = re.compile(
            rf"(\n  {re.escape(name)}:\n(?:    .*\n)*?    digest: )\"\"", re.MULTILINE
        )
        text, count = pattern.subn(rf'\g<1>"{digest}"', text, count=1)
        if count != 1:
            raise SystemExit(f"values.yaml has no image.{name}.digest to pin")
    values_path.write_text(text)
    return target


# -------------------------------------------------------------------------------- krew

LAUNCHER = """#!/bin/sh
# kubectl-pairwarden from krew: the first run installs the bundled wheel into a private
# virtual environment (Python 3.12 needed), later runs start it directly.
set -e
here=$(cd "$(dirname "$0")" && pwd)
venv="${PAIRWARDEN_PLUGIN_VENV:-$here/venv}"
if [ ! -x "$venv/bin/kubectl-pairwarden" ]; then
    python=$(command -v python3.12 || command -v python3)
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 12))' ||
        { echo "kubectl-pairwarden: needs Python 3.12 or later on PATH" >&2; exit 1; }
    "$python" -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "$here"/pairwarden-*.whl >&2
fi
exec "$venv/bin/kubectl-pairwarden" "$@"
"""


def krew(wheel: Path, out: Path, template: Path) -> tuple[Path, Path]:
    """The krew archive and its manifest, the manifest's sha256 that of the archive."""
    version = wheel.name.split("-")[1]
    archive = out / f"kubectl-pairwarden-{version}.tar.gz"
    _deterministic_tgz(
        archive,
        [
            ("kubectl-pairwarden", LAUNCHER.encode(), 0o755),
            (wheel.name, wheel.read_bytes(), 0o644),
            ("LICENSE-NOTICE", b"pairwarden: see the project's repository\n", 0o644),
        ],
    )
    manifest = yaml.safe_load(template.read_text())
    assert manifest["spec"]["version"] == f"v{version}", "the krew template's version"
    (platform,) = manifest["spec"]["platforms"]
    assert platform["uri"].endswith("/" + archive.name), "the krew template's uri"
    platform["sha256"] = sha256(archive)
    generated = out / "pairwarden.krew.yaml"
    header = (
        "# Generated by `make release` (hack/release.py krew) from plugins/krew/pairwarden.yaml.\n"
    )
    generated.write_text(header + yaml.safe_dump(manifest, sort_keys=False))
    return archive, generated


# -------------------------------------------------------------------------------- sums


def sums(directory: Path) -> None:
    lines = [
        f"{sha256(p)}  {p.relative_to(directory).as_posix()}"
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "SHA256SUMS"
    ]
    (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    command, *args = argv
    if command == "dists":
        dists(Path(args[0]).resolve())
    elif command == "image-digest":
        print(image_digest(Path(args[0])))
    elif command == "oci-name":
        oci_name(Path(args[0]), args[1])
    elif command == "sbom":
        sbom(Path(args[0]), args[1], Path(args[2]))
    elif command == "chart":
        print(pin_chart(Path(args[0]), Path(args[1]), json.loads(args[2])))
    elif command == "krew":
        for path in krew(Path(args[0]), Path(args[1]), Path(args[2])):
            print(path)
    elif command == "normalize":
        normalize(Path(args[0]))
    elif command == "sums":
        sums(Path(args[0]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
