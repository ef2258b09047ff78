"""examples/voicemail-pair.yaml: valid Kubernetes objects the local kubelet can run."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

from pairwarden.localnode import podspec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "voicemail-pair.yaml"


def test_example_is_valid_and_runs_locally(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Pod", "vm-primary"), ("Pod", "vm-secondary"), ("Service", "vm-calls"),
    ]  # fmt: skip
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    for pod, member in zip(docs[:2], ("primary", "secondary"), strict=True):
        assert podspec.is_local_pod(pod)
        agent = next(c for c in pod["spec"]["containers"] if c["name"] == "agent")
        volumes = podspec.volume_paths(pod, tmp_path)
        argv = podspec.command_line(agent, podspec.mount_map(agent, volumes))
        assert argv[3:8] == ["agent", "--pair", "vm", "--member", member]
        assert argv[argv.index("--state-dir") + 1] == str(volumes["data"] / "agent")
        token = argv[argv.index("--replication-token-file") + 1]
        assert token == str(volumes["replication-token"] / "token")
    assert docs[2]["spec"]["ports"][0]["targetPort"] == 5070
