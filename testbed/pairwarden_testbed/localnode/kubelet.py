"""kubelet stand-in: runs the containers of `pairwarden/...` pods as local processes.

Each pod gets its own loopback IP (written to status.podIP; `127.0.0.1` in its arguments and
env means that address, the pod's own loopback: podspec.on_pod_loopback), a work dir (emptyDir
volumes become directories in it, and mount paths in arguments are rewritten to them) and a
kubeconfig in $KUBECONFIG, as a real pod gets a service-account token; with links on, that
kubeconfig points through a per-pod `NetworkLink` that a test can cut. Crashed containers
restart with a short backoff (restartPolicy Always; a Job's pod with restartPolicy Never ends
Succeeded or Failed, its termination message read from terminationMessagePath); a deleted pod
gets SIGTERM, then SIGKILL after its grace period. `kill_pod` is an OS failure: every process
dies and nothing restarts (nor is the pod status touched, as a lost node writes nothing)
until `revive_pod`.

With `node=NAME` it is a node of a real control plane (hack/control-plane.sh): it registers
the Node and renews its Lease (localnode.realnode), runs only the pods the scheduler bound to it
(`spec.nodeName`), with the kubeconfig of the node identity.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pairwarden.kube import sync_api_client
from pairwarden_testbed.credentials import Credential, credentials, kubeconfig_as
from pairwarden_testbed.lifecycle import Service
from pairwarden_testbed.localnode import podspec, security
from pairwarden_testbed.localnode.link import NetworkLink
from pairwarden_testbed.localnode.realnode import NodeHeartbeat
from pairwarden_testbed.localnode.watcher import ResourceWatcher

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]
BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET_AFTER = 0.2, 5.0, 10.0
TERMINATION_LOG = "/dev/termination-log"  # the default terminationMessagePath


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_ip_prefix() -> str:
    """127.A.B. with A != 1 (127.1/16 holds the sandbox's clusterIPs): parallel sandboxes on
    one machine do not collide on pod addresses."""
    return f"127.{random.choice([a for a in range(2, 255)])}.{random.randrange(0, 256)}."


class _Container:
    def __init__(self, pod: _Pod, spec: Obj) -> None:
        self.pod = pod
        self.name = str(spec["name"])
        self.spec = spec
        self.image = str(spec.get("image", ""))
        mounts = podspec.mount_map(spec, pod.volumes)
        self.termination_log = pod.workdir / f"{self.name}.termination-log"
        mounts.append(
            (str(spec.get("terminationMessagePath") or TERMINATION_LOG), str(self.termination_log))
        )
        self.restart_policy = str(pod.obj["spec"].get("restartPolicy") or "Always")
        self.finished_at: str | None = None
        # Credentials as a kubelet mounts them: none for a container the pod keeps them from,
        # else its ServiceAccount's (credentials.credentials); the server checks them.
        credentials: dict[str, str] = {}
        if podspec.gets_api_credentials(pod.obj, spec):
            self.kubeconfig = pod.workdir / f"{self.name}.kubeconfig"
            pod.kubelet.write_pod_kubeconfig(
                self.kubeconfig, pod.link, pod.kubelet.credentials(pod.obj, self.name)
            )
            credentials = {"KUBECONFIG": str(self.kubeconfig)}
        self.env = podspec.environment(spec, pod.obj, pod.ip, mounts, os.environ, credentials)
        self.argv = [
            podspec.on_pod_loopback(a, pod.ip) for a in podspec.command_line(spec, mounts, self.env)
        ]
        self.log_path = pod.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.started_at: str | None = None
        self.last_exit: int | None = None
        self.last_run: tuple[str, str | None, str] | None = None  # containerID, started, ended
        self.waiting_reason = "ContainerCreating"
        # What a node would refuse (runAsNonRoot as root) or break (an unreadable Secret):
        # never started, with the reason, as a kubelet reports CreateContainerConfigError.
        self.refused = security.refusal(pod.obj, spec)
        self._thread = threading.Thread(
            target=self._supervise, name=f"{pod.name}/{self.name}", daemon=True
        )
        self._held: list[socket.socket] = []

    def hold_ports(self) -> None:
        """The pod's node is gone: its address must refuse nothing, as a lost node's answers
        nothing (a refusal comes only from a live kernel whose socket closed: the standby's
        probe takes two as proof of death, docs/protocol.md). Loopback addresses always
        answer, so each declared port is held bound here, never served: a UDP datagram is
        never read (silent), a TCP connection waits in a backlog nobody accepts."""
        for port in self.spec.get("ports") or []:
            udp = str(port.get("protocol") or "TCP").upper() == "UDP"
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.pod.ip, int(port["containerPort"])))
                if not udp:
                    sock.listen(64)
            except OSError as exc:
                log.warning("%s/%s: cannot hold port %s: %r", self.pod.name, self.name, port, exc)
                sock.close()
                continue
            self._held.append(sock)

    def release_ports(self) -> None:
        held, self._held = self._held, []
        for sock in held:
            sock.close()

    def start(self) -> None:
        self._thread.start()

    def signal(self, sig: int) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _supervise(self) -> None:
        if self.refused is not None:
            log.warning("%s/%s not started: %s", self.pod.name, self.name, self.refused)
            self.waiting_reason = "CreateContainerConfigError"
            self.pod.kubelet.mark_dirty(self.pod)
            return
        backoff = BACKOFF_START
        while not self.pod.stopping.is_set():
            if self.pod.node_down.is_set():
                self.pod.node_up.wait()
                continue
            began = time.monotonic()
            with open(self.log_path, "ab") as out:
                self.proc = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    cwd=self.pod.workdir,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self.started_at = _now()
            self.pod.kubelet.mark_dirty(self.pod)
            self.last_exit = self.proc.wait()
            if self.pod.node_down.is_set():
                self.hold_ports()
            elif (notice := self.pod.kubelet.death_notice) > 0:
                # A real kubelet learns of a death at its next PLEG relist (every 1 s, more
                # at load): until then the pod's status shows it running, nor is it restarted.
                self.pod.stopping.wait(notice)
            # What the real kubelet's lastState.terminated names: the container that ended
            # (its id) and when it ran; a reader tells one death from the next by them.
            self.last_run = (f"local://{self.pod.uid}/{self.name}/{self.proc.pid}",
                             self.started_at, _now())  # fmt: skip
            self.started_at = None
            if self.pod.stopping.is_set():
                break
            if self.pod.node_down.is_set():
                self.restarts += 1  # the node died; it starts again when the node is back
                continue
            if self.restart_policy == "Never" or (
                self.restart_policy == "OnFailure" and self.last_exit == 0
            ):
                self.finished_at = _now()  # done: the pod's phase follows from the exits
                self.pod.kubelet.mark_dirty(self.pod)
                break
            log.info("%s/%s exited %s; restarting", self.pod.name, self.name, self.last_exit)
            self.restarts += 1
            self.waiting_reason = "CrashLoopBackOff"
            self.pod.kubelet.mark_dirty(self.pod)
            if time.monotonic() - began > BACKOFF_RESET_AFTER:
                backoff = BACKOFF_START
            if self.pod.stopping.wait(backoff):
                break
            backoff = min(backoff * 2, BACKOFF_MAX)

    def status(self) -> dict[str, Any]:
        running = self.alive() and self.started_at is not None
        state: dict[str, Any]
        if running:
            state = {"running": {"startedAt": self.started_at}}
        elif self.finished_at is not None:
            state = {"terminated": self.terminated()}
        else:
            state = {"waiting": {"reason": self.waiting_reason}}
            if self.refused is not None:
                state["waiting"]["message"] = self.refused
        out: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": running,
            "started": running,
            "restartCount": self.restarts,
            "state": state,
        }
        if self.last_exit is not None and self.finished_at is None:
            ended: dict[str, Any] = {"exitCode": self.last_exit, "reason": "Error"}
            if self.last_run is not None:
                container, started, finished = self.last_run
                ended.update(containerID=container, startedAt=started, finishedAt=finished)
            out["lastState"] = {"terminated": ended}
        return out

    def terminated(self) -> dict[str, Any]:
        """The terminated state with the message the process left in its
        terminationMessagePath (what the operator reads of a finished Job's pod)."""
        exit_code = self.last_exit if self.last_exit is not None else -1
        message = podspec.termination_message(
            self.spec, self.termination_log, self.log_path, exit_code
        )
        return {
            "exitCode": self.last_exit,
            "reason": "Completed" if self.last_exit == 0 else "Error",
            "finishedAt": self.finished_at,
            **({"message": message} if message else {}),
        }


class _Pod:
    def __init__(self, kubelet: LocalKubelet, obj: Obj, ip: str, workdir: Path) -> None:
        meta = obj["metadata"]
        self.kubelet = kubelet
        self.obj = obj
        self.name = str(meta["name"])
        self.uid = str(meta.get("uid", ""))
        self.ip = ip
        self.workdir = workdir
        self.start_time = _now()
        self.stopping = threading.Event()
        self.node_down = threading.Event()
        self.node_up = threading.Event()
        self.volumes = podspec.volume_paths(obj, workdir, kubelet.host_root)
        for path in self.volumes.values():
            path.mkdir(parents=True, exist_ok=True)
        self.link = kubelet.make_link(self.name)
        self.containers = [_Container(self, c) for c in obj["spec"]["containers"]]

    def secret_access(self, volume: str) -> Callable[[str], security.FileAccess]:
        """Each key's mode and owner in the Secret volume `volume`, as a node leaves them."""
        spec = next(v for v in self.obj["spec"]["volumes"] if v["name"] == volume)
        return lambda key: security.secret_file_access(self.obj, spec, key)

    def start(self) -> None:
        for c in self.containers:
            c.start()

    def terminate(self, grace: float) -> None:
        self.stopping.set()
        self.node_up.set()
        for c in self.containers:
            c.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(c.alive() for c in self.containers) and time.monotonic() < deadline:
            time.sleep(0.02)
        for c in self.containers:
            c.signal(signal.SIGKILL)
        for c in self.containers:
            c.join(2)
            c.release_ports()
        if self.link is not None:
            self.link.close()

    def status(self) -> dict[str, Any]:
        statuses = [c.status() for c in self.containers]
        ready = "True" if all(s["ready"] for s in statuses) else "False"
        exits = [c.last_exit for c in self.containers if c.finished_at is not None]
        phase = "Running"
        if len(exits) == len(self.containers):  # restartPolicy Never/OnFailure, all done
            phase = "Succeeded" if all(e == 0 for e in exits) else "Failed"
        conditions = [
            {"type": t, "status": v, "lastTransitionTime": self.start_time}
            for t, v in (("PodScheduled", "True"), ("Initialized", "True"),
                         ("ContainersReady", ready), ("Ready", ready))
        ]  # fmt: skip
        return {
            "phase": phase,
            "podIP": self.ip, "podIPs": [{"ip": self.ip}],
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time, "conditions": conditions,
            "containerStatuses": statuses,
        }  # fmt: skip


SECRET_SYNC_SECONDS = 1.0


class LocalKubelet(Service):
    """`with LocalKubelet(kubeconfig, namespace) as kubelet: ...`

    kubeconfig: the sandbox's (the kubelet's own credentials; its pods get their own).
    links: give each pod a `NetworkLink` to the API server (`kubelet.link(pod).cut()`).
    ip_prefix: pods get `<prefix>2`, `<prefix>3`, ...; random 127.A.B. by default.
    """

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str],
        namespace: str,
        *,
        workdir: Path | None = None,
        ip_prefix: str | None = None,
        links: bool = True,
        node: str | None = None,
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.namespace = namespace
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="localnode-"))
        self.ip_prefix = ip_prefix or random_ip_prefix()
        self.host_root = self.workdir / "host"  # the node's "/" for hostPath volumes
        self._use_links = links
        self._next_ip = 2
        self._pods: dict[str, _Pod] = {}
        self._lock = threading.RLock()
        self._dirty: set[str] = set()
        self._wake = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._api = sync_api_client(self.kubeconfig)
        self._core = client.CoreV1Api(self._api)
        self._config = yaml.safe_load(Path(self.kubeconfig).read_text())
        self.node = node
        # Seconds from a container's death to its report (and restart): 0, at once; a test
        # sets a real kubelet's PLEG delay (0.5-1.4 s on 1.20 at load) to see who is first.
        self.death_notice = 0.0
        self._heartbeat = NodeHeartbeat(self._api, node) if node else None
        self._watcher = ResourceWatcher(
            self._api,
            namespace,
            "pods",
            self._on_pod,
            field_selector=f"spec.nodeName={node}" if node else None,
        )
        self._status_thread = threading.Thread(
            target=self._status_main, name="kubelet-status", daemon=True
        )
        self._secrets_thread = threading.Thread(
            target=self._secrets_main, name="kubelet-secrets", daemon=True
        )

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalKubelet:
        if self._heartbeat is not None:
            self._heartbeat.start()
        self._status_thread.start()
        self._secrets_thread.start()
        self._watcher.start()
        return self

    def stop(self, grace: float = 3.0) -> None:
        self._closing.set()
        self._watcher.stop()
        if self._heartbeat is not None:
            self._heartbeat.stop()
        with self._lock:
            pods = list(self._pods.values())
            self._pods.clear()
            self._wake.notify_all()
        threads = [threading.Thread(target=p.terminate, args=(grace,)) for p in pods]
        for t in threads:
            t.start()
        for t in threads:
            t.join(grace + 5)
        self._status_thread.join(2)
        self._secrets_thread.join(2)
        self._api.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- test hooks ----------------------------------------------------------------------

    def pod_ip(self, name: str) -> str | None:
        with self._lock:
            pod = self._pods.get(name)
            return pod.ip if pod else None

    def link(self, name: str) -> NetworkLink:
        """The pod's link to the API server: `kubelet.link("vm-primary").cut()`."""
        with self._lock:
            pod = self._pods.get(name)
        if pod is None or pod.link is None:
            raise KeyError(f"pod {name} is not running here or has no link")
        return pod.link

    def log_path(self, pod: str, container: str) -> Path:
        with self._lock:
            return self._pods[pod].workdir / f"{container}.log"

    def pod_dir(self, name: str) -> Path:
        with self._lock:
            return self._pods[name].workdir

    def running(self, name: str) -> bool:
        """All containers of the pod have a live process."""
        with self._lock:
            pod = self._pods.get(name)
        return pod is not None and all(c.alive() for c in pod.containers)

    def kill_pod(self, name: str, sig: int = signal.SIGKILL) -> None:
        """The pod's node goes away; nothing restarts until `revive_pod`.

        SIGKILL is an OS failure: every process dies at once and the node's network with them.
        SIGTERM is a clean shutdown: processes stop in their own time and may still reach the
        API meanwhile (an agent releases its Lease), so the link stays up."""
        with self._lock:
            pod = self._pods[name]
        pod.node_up.clear()
        pod.node_down.set()
        for c in pod.containers:
            c.signal(sig)
        if pod.link is not None and sig == signal.SIGKILL:
            pod.link.cut()

    def revive_pod(self, name: str) -> None:
        """The node is back: containers start again (counted as restarts)."""
        with self._lock:
            pod = self._pods[name]
        if pod.link is not None:
            pod.link.heal()
        for c in pod.containers:
            c.release_ports()
        pod.node_down.clear()
        pod.node_up.set()

    def kill_container(self, pod: str, container: str, sig: int = signal.SIGKILL) -> None:
        """A crash (or any signal) of one container; restartPolicy Always brings it back."""
        with self._lock:
            p = self._pods[pod]
        next(c for c in p.containers if c.name == container).signal(sig)

    # ---- pods ----------------------------------------------------------------------------

    def make_link(self, name: str) -> NetworkLink | None:
        if not self._use_links:
            return None
        target = urlsplit(self._server())
        return NetworkLink(target.hostname or "127.0.0.1", target.port or 443, name=f"link-{name}")

    def _server(self) -> str:
        cfg = self._config
        ctx_name = cfg.get("current-context")
        ctx = next((c["context"] for c in cfg["contexts"] if c["name"] == ctx_name), None)
        cluster_name = (ctx or cfg["contexts"][0]["context"])["cluster"]
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == cluster_name)
        return str(cluster["server"])

    def credentials(self, pod: Obj, container: str) -> Credential | None:
        """What the container acts as: credentials.credentials, read as this node."""
        namespace = str(pod["metadata"].get("namespace") or self.namespace)
        return credentials(self._core, namespace, pod.get("spec") or {}, container, pod=pod)

    def write_pod_kubeconfig(
        self, path: Path, link: NetworkLink | None, credential: Credential | None = None
    ) -> None:
        """The kubelet's kubeconfig acting as the container's credential (its token, and the
        CA it was given, if any); without one, as nobody (the server answers 401/403). The
        server is replaced by the pod's link if it has one; the link listens on the API
        server's own host, so TLS names still match."""
        cfg = kubeconfig_as(self._config, credential)
        if link is not None:
            for cluster in cfg["clusters"]:
                url = urlsplit(cluster["cluster"]["server"])
                netloc = f"{url.hostname}:{link.port}"
                cluster["cluster"]["server"] = urlunsplit(url._replace(netloc=netloc))
        path.write_text(yaml.safe_dump(cfg))

    def _on_pod(self, kind: str, obj: dict[str, Any]) -> None:
        if self._closing.is_set() or not podspec.is_local_pod(obj):
            return
        if (obj.get("spec") or {}).get("nodeName") not in (None, "", self.node):
            return  # bound to another node (on the sandbox: the Job runner's pods)
        meta = obj["metadata"]
        name, uid = meta["name"], meta.get("uid", "")
        with self._lock:
            known = self._pods.get(name)
        if known is not None and (kind == "DELETED" or known.uid != uid):
            self._forget(known, self._grace(known.obj))
            known = None
        if kind == "DELETED":
            return
        if meta.get("deletionTimestamp"):
            if known is not None:
                grace = meta.get("deletionGracePeriodSeconds")
                self._forget(known, float(grace) if grace is not None else self._grace(obj),
                             finalize=True)  # fmt: skip
            return
        if known is None:
            self._admit(obj)
        else:
            known.obj = obj

    def _admit(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            ip = f"{self.ip_prefix}{self._next_ip}"
            self._next_ip += 1
        workdir = self.workdir / f"{name}-{str(obj['metadata'].get('uid', ''))[:8]}"
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            pod = _Pod(self, obj, ip, workdir)
        except (ValueError, KeyError) as exc:
            log.warning("cannot run pod %s: %s", name, exc)
            return
        with self._lock:
            self._pods[name] = pod
        log.info("pod %s: starting on %s", name, ip)
        self._project_secrets(pod)
        pod.start()
        self.mark_dirty(pod)

    @staticmethod
    def _grace(obj: Obj) -> float:
        value = (obj.get("spec") or {}).get("terminationGracePeriodSeconds")
        return float(value) if isinstance(value, int | float) else 30.0

    def _forget(self, pod: _Pod, grace: float, finalize: bool = False) -> None:
        with self._lock:
            if self._pods.get(pod.name) is pod:
                del self._pods[pod.name]

        def run() -> None:
            pod.terminate(grace)
            if finalize:  # a real kubelet removes the object once its containers are gone
                with contextlib.suppress(ApiException):
                    self._core.delete_namespaced_pod(
                        pod.name, self.namespace, grace_period_seconds=0,
                        body=client.V1DeleteOptions(
                            grace_period_seconds=0,
                            preconditions=client.V1Preconditions(uid=pod.uid),
                        ),
                    )  # fmt: skip

        threading.Thread(target=run, name=f"terminate-{pod.name}", daemon=True).start()

    # ---- status --------------------------------------------------------------------------

    def mark_dirty(self, pod: _Pod) -> None:
        with self._lock:
            self._dirty.add(pod.name)
            self._wake.notify_all()

    def _status_main(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                while not self._dirty and not self._closing.is_set():
                    self._wake.wait(1.0)
                names, self._dirty = self._dirty, set()
                pods = [self._pods[n] for n in names if n in self._pods]
            for pod in pods:
                if not pod.node_down.is_set() and not self._write_status(pod):
                    self.mark_dirty(pod)  # again until it lands, as the kubelet's status manager

    def _secrets_main(self) -> None:
        """Keep Secret volumes projected, as the kubelet does: a Secret created or changed after
        the pod started shows up in its files within a second (the real kubelet: a minute)."""
        while not self._closing.wait(SECRET_SYNC_SECONDS):
            with self._lock:
                pods = list(self._pods.values())
            for pod in pods:
                self._project_secrets(pod)

    def _project_secrets(self, pod: _Pod) -> None:
        """Write the pod's Secret volumes as they are now (before its containers start, as a
        kubelet mounts volumes first; then again on each sync)."""
        for volume, secret in podspec.secret_volumes(pod.obj):
            try:
                data = self._core.read_namespaced_secret(
                    secret, self.namespace, _request_timeout=5
                ).data
            except ApiException as exc:
                if exc.status != 404:  # absent: an optional volume stays empty
                    log.warning("secret %s for pod %s: %s", secret, pod.name, exc.status)
                continue
            podspec.write_secret(pod.volumes[volume], data, pod.secret_access(volume))

    def _write_status(self, pod: _Pod) -> bool:
        """Write the pod's status as it is now; False when the API server refused every try
        (the status thread tries again: a real kubelet's status manager keeps a status until
        it lands, so a pod whose container restarted during an outage turns Ready after it.
        Dropped, it stayed NotReady for good and out of its Service's endpoints: `make chaos`
        seed 553900, a call through the Service unanswered 42 s after every fault ended)."""
        for _ in range(5):
            try:
                resp = self._core.read_namespaced_pod(
                    pod.name, self.namespace, _preload_content=False, _request_timeout=5
                )
                obj = json.loads(resp.data)
                if obj["metadata"].get("uid", "") != pod.uid:
                    return True  # another pod of the name: not ours to write
                obj["status"] = pod.status()
                self._core.replace_namespaced_pod_status(
                    pod.name, self.namespace, obj, _request_timeout=5
                )
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return True  # deleted: nothing to write
                if exc.status != 409:
                    log.warning("status of pod %s: %s %s", pod.name, exc.status, exc.reason)
                    time.sleep(0.2)
            except Exception as exc:  # the status thread must survive API trouble
                log.warning("status of pod %s: %r", pod.name, exc)
                time.sleep(0.2)
        return False
