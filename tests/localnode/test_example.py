"""examples/voicemail-pair.yaml: valid Kubernetes objects the local kubelet can run."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

from pairwarden_testbed.localnode import podspec

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


def test_example_has_sip_over_udp_and_a_shared_message_store() -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    sip = next(p for p in docs[2]["spec"]["ports"] if p["name"] == "sip")
    assert (sip["port"], sip["targetPort"], sip["protocol"]) == (5060, 5060, "UDP")
    stores = []
    for pod in docs[:2]:
        vm = next(c for c in pod["spec"]["containers"] if c["name"] == "voicemail")
        args = vm["args"]
        assert args[args.index("--sip-port") + 1] == "5060"
        mount = next(m for m in vm["volumeMounts"] if m["name"] == "message-store")
        assert args[args.index("--message-store") + 1] == mount["mountPath"]
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "message-store")
        stores.append(volume["hostPath"]["path"])
    assert stores[0] == stores[1]  # both members see the same store


def test_each_member_has_its_own_identity_and_only_its_agent_holds_credentials(
    tmp_path: Path,
) -> None:
    """Issue 25: the voicemail container gets no API token, and the order key is written by
    the agent alone: the voicemail mounts it read-only, nothing else in the pod mounts it."""
    from pairwarden.controller.rbac import agent_account
    from pairwarden.orders import ORDER_KEY_FILE

    assert podspec.gets_api_credentials({"spec": {}}, {"name": "any"})  # a kubelet's default
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    for pod, member in zip(docs[:2], ("primary", "secondary"), strict=True):
        spec = pod["spec"]
        assert spec["serviceAccountName"] == agent_account("vm", member)
        assert spec["automountServiceAccountToken"] is False
        containers = {c["name"]: c for c in spec["containers"]}
        assert set(containers) == {"voicemail", "agent"}
        assert podspec.gets_api_credentials(pod, containers["agent"])
        assert not podspec.gets_api_credentials(pod, containers["voicemail"])
        (token,) = [v for v in spec["volumes"] if "projected" in v]
        sources = token["projected"]["sources"]
        assert any("serviceAccountToken" in s for s in sources)
        mounts = {
            name: {m["name"]: m for m in c.get("volumeMounts") or []}
            for name, c in containers.items()
        }
        assert token["name"] in mounts["agent"] and token["name"] not in mounts["voicemail"]
        key_dir = str(Path(ORDER_KEY_FILE).parent)
        assert mounts["agent"]["order-key"]["mountPath"] == key_dir
        assert not mounts["agent"]["order-key"].get("readOnly")
        assert mounts["voicemail"]["order-key"] == {
            "name": "order-key", "mountPath": key_dir, "readOnly": True,
        }  # fmt: skip
        (volume,) = [v for v in spec["volumes"] if v["name"] == "order-key"]
        assert "emptyDir" in volume
        for name in ("voicemail", "agent"):
            args = containers[name]["args"]
            assert args[args.index("--order-key-file") + 1] == ORDER_KEY_FILE
        volumes = podspec.volume_paths(pod, tmp_path)
        mapped = podspec.mount_map(containers["voicemail"], volumes)
        argv = podspec.command_line(containers["voicemail"], mapped)
        assert argv[argv.index("--order-key-file") + 1] == str(volumes["order-key"] / "key")
