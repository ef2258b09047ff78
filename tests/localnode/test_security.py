"""The kubelet stand-in judges a pod's securityContext and Secret modes as a node would
(localnode/security.py): what a node leaves unreadable or refuses, the stand-in refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pairwarden_testbed.localnode import security

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "voicemail-pair.yaml"


def _pod(
    context: dict[str, Any], mode: int | None, container: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    secret: dict[str, Any] = {"secretName": "vm-replication-token"}
    if mode is not None:
        secret["defaultMode"] = mode
    agent = {
        "name": "agent",
        "image": "pairwarden/agent:dev",
        "volumeMounts": [{"name": "token", "mountPath": "/var/run/token"}],
        **(container or {}),
    }
    spec = {"securityContext": context, "volumes": [{"name": "token", "secret": secret}]}
    return {"spec": {**spec, "containers": [agent]}}, agent


def test_fsgroup_makes_a_secret_file_group_readable_even_at_0400() -> None:
    """kubernetes/kubernetes#57923: with fsGroup the kubelet ORs 0440 into defaultMode."""
    pod, _ = _pod({"fsGroup": 10001}, 0o400)
    volume = pod["spec"]["volumes"][0]
    assert security.secret_file_access(pod, volume) == security.FileAccess(0, 10001, 0o440)
    pod, _ = _pod({}, 0o400)
    assert security.secret_file_access(pod, pod["spec"]["volumes"][0]).mode == 0o400
    pod, _ = _pod({}, None)  # the API server's default
    assert security.secret_file_access(pod, pod["spec"]["volumes"][0]).mode == 0o644


def test_a_token_only_root_can_read_is_refused_with_the_reason() -> None:
    """The issue's finding: 0400 without fsGroup while the image runs as uid 10001."""
    pod, agent = _pod({}, 0o400)
    reason = security.refusal(pod, agent)
    assert reason is not None
    assert "/var/run/token/* would be 0400 owned by 0:0, unreadable by uid 10001" in reason
    assert security.refusal(*_pod({"fsGroup": 10001}, 0o440)) is None
    assert security.refusal(*_pod({}, 0o444)) is None  # world-readable
    # the Job's pod as the operator builds it: 0440 with fsGroup 10001, uid 10001
    job = _pod({"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}, 0o440)
    assert security.refusal(*job) is None
    # an item's own mode wins over defaultMode
    pod, agent = _pod({}, 0o444)
    pod["spec"]["volumes"][0]["secret"]["items"] = [{"key": "token", "path": "t", "mode": 0o400}]
    assert security.refusal(pod, agent) is not None


def test_run_as_non_root_as_root_is_refused_as_the_kubelet_refuses_it() -> None:
    pod, agent = _pod({"runAsNonRoot": True}, 0o444, {"securityContext": {"runAsUser": 0}})
    assert security.refusal(pod, agent) == "container has runAsNonRoot and image will run as root"
    pod, agent = _pod({"runAsNonRoot": True}, 0o444)  # the image's user, 10001
    assert security.refusal(pod, agent) is None


def test_the_example_pods_run_restricted_and_can_read_their_token() -> None:
    for pod in [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d["kind"] == "Pod"]:
        context = pod["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["spec"]["containers"]:
            own = container["securityContext"]
            assert own["allowPrivilegeEscalation"] is False
            assert own["readOnlyRootFilesystem"] is True
            assert own["capabilities"] == {"drop": ["ALL"]}
            assert security.refusal(pod, container) is None, container["name"]
        token = next(v for v in pod["spec"]["volumes"] if "secret" in v)
        access = security.secret_file_access(pod, token)
        assert access.mode & 0o007 == 0  # no one but the pod's group


def test_the_stand_in_refuses_an_unreadable_token_and_writes_modes_as_a_node(
    sandbox: Any, sandbox_only: Any, api_client: Any, namespace: str
) -> None:
    """On the sandbox: the pod a node would break never starts, its container status says
    why (CreateContainerConfigError); the readable one's token file has the node's mode
    (and, when the tests run as root, its owner root:fsGroup)."""
    import base64
    import os

    from kubernetes import client

    from pairwarden_testbed.localnode import LocalKubelet
    from pairwarden_testbed.waiting import eventually

    core = client.CoreV1Api(api_client)
    data = {"token": base64.b64encode(b"vm.secret").decode()}
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "vm-replication-token"}, "data": data}
    )
    sleeper = {"command": ["pairwarden-testbed", "voicemail", "--help"], "args": []}
    broken, _ = _pod({}, 0o400, sleeper)
    fine, _ = _pod({"fsGroup": 10001}, 0o400, sleeper)
    for name, pod in (("broken", broken), ("fine", fine)):
        pod["metadata"] = {"name": name}
        pod["spec"]["restartPolicy"] = "Never"
        core.create_namespaced_pod(namespace, pod)
    with LocalKubelet(str(sandbox.kubeconfig_path), namespace, links=False) as kubelet:

        def waiting() -> dict[str, Any]:
            status = core.read_namespaced_pod("broken", namespace).status
            state = status.container_statuses[0].state.waiting
            assert state.reason == "CreateContainerConfigError"
            return {"message": state.message}

        message = eventually(waiting, 60, "the refusal in the status", tolerate=(Exception,))
        assert "unreadable by uid 10001" in message["message"]

        def projected() -> Path | None:
            """The readable pod's token, once the stand-in has taken the pod up (it may
            refuse `broken` before it has seen `fine` at all)."""
            token = kubelet.pod_dir("fine") / "volumes" / "token" / "token"
            return token if token.exists() else None

        token = eventually(projected, 60, "the token projected", tolerate=(KeyError,))
        stat = token.stat()
        assert stat.st_mode & 0o777 == 0o440
        if os.geteuid() == 0:
            assert (stat.st_uid, stat.st_gid) == (0, 10001)
        assert not (kubelet.pod_dir("broken") / "agent.log").exists()  # never started
