"""`make e2e`: the scenarios on a real cluster made by kind.

Creates a kind cluster, builds the three images and loads them into it, installs the chart with
Helm's own library (helm-sdkpy), then runs `e2e/test_cluster.py` against it with
PAIRWARDEN_E2E_CLUSTER pointing at the cluster's kubeconfig, and deletes the cluster (unless
--keep). The Makefile only calls this where `kind` and a container engine answer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ("operator", "agent", "voicemail")


def sh(*command: str, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="pairwarden-e2e")
    parser.add_argument("--keep", action="store_true", help="keep the cluster afterwards")
    args = parser.parse_args()
    kubeconfig = Path(tempfile.mkdtemp(prefix="pairwarden-kind-")) / "kubeconfig"
    sh("kind", "create", "cluster", "--name", args.name, "--kubeconfig", str(kubeconfig),
       "--wait", "180s")  # fmt: skip
    try:
        for image in IMAGES:
            tag = f"pairwarden/{image}:dev"
            sh("docker", "build", "-f", "images/Dockerfile", "--target", image, "-t", tag, ".")
            sh("kind", "load", "docker-image", tag, "--name", args.name)
        install_chart(kubeconfig)
        env = {**os.environ, "PAIRWARDEN_E2E_CLUSTER": str(kubeconfig)}
        sh(sys.executable, "-m", "pytest", "-m", "cluster", "e2e/test_cluster.py", "-v", env=env)
    finally:
        if not args.keep:
            sh("kind", "delete", "cluster", "--name", args.name)
    return 0


def install_chart(kubeconfig: Path) -> None:
    """helm install, through Helm's own library; images were loaded by kind, never pulled."""
    import asyncio

    import helm_sdkpy

    local = {"tag": "dev", "pullPolicy": "Never"}
    config = helm_sdkpy.Configuration(namespace="pairwarden", kubeconfig=str(kubeconfig))
    install = helm_sdkpy.Install(config).run(
        release_name="pairwarden",
        chart_path=str(ROOT / "charts" / "pairwarden"),
        values={"image": {name: local for name in IMAGES}, "memberNamespaces": ["voice"]},
        create_namespace=True,
        wait=True,
        timeout=300,
    )
    asyncio.run(install)


if __name__ == "__main__":
    sys.exit(main())
