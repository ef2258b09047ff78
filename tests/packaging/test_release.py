"""`make release` (hack/release.sh) as a user checks a release: every artifact is there, the
checksums verify, the generated krew manifest's sha256 is its archive's, two builds of one
tree give the same bytes, the chart pins images by digest when given them, and the wheel
installs into a clean virtual environment where `kubectl-pairwarden version` runs.

Fast by design: the release is built without its images (RELEASE_IMAGES=0; they take minutes
and run under the real node's lock: hack/release.sh builds them, tests/realk8s' image checks
cover their content), from a copy of the tree (setuptools writes build/ beside the sources).
The clean venv gets the wheel alone (--no-deps) with the dev environment's locked
dependencies behind it on sys.path: resolving them from the locks again takes minutes here,
and the workflow's publish step does exactly that."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.1.0"
ARTIFACTS = {
    f"pairwarden-{VERSION}-py3-none-any.whl",
    f"pairwarden-{VERSION}.tar.gz",
    f"pairwarden-{VERSION}.tgz",
    f"kubectl-pairwarden-{VERSION}.tar.gz",
    "pairwarden.krew.yaml",
}
sys.path.insert(0, str(ROOT / "hack"))
import release  # noqa: E402


def _tree_copy(dest: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    return dest


def _release(tree: Path, out: Path) -> dict[str, str]:
    env = {**os.environ, "RELEASE_IMAGES": "0", "RELEASE_ALLOW_DIRTY": "1"}
    env["PYTHON"] = sys.executable
    done = subprocess.run(
        ["bash", str(tree / "hack" / "release.sh"), str(out)],
        cwd=tree, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    sums = (out / "SHA256SUMS").read_text().splitlines()
    return {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in sums}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tree = _tree_copy(tmp_path_factory.mktemp("tree"))
    out = tmp_path_factory.mktemp("release")
    return out, _release(tree, out)


def test_every_artifact_is_there_and_the_checksums_verify(
    built: tuple[Path, dict[str, str]],
) -> None:
    out, sums = built
    assert set(sums) == ARTIFACTS
    for name, digest in sums.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name


def test_the_krew_manifest_names_its_archive_and_sha256(built: tuple[Path, dict[str, str]]) -> None:
    out, sums = built
    manifest = yaml.safe_load((out / "pairwarden.krew.yaml").read_text())
    (platform,) = manifest["spec"]["platforms"]
    archive = f"kubectl-pairwarden-{VERSION}.tar.gz"
    assert platform["uri"].endswith(f"/v{VERSION}/{archive}")
    assert platform["sha256"] == sums[archive]
    with tarfile.open(out / archive) as tar:
        names = set(tar.getnames())
        launcher = tar.getmember(platform["bin"])
    assert {platform["bin"], f"pairwarden-{VERSION}-py3-none-any.whl"} <= names
    assert launcher.mode & 0o111, "the launcher is executable"


def test_two_builds_of_one_tree_give_the_same_bytes(
    built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    _, first = built
    tree = _tree_copy(tmp_path / "tree")
    assert _release(tree, tmp_path / "again") == first


def test_the_chart_pins_images_by_digest(tmp_path: Path) -> None:
    digest = "sha256:" + "0f" * 32
    chart = release.pin_chart(ROOT / "charts" / "pairwarden", tmp_path, {"operator": digest})
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert values["image"]["operator"]["digest"] == digest
    assert values["image"]["agent"]["digest"] == ""
    with pytest.raises(SystemExit, match=r"image\.nosuch\.digest"):
        release.pin_chart(ROOT / "charts" / "pairwarden", tmp_path, {"nosuch": digest})


def test_the_wheel_installs_into_a_clean_venv_and_its_plugin_runs(
    built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    out, _ = built
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    wheel = out / f"pairwarden-{VERSION}-py3-none-any.whl"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
    done = subprocess.run([*install, "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # The dependencies (not the dev tree's editable pairwarden, loaded by a .pth of its own,
    # which a path line does not run) behind the wheel on sys.path.
    deps = next(p for p in sys.path if p.endswith("site-packages"))
    (Path(site) / "zz-locked-deps.pth").write_text(deps + "\n")
    plugin = env_dir / "bin" / "kubectl-pairwarden"
    version = subprocess.run([str(plugin), "version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"pairwarden {VERSION} (Kubernetes 1.20 and later)"
    where = subprocess.run(
        [str(python), "-c", "import json, pairwarden; print(json.dumps(pairwarden.__file__))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(where.stdout).startswith(str(env_dir)), "the wheel's, not the tree's"


def _oci_archive(path: Path, files: dict[str, bytes]) -> str:
    """A one-layer OCI image archive holding `files`; its manifest digest."""
    import gzip
    import io

    def blob(tar: tarfile.TarFile, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        info = tarfile.TarInfo("blobs/sha256/" + digest.split(":")[1])
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        return digest

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as layer:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            layer.addfile(info, io.BytesIO(data))
    with tarfile.open(path, "w") as tar:
        layer_digest = blob(tar, gzip.compress(raw.getvalue()))
        manifest = {"schemaVersion": 2, "layers": [{"digest": layer_digest}]}
        manifest_digest = blob(tar, json.dumps(manifest).encode())
        index = json.dumps({"manifests": [{"digest": manifest_digest}]}).encode()
        info = tarfile.TarInfo("index.json")
        info.size = len(index)
        tar.addfile(info, io.BytesIO(index))
    return manifest_digest


def test_an_image_sbom_lists_its_python_and_debian_packages(tmp_path: Path) -> None:
    site = "opt/pairwarden/lib/python3.12/site-packages"
    status = b"Package: libssl3\nStatus: install ok installed\nVersion: 3.0.15-1\n\n"
    status += b"Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n"
    files = {
        f"{site}/pairwarden-0.1.0.dist-info/METADATA": b"Name: pairwarden\n",
        f"{site}/kopf-1.45.2.dist-info/METADATA": b"Name: kopf\n",
        "var/lib/dpkg/status": status,
    }
    archive = tmp_path / "image.oci.tar"
    digest = _oci_archive(archive, files)
    assert release.image_digest(archive) == digest
    out = tmp_path / "sbom.spdx.json"
    release.sbom(archive, "pairwarden/agent:0.1.0", out)
    document = json.loads(out.read_text())
    assert document["spdxVersion"] == "SPDX-2.3"
    listed = {(p["name"], p["versionInfo"]) for p in document["packages"]}
    assert {("pairwarden", "0.1.0"), ("kopf", "1.45.2"), ("libssl3", "3.0.15-1")} < listed
    assert ("gone", "1") not in listed and ("pairwarden/agent:0.1.0", digest) in listed


def test_a_release_archive_names_the_release_and_keeps_its_digest(tmp_path: Path) -> None:
    """The build's archive names `:dev` (hack/images.sh); the release's names its version,
    which `ctr images import` and `docker load` give the image. Every blob, so the manifest
    digest the chart pins, stays."""
    archive = tmp_path / "operator.oci.tar"
    digest = _oci_archive(archive, {"app": b"x"})
    with tarfile.open(archive) as tar:
        before = {m.name: (tar.extractfile(m) or b"").read() for m in tar if m.isfile()}
    release.oci_name(archive, "docker.io/pairwarden/operator:0.1.0")
    assert release.image_digest(archive) == digest
    with tarfile.open(archive) as tar:
        after = {m.name: (tar.extractfile(m) or b"").read() for m in tar if m.isfile()}
        index = json.loads(after.pop("index.json"))
    assert after == {k: v for k, v in before.items() if k != "index.json"}
    (manifest,) = index["manifests"]
    assert manifest["annotations"][release.REF_NAME] == "docker.io/pairwarden/operator:0.1.0"
