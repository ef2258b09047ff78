"""What a real kubelet makes of a pod's securityContext and Secret volume modes (pure), so the
kubelet stand-in fails a pod the way a node would, not silently run what a node would break.

Local pods run as this machine's user, so the stand-in cannot switch users; instead it works
out, per container, the identity a node would run it as (runAsUser/runAsGroup, container over
pod, else the image's USER) and the owner and mode a node gives each Secret file:

- owner root; group fsGroup when set, else root;
- mode: the item's `mode`, else `defaultMode` (the API server's default 0644); with an fsGroup
  the kubelet ORs in 0440 (SetVolumeOwnership's read-only mask: kubernetes/kubernetes#57923,
  still open), so `defaultMode: 0400` with `fsGroup` ends 0440.

A container whose identity could not read a Secret file it mounts would fail on a node (the
agent's token reads as missing for ever); a container with runAsNonRoot and uid 0 is refused
by the kubelet (CreateContainerConfigError). The stand-in refuses both with the reason, and
writes Secret files with the mode a node would (and, when it runs as root, the owner).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]
SECRET_DEFAULT_MODE = 0o644  # SecretVolumeSource.defaultMode's API default
READ_ONLY_MASK = 0o440  # OR-ed in by the kubelet when fsGroup is set
# images/Dockerfile: `USER 10001:10001` in every pairwarden image.
IMAGE_USER = (10001, 10001)


@dataclass(frozen=True)
class FileAccess:
    uid: int
    gid: int
    mode: int


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: frozenset[int]


def _context(pod: Obj, container: Obj, key: str) -> Any:
    own = (container.get("securityContext") or {}).get(key)
    return (
        own if own is not None else ((pod.get("spec") or {}).get("securityContext") or {}).get(key)
    )


def identity(pod: Obj, container: Obj) -> Identity:
    """The uid, gid and supplementary groups a node runs the container's process as."""
    uid = _context(pod, container, "runAsUser")
    gid = _context(pod, container, "runAsGroup")
    uid = IMAGE_USER[0] if uid is None else int(uid)
    gid = IMAGE_USER[1] if gid is None else int(gid)
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    groups = {gid, *(int(g) for g in pod_context.get("supplementalGroups") or [])}
    if pod_context.get("fsGroup") is not None:
        groups.add(int(pod_context["fsGroup"]))
    return Identity(uid, gid, frozenset(groups))


def secret_file_access(pod: Obj, volume: Obj, key: str | None = None) -> FileAccess:
    """Owner and mode of the file `key` of a Secret volume (None: a key without an item of
    its own), as the kubelet leaves it."""
    secret = volume.get("secret") or {}
    mode = secret.get("defaultMode")
    for item in secret.get("items") or []:
        if item.get("key") == key and item.get("mode") is not None:
            mode = item["mode"]
    mode = SECRET_DEFAULT_MODE if mode is None else int(mode)
    fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    if fs_group is None:
        return FileAccess(0, 0, mode)
    return FileAccess(0, int(fs_group), mode | READ_ONLY_MASK)


def may_read(access: FileAccess, who: Identity) -> bool:
    """Unix read permission (root reads everything: the image users here are not root)."""
    if who.uid == 0:
        return True
    if who.uid == access.uid:
        return bool(access.mode & 0o400)
    if access.gid in who.groups:
        return bool(access.mode & 0o040)
    return bool(access.mode & 0o004)


def refusal(pod: Obj, container: Obj) -> str | None:
    """Why a node would not run this container usefully, or None. Judged from the spec alone
    (a Secret may appear after the pod starts): every key an item names, and any other key
    at the volume's defaultMode."""
    who = identity(pod, container)
    if _context(pod, container, "runAsNonRoot") and who.uid == 0:
        return "container has runAsNonRoot and image will run as root"
    volumes = {str(v["name"]): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(str(mount.get("name")))
        if volume is None or "secret" not in volume:
            continue
        keys: list[str | None] = [str(i["key"]) for i in volume["secret"].get("items") or []]
        for key in keys or [None]:
            access = secret_file_access(pod, volume, key)
            if not may_read(access, who):
                return (
                    f"{mount['mountPath']}/{key or '*'} would be {access.mode:04o} owned by "
                    f"{access.uid}:{access.gid}, unreadable by uid {who.uid} (groups "
                    f"{sorted(who.groups)}): set fsGroup, or a defaultMode it can read"
                )
    return None
