"""Member pods carry labels naming their pair, member and role (the Service selects on them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from pairwarden.controller.client import MERGE_PATCH
from pairwarden.kube import absent_as_none
from pairwarden.protocol import member_labels

labels_for = member_labels
FROM_CACHE = "0"  # a list's resourceVersion: any version the API server's watch cache holds
ENDED_PHASES = frozenset({"Failed", "Succeeded"})  # every container ended for good


@dataclass(frozen=True)
class Resolution:
    """The pod a member names, as read: `problem` says why it names no single running pod
    (the field is named, for the condition and the Event)."""

    name: str | None
    running: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None
    exists: bool = True  # False: the pod named by podName is not there at all
    ip: str | None = None  # status.podIP (None: none yet), for a claim of the peer's probe


def _ip(pod: Any) -> str | None:
    return str(pod.status.pod_ip) if pod.status and pod.status.pod_ip else None


def _running(pod: Any) -> bool:
    phase = pod.status.phase if pod.status else None
    return phase == "Running" and pod.metadata.deletion_timestamp is None


async def resolve_member(
    api: client.ApiClient,
    namespace: str,
    field_path: str,
    pod_name: str | None,
    selector: dict[str, str] | None,
) -> Resolution:
    """Read the member's pod: by name (absent or not running is the pod being gone, which the
    engine fails over on), or the one running pod its selector matches (several is an error
    in the spec, named by `field_path`)."""
    core = client.CoreV1Api(api)
    if pod_name:
        pod = await absent_as_none(core.read_namespaced_pod(pod_name, namespace))
        if pod is None:
            return Resolution(pod_name, exists=False)
        return Resolution(pod_name, _running(pod), dict(pod.metadata.labels or {}), ip=_ip(pod))
    if not selector:
        return Resolution(None, problem=f"{field_path}: names no pod")
    pods = (await core.list_namespaced_pod(namespace, label_selector=selector_text(selector))).items
    running = sorted((p for p in pods if _running(p)), key=lambda p: str(p.metadata.name))
    if len(running) > 1:
        names = ", ".join(str(p.metadata.name) for p in running[:5])
        return Resolution(
            None, problem=f"{field_path}.selector matches {len(running)} running pods ({names})"
        )
    if running:
        pod = running[0]
        name = str(pod.metadata.name)
        return Resolution(name, True, dict(pod.metadata.labels or {}), ip=_ip(pod))
    return Resolution(None)


async def selected(
    api: client.ApiClient, namespace: str, selector: Mapping[str, str]
) -> tuple[str, ...]:
    """The running pods a Service's selector matches (what kube-proxy would route to).

    Read with resourceVersion "0", from the API server's watch cache: every step of every pair
    makes this list, and without it kube-apiserver reads and decodes every pod of the namespace
    from etcd to filter them (a cost of pairs x pods, quadratic in the pairs of a namespace).
    The cache may lag etcd by a moment; a stale answer is corrected at the next look, and the
    reads that decide a failover (the member pods by name, the Leases) stay fresh."""
    if not selector:
        return ()
    found = await client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=selector_text(selector), resource_version=FROM_CACHE
    )
    return tuple(sorted(str(p.metadata.name) for p in found.items if _running(p)))


def selector_text(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


async def label(
    api: client.ApiClient, namespace: str, pod: str, pair: str, member: str, active: bool
) -> bool:
    """Set the labels when they differ; False when the pod is absent or already labelled."""
    core = client.CoreV1Api(api)
    found = await absent_as_none(core.read_namespaced_pod(pod, namespace))
    if found is None:
        return False
    current = found.metadata.labels or {}
    wanted = labels_for(pair, member, active)
    if all(current.get(k) == v for k, v in wanted.items()):
        return False
    await core.patch_namespaced_pod(
        pod, namespace, {"metadata": {"labels": wanted}}, _content_type=MERGE_PATCH
    )
    return True


async def ip(api: client.ApiClient, namespace: str, pod: str | None) -> str | None:
    """The pod's IP, or None when it has none yet (or is gone)."""
    if not pod:
        return None
    found = await absent_as_none(client.CoreV1Api(api).read_namespaced_pod(pod, namespace))
    return None if found is None else _ip(found)


@dataclass(frozen=True)
class PodSighting:
    """A member pod as the pod watch last saw it (controller.podwatch): what the kubelet says
    of its containers, and when each was last seen dying, on the operator's monotonic clock.

    A death is told by a terminated state not counted before, or by a restartCount that grew
    (the kubelet restarted it: it may be running again by the time we look, its termination
    then in lastState). `counted` keeps, per container, the termination last counted
    (containerID@finishedAt), so the kubelet's two reports of one death (terminated, then
    restarted with it as lastState) count once."""

    name: str
    uid: str
    containers: tuple[str, ...] = ()
    restarts: Mapping[str, int] = field(default_factory=dict)
    counted: Mapping[str, str] = field(default_factory=dict)
    deaths: Mapping[str, float] = field(default_factory=dict)
    gone: bool = False  # deleted, being deleted, or its phase ended (Failed, Succeeded)
    running: bool = False  # its phase Running and not being deleted (as `_running`)
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None  # status.podIP: a read stands for it too (`watched`, the probe's claim)

    def container_deaths(self) -> tuple[float | None, ...]:
        """Per container, in the pod's order: when it was last seen dying (the engine's
        MemberObservation.container_deaths)."""
        return tuple(self.deaths.get(c) for c in self.containers)


def sight_pod(
    before: PodSighting | None, pod: Mapping[str, Any], now: float, deleted: bool = False
) -> tuple[PodSighting, bool]:
    """Take one sighting of a member pod (a watch event, a listing); True when it is news the
    pair must judge at once: a container died, or the pod went. A container merely not Ready
    (a readiness blip) is no news. The first sighting of a pod (a new uid, an operator start)
    is a baseline: deaths before it are history, and silence (W) covers them."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    uid = str(meta.get("uid") or "")
    statuses = [s for s in status.get("containerStatuses") or [] if s.get("name")]
    gone = deleted or bool(meta.get("deletionTimestamp")) or status.get("phase") in ENDED_PHASES
    same = before is not None and before.uid == uid
    old = before if before is not None and same else PodSighting("", uid)
    restarts: dict[str, int] = {}
    counted, deaths = dict(old.counted), dict(old.deaths)
    for container in statuses:
        name = str(container["name"])
        restarts[name] = int(container.get("restartCount") or 0)
        ended = (container.get("state") or {}).get("terminated")
        last = (container.get("lastState") or {}).get("terminated")
        if ended is not None:
            death = _termination(ended)
            new = death != old.counted.get(name)
        else:
            death = _termination(last) if last is not None else ""
            grew = restarts[name] > old.restarts.get(name, restarts[name])
            new = grew and (not death or death != old.counted.get(name))
        if new and same:
            counted[name], deaths[name] = death, now
        elif new:  # the baseline: what ended before we looked is history
            counted[name] = death
    sighting = PodSighting(
        name=str(meta.get("name") or ""),
        uid=uid,
        containers=tuple(restarts),
        restarts=restarts,
        counted=counted,
        deaths=deaths,
        gone=gone,
        running=not gone and status.get("phase") == "Running",
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        ip=str(status["podIP"]) if status.get("podIP") else None,
    )
    return sighting, deaths != old.deaths or (gone and not old.gone)


def watched(sighting: PodSighting | None, pod_name: str) -> Resolution | None:
    """The member's pod as the pod watch holds it, when that may stand for a read: the pod
    the spec names, running, not gone. Anything else (never watched, another pod, gone,
    pending, failed) is read: the rare case, and the one a failover decides on. A resync
    read both pods by name every 30 s, 0.067 of the 0.133 reads/s each idle pair cost
    kube-apiserver (docs/performance.md); the pod watch already delivers every change of
    a labelled member pod, and a pod that stops matching it (its labels removed) is
    delivered as deleted, so gone."""
    if sighting is None or sighting.name != pod_name or sighting.gone or not sighting.running:
        return None
    return Resolution(pod_name, True, dict(sighting.labels), ip=sighting.ip)


def _termination(state: Mapping[str, Any]) -> str:
    """One termination's identity: the real kubelet names its container and end time (the
    sandbox's stand-in may name neither: then only a restartCount that grew tells a death)."""
    container, finished = state.get("containerID") or "", state.get("finishedAt") or ""
    return f"{container}@{finished}" if container or finished else ""
