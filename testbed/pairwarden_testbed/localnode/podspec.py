"""Pure translation of a Pod manifest into local processes: which pods are ours, the command
line, the environment (with downward-API fields), volume paths mapped into a work dir, and
the termination message a kubelet would report."""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pairwarden_testbed.localnode.security import FileAccess

IMAGE_PREFIX = "pairwarden/"
# Each image's ENTRYPOINT (images/Dockerfile): the product's command, but the reference
# voicemail process lives in the test rig and has the rig's command.
ENTRYPOINTS = {"pairwarden/voicemail": "pairwarden-testbed"}
DEFAULT_ENTRYPOINT = "pairwarden"
# A command of ours runs as this machine's interpreter with the command's module.
COMMAND_MODULES = {"pairwarden": "pairwarden.cli", "pairwarden-testbed": "pairwarden_testbed.cli"}
# What a real container would not inherit, but a local process needs to find Python.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")

Obj = Mapping[str, Any]
# The kubelet's bounds on state.terminated.message: the first 4096 bytes of the container's
# terminationMessagePath; with FallbackToLogsOnError, for a failed container that wrote none,
# the last 80 lines of its log, at most 2048 bytes (kubelet's kuberuntime_container.go).
MESSAGE_BYTES, FALLBACK_LINES, FALLBACK_BYTES = 4096, 80, 2048


def termination_message(container: Obj, message_file: Path, log_file: Path, exit_code: int) -> str:
    """state.terminated.message as the kubelet fills it (pure but for reading the files)."""
    try:
        with open(message_file, "rb") as f:
            message = f.read(MESSAGE_BYTES)
    except OSError:
        message = b""
    fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    if not message and fallback and exit_code != 0:
        try:
            lines = log_file.read_bytes().splitlines(keepends=True)[-FALLBACK_LINES:]
        except OSError:
            lines = []
        message = b"".join(lines)[-FALLBACK_BYTES:]
    return message.decode(errors="replace")


def is_local_pod(pod: Obj) -> bool:
    """Ours if every container runs a `pairwarden/...` image (any tag)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    return bool(containers) and all(
        str(c.get("image", "")).startswith(IMAGE_PREFIX) for c in containers
    )


SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"  # where a pod's API token is


def gets_api_credentials(pod: Obj, container: Obj) -> bool:
    """Whether a kubelet would give this container an API token: every container unless the
    pod says `automountServiceAccountToken: false`, then only one that mounts a volume at
    SA_MOUNT itself (the agent's projected token; the voicemail beside it gets none)."""
    if (pod.get("spec") or {}).get("automountServiceAccountToken") is not False:
        return True
    mounts = container.get("volumeMounts") or []
    return any(str(m.get("mountPath", "")).rstrip("/") == SA_MOUNT for m in mounts)


def volume_paths(pod: Obj, workdir: Path, host_root: Path | None = None) -> dict[str, Path]:
    """emptyDir and Secret volumes become directories under the pod's work dir; hostPath
    volumes, under `host_root` (the node's "/"), so every pod on the node shares them (the
    voicemail pair's message store): name -> path."""
    out: dict[str, Path] = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if "emptyDir" in vol or "secret" in vol:
            out[str(vol["name"])] = workdir / "volumes" / str(vol["name"])
        elif "hostPath" in vol and host_root is not None:
            out[str(vol["name"])] = host_root / str(vol["hostPath"]["path"]).lstrip("/")
    return out


def secret_volumes(pod: Obj) -> list[tuple[str, str]]:
    """(volume name, Secret name) for each Secret volume of the pod."""
    return [
        (str(vol["name"]), str(vol["secret"]["secretName"]))
        for vol in (pod.get("spec") or {}).get("volumes") or []
        if "secret" in vol
    ]


def write_secret(
    path: Path, data: Mapping[str, str] | None, access: Callable[[str], FileAccess] | None = None
) -> None:
    """Project a Secret's base64 `data` into files, each replaced atomically (as the kubelet's
    atomic writer does), so a reader never sees half a token. `access`: each key's mode and
    owner as a node leaves them (security.secret_file_access); owners only when this process
    may set them (root)."""
    path.mkdir(parents=True, exist_ok=True)
    for key, value in (data or {}).items():
        staged = path / f".{key}.tmp"
        staged.write_bytes(base64.b64decode(value))
        wanted = access(key) if access is not None else None
        staged.chmod(wanted.mode if wanted is not None else 0o600)
        if wanted is not None and os.geteuid() == 0:
            os.chown(staged, wanted.uid, wanted.gid)
        os.replace(staged, path / key)


def mount_map(container: Obj, volumes: Mapping[str, Path]) -> list[tuple[str, str]]:
    """(mountPath, host path) pairs, longest mount path first so nested mounts win."""
    pairs = [
        (str(m["mountPath"]).rstrip("/"), str(volumes[m["name"]]))
        for m in container.get("volumeMounts") or []
        if m.get("name") in volumes
    ]
    return sorted(pairs, key=lambda p: -len(p[0]))


def translate_path(value: str, mounts: list[tuple[str, str]]) -> str:
    """Rewrite a mount path in an argument (`/data/x` or `--dir=/data/x`) to the host dir."""
    if value.startswith("-") and "=" in value:
        flag, _, rest = value.partition("=")
        return f"{flag}={translate_path(rest, mounts)}"
    for mount, host in mounts:
        if value == mount or value.startswith(mount + "/"):
            return host + value[len(mount) :]
    return value


def command_line(
    container: Obj, mounts: list[tuple[str, str]], env: Mapping[str, str] | None = None
) -> list[str]:
    """The process to run: command + args with `$(VAR)` expanded from the container's
    environment (as the kubelet does), mount paths rewritten to this machine's directories."""
    # No command: the image's ENTRYPOINT.
    command = container.get("command") or image_entrypoint(str(container.get("image", "")))
    argv = [translate_path(expand(str(a), env or {}), mounts)
            for a in command + (container.get("args") or [])]  # fmt: skip
    if not argv:
        raise ValueError(f"container {container.get('name')} has no command")
    if argv[0] in COMMAND_MODULES:  # this machine's interpreter: never rewritten by a mount
        argv = [sys.executable, "-m", COMMAND_MODULES[argv[0]], *argv[1:]]
    return argv


def image_entrypoint(image: str) -> list[str]:
    """The ENTRYPOINT of one of our images (any tag), or nothing for a foreign image."""
    if not image.startswith(IMAGE_PREFIX):
        return []
    return [ENTRYPOINTS.get(image.rsplit(":", 1)[0], DEFAULT_ENTRYPOINT)]


_LOOPBACK = re.compile(r"(?<![\d.])127\.0\.0\.1(?![\d])")


def on_pod_loopback(value: str, pod_ip: str) -> str:
    """`127.0.0.1` in a container's arguments or env means the pod's own loopback, shared by
    its containers only (one network namespace per pod). Local pods share this machine's
    loopback, so each pod's own 127.x address stands in for it."""
    return _LOOPBACK.sub(pod_ip, value)


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined one is left
    as written, and `$$` escapes a dollar."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(one, value)


def field_ref(pod: Obj, path: str, pod_ip: str) -> str:
    meta = pod.get("metadata") or {}
    values = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName") or "localnode",
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName") or "default",
        "status.podIP": pod_ip,
        "status.hostIP": "127.0.0.1",
    }
    if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
        section, _, key = path.partition("['")
        return str((meta.get(section.split(".")[1]) or {}).get(key.rstrip("']"), ""))
    return str(values.get(path, ""))


def environment(
    container: Obj,
    pod: Obj,
    pod_ip: str,
    mounts: list[tuple[str, str]],
    base: Mapping[str, str],
    extra: Mapping[str, str],
) -> dict[str, str]:
    env = {k: base[k] for k in INHERITED_ENV if k in base}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    for item in container.get("env") or []:
        name = str(item["name"])
        if "value" in item:
            env[name] = on_pod_loopback(translate_path(str(item["value"]), mounts), pod_ip)
        elif ref := (item.get("valueFrom") or {}).get("fieldRef"):
            env[name] = field_ref(pod, str(ref.get("fieldPath", "")), pod_ip)
    return env
