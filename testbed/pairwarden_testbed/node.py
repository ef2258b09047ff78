"""A real Kubernetes node beside the real control plane (issue 19): containerd 1.6, runc and
the CNI plugins from Debian's packages, kubelet and kube-proxy v1.20.2 built by
`hack/control-plane.sh build`.

    cp = ControlPlane(Path("/tmp/k8s")).up()
    node = Node(Path("/tmp/k8s")).up()      # returns once the Node is Ready and untainted
    node.containerd_socket                  # where hack/images.sh load imports images
    node.down()                             # pods, containerd, bridge, iptables rules: gone

Everything of the node lives in DIR/node (DIR is the control plane's directory): containerd's
root, state and socket, the CNI configuration and IPAM state, the kubelet's root and
certificates, logs and pids. One node per machine: it owns the bridge `pw0`
(10.244.0.1/24, the pod network), a route of the service range to that bridge (so a ClusterIP
that no rule rewrites goes nowhere, never off the machine), and the iptables chains of
kube-proxy and the kubelet. `down` removes all of it, as far as the kernel lets it.

How it is set up, and why:
- containerd with a config of its own: CRI `sandbox_image` is the locally built pause image
  (hack/images.sh pause); `restrict_oom_score_adj = true` is essential here: this machine does
  not let runc set the pause container's oom_score_adj of -998, and without it every pod
  sandbox fails with `runc create failed: ... can't get final child's PID from pipe: EOF`.
  CNI: bin_dir /usr/lib/cni (Debian's containernetworking-plugins), a conflist of bridge +
  host-local + portmap; containerd's CRI brings up each pod's `lo` with the loopback plugin
  from the same bin_dir. Images come only from `ctr images import` (hack/images.sh load):
  every well-known registry is mapped to a closed loopback port, so a pull fails at once and
  never leaves the machine (pods use imagePullPolicy Never or IfNotPresent).
- kubelet: remote runtime on containerd's socket, cgroupfs driver, no QoS cgroups and no
  node-allocatable enforcement, swap allowed, its own ports, node IP = the bridge's 10.244.0.1,
  credentials `system:node:pairwarden-node` (the control plane's node kubeconfig). The
  node-lifecycle controller is off in the control plane, so the `node.kubernetes.io/not-ready`
  taint put on at registration is lifted here once the node is Ready.
- kube-proxy --proxy-mode=iptables with the control plane's kube-proxy kubeconfig: a
  Service's ClusterIP routes to its pods from the host and from pods; when a UDP endpoint
  leaves, kube-proxy deletes the conntrack entries that still point at it (the `conntrack`
  tool), so a caller on one fixed source port reaches the new pod.
- Pods reach the API server through the `kubernetes` Service (10.96.0.1:443): the API server
  listens on 127.0.0.1 only and publishes no endpoint for a loopback address, so a rule of
  this node DNATs that address to it; `route_localnet` on the bridge lets a pod's packet go
  to 127.0.0.1.

Standard library only: `hack/node.sh` runs this with any python3.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pairwarden_testbed import processes
from pairwarden_testbed.controlplane import (
    NODE_NAME,
    ControlPlane,
    ControlPlaneError,
    bin_dir,
    free_port,
)
from pairwarden_testbed.controlplane import unavailable as control_plane_unavailable
from pairwarden_testbed.processes import save_state, started_here

REPO = Path(__file__).resolve().parents[2]
IMAGES_SCRIPT = REPO / "hack" / "images.sh"
BRIDGE = "pw0"
POD_CIDR = "10.244.0.0/24"
BRIDGE_IP = "10.244.0.1"
CLUSTER_CIDR = "10.244.0.0/16"
PAUSE_IMAGE = "docker.io/pairwarden/pause:3.2"
CNI_BIN = Path("/usr/lib/cni")
# Where a 1.20 kubelet writes pods' logs (its constants, not configurable).
POD_LOGS = Path("/var/log/pods")
CONTAINER_LOGS = Path("/var/log/containers")
# Started in this order, stopped in the reverse one.
COMPONENTS = ("containerd", "kubelet", "kube-proxy")
# Debian packages the node needs, by the command that shows each is there.
PACKAGES = {
    "containerd": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "ctr": "containerd",
    "ip": "iproute2",
}
LOCK = Path("/run/pairwarden-node.owner")
REGISTRIES = ("docker.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io", "quay.io", "ghcr.io")
NO_REGISTRY = "http://127.0.0.1:9"
# Put on by the node-lifecycle controller or at registration; lifted by `up` (that
# controller does not run in the control plane).
LIFECYCLE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


class NodeError(ControlPlaneError):
    """A step of starting or stopping the node failed; the message says which."""


def missing() -> list[str]:
    """What `up` lacks: Debian packages (by package name), kubelet/kube-proxy binaries."""
    lacking = sorted({pkg for cmd, pkg in PACKAGES.items() if shutil.which(cmd) is None})
    if not (CNI_BIN / "bridge").exists():
        lacking.append("containernetworking-plugins")
    lacking += [b for b in ("kubelet", "kube-proxy") if not os.access(bin_dir() / b, os.X_OK)]
    return lacking


def unavailable() -> str | None:
    """Why a node cannot run here (None when it can): for tests to skip with."""
    if os.environ.get("PAIRWARDEN_REAL_NODE") == "0":
        return "real node disabled by PAIRWARDEN_REAL_NODE=0"
    if sys.platform != "linux":
        return "a real node needs Linux"
    if os.geteuid() != 0:
        return "a real node needs root (containerd, runc, iptables, network namespaces)"
    if not Path("/proc/sys/net/bridge").exists():
        return "no bridge netfilter (br_netfilter) in this kernel: kube-proxy cannot route pods"
    lacking = missing()
    if lacking:
        return f"real node not available: missing {', '.join(lacking)} (hack/node.sh installs them)"
    return None


def install_packages() -> None:
    """apt-get install what `missing()` names among Debian's packages (root only)."""
    pkgs = [p for p in missing() if p not in ("kubelet", "kube-proxy")]
    if not pkgs:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise NodeError(f"missing {', '.join(pkgs)}: apt-get install them, as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *pkgs]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stdout.strip().splitlines()[-5:] + proc.stderr.strip().splitlines())
        raise NodeError(f"apt-get install {' '.join(pkgs)} failed (apt-get update first?): {tail}")


def build_images(*targets: str) -> None:
    """Build the project's images (hack/images.sh build: cached by content, so a warm call
    takes seconds) and the pause image; the OCI archives `Node.load_images` imports."""
    _images_script("build", *targets)


def images_cache() -> Path:
    """hack/images.sh's cache (the parent of its archives: PAIRWARDEN_IMAGES_CACHE or
    ~/.cache/pairwarden/images)."""
    proc = subprocess.run(["bash", str(IMAGES_SCRIPT), "archives"], capture_output=True, text=True)
    return Path(proc.stdout.strip()).parent


def images_build_failure() -> str | None:
    """Why the last `prepare_images` could not build the images (None when it did, or never
    ran): the reason tests/realnode's skip names."""
    with contextlib.suppress(OSError):
        return (images_cache() / "build-failed").read_text().strip() or None
    return None


def cannot_run() -> str | None:
    """Why a node and its control plane cannot run here (None when they can), after
    installing the Debian packages they lack where root can (as `make tools` installs sipp)."""
    if os.environ.get("PAIRWARDEN_REAL_NODE") != "0" and os.geteuid() == 0:
        with contextlib.suppress(NodeError):  # then unavailable() names what lacks
            install_packages()
    return unavailable() or control_plane_unavailable()


def prepare_images() -> float:
    """`make test`'s step before the tests (`hack/node.sh images`): the project's images built
    for the tree as it is, where a node can run here, so that tests/realnode runs from a
    fresh clone rather than skipping whenever operator/ or testbed/ changed. Seconds spent
    (1-2 warm; one to three minutes after a code change; tens of minutes cold). Raises
    NodeError naming why not; an image build's failure is also kept (images_build_failure)
    for the tests' skip, since make goes on without the images."""
    reason = cannot_run()
    if reason:
        raise NodeError(f"{reason} (tests/realnode skips for the same reason)")
    failed = images_cache() / "build-failed"
    t0 = time.monotonic()
    try:
        build_images()
    except NodeError as error:
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(f"{error}\n")
        raise
    failed.unlink(missing_ok=True)
    return time.monotonic() - t0


def start(directory: Path, images: Sequence[str] = ()) -> Node:
    """A control plane and a node in `directory`, the project's images (built already:
    prepare_images, build_images) loaded: what tests/realnode and bench/failover.py's node
    backend run on. `images`: which (Node.load_images; tests/realnode loads a release's
    archives). Reuses what already runs there. A step that fails stops what was started
    and raises ControlPlaneError (or NodeError) naming it."""
    node = Node(directory)
    try:
        node.cp.up()
        node.up()
        node.load_images(images=images)
    except BaseException:
        stop(node)
        raise
    return node


def stop(node: Node) -> None:
    """`start`'s node and control plane down."""
    node.down()
    node.cp.down()


def images_stale(*targets: str) -> str | None:
    """Why the images' archives are not those this tree builds (None when they are): the
    cheap check a test makes before it spends a build's minutes (hack/images.sh fresh)."""
    try:
        _images_script("fresh", *targets)
    except NodeError as error:
        return str(error)
    return None


def _images_script(*args: str) -> None:
    proc = subprocess.run(["bash", str(IMAGES_SCRIPT), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-6:])
        raise NodeError(f"hack/images.sh {' '.join(args)} failed: {tail}")


def _run(*cmd: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    if not check and proc.returncode != 0 and not quiet:
        print(f"node: {' '.join(cmd)}: {proc.stderr.strip()}", file=sys.stderr)
    return proc


def _sysctl(key: str, value: str) -> str | None:
    """Set a sysctl; return its previous value (None if it does not exist)."""
    path = Path("/proc/sys") / key.replace(".", "/")
    try:
        old = path.read_text().strip()
        if old != value:
            path.write_text(value)
        return old
    except OSError:
        return None


def _veths() -> list[str]:
    """The host's veth links (the CNI bridge plugin puts each pod's host end here)."""
    out = _run("ip", "-o", "link", "show", "type", "veth", check=False, quiet=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def _short_dir(directory: Path) -> Path:
    """A directory for unix sockets: under DIR when its path is short enough (108 bytes is
    the limit of a socket's path), else under /run."""
    if len(str(directory / "containerd.sock")) < 100:
        return directory
    import hashlib

    return Path("/run") / ("pairwarden-node-" + hashlib.sha256(bytes(directory)).hexdigest()[:12])


@dataclass
class Node:
    """The node whose files live in `control_dir`/node, joined to the control plane that
    `control_dir` holds."""

    control_dir: Path
    name: str = NODE_NAME
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.control_dir = Path(self.control_dir).resolve()
        self.directory = self.control_dir / "node"
        if (self.directory / "state.json").exists():
            self.state = json.loads((self.directory / "state.json").read_text())
        self.cp = ControlPlane(self.control_dir)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # ---- what tests use ---------------------------------------------------------------
    @property
    def containerd_socket(self) -> Path:
        return _short_dir(self.directory / "run") / "containerd.sock"

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ctr` on this node's containerd, in the CRI's namespace k8s.io."""
        return _run("ctr", "--address", str(self.containerd_socket), "-n", "k8s.io", *args,
                    check=check, quiet=True)  # fmt: skip

    def container_pid(self, container_id: str) -> int:
        """The host pid of a running container's first process, by the id a pod's status
        gives (`containerd://ID` or ID): what a test kills to crash a container."""
        wanted = container_id.removeprefix("containerd://")
        for line in self.ctr("tasks", "ls").stdout.splitlines()[1:]:
            task, pid, *_ = line.split()
            if task == wanted:
                return int(pid)
        raise NodeError(f"no running task {wanted} in containerd")

    def load_images(
        self, build: bool = False, targets: Sequence[str] = (), images: Sequence[str] = ()
    ) -> None:
        """Import the OCI archives of hack/images.sh (building them first if `build`): `images`
        names those of its cache (`voicemail`) or OCI archives by path (a release's
        images/*.oci.tar); empty, all of its cache. Each is also named repo@digest, so that
        a chart's digest-pinned reference resolves here without a registry."""
        if build:
            _images_script("build", *targets)
        _images_script("load", str(self.containerd_socket), *images)

    # ---- lifecycle --------------------------------------------------------------------
    def up(self, timeout: float = 180, images: bool = False) -> Node:
        """Start containerd, kubelet and kube-proxy (a no-op when they run) and wait until
        the Node is Ready and untainted."""
        why = unavailable()
        if why:
            raise NodeError(why)
        self.cp = ControlPlane(self.control_dir)  # as it is now (it may have started since)
        if not self.cp.state or not self.cp.running():
            raise NodeError(
                f"no control plane runs in {self.control_dir}: hack/control-plane.sh up it first"
            )
        deadline = time.monotonic() + timeout
        if self.state and self.running() == list(COMPONENTS):
            self._wait_ready(deadline)
            return self
        self._claim()
        self.down()
        self._claim()
        try:
            self._prepare()
            self._network_up()
            self._start("containerd")
            self._wait_socket(deadline)
            _images_script("pause")
            _images_script("load", str(self.containerd_socket), "pause")
            if images:
                self.load_images(build=True)
            self._start("kubelet")
            self._wait_ready(deadline)
            self._start("kube-proxy")
            self._wait_proxy(deadline)
        except BaseException:
            self.down()
            raise
        return self

    def down(self, grace: float = 15) -> None:
        """Stop kube-proxy and the kubelet, kill every pod's containers, stop containerd,
        unmount what they mounted, remove the bridge, the route and the iptables rules."""
        procs = self.state.get("pids", {})
        for name in ("kube-proxy", "kubelet"):
            self._stop(name, procs.get(name), grace)
        if procs.get("containerd") and self._ours("containerd", procs["containerd"]):
            self._kill_tasks()
        self._stop("containerd", procs.get("containerd"), grace)
        self._kill_shims()
        if self.state:
            self._unmount_all()
            self._remove_pod_logs()
            self._network_down()
            self._iptables_cleanup()
            self.state["pids"] = {}
            self._save()
        with contextlib.suppress(OSError):
            if LOCK.read_text().strip() == str(self.directory):
                LOCK.unlink()

    def running(self) -> list[str]:
        return processes.running(COMPONENTS, self.state.get("pids", {}), self.directory)

    def __enter__(self) -> Node:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---- internals --------------------------------------------------------------------
    def _claim(self) -> None:
        """One node per machine (the bridge, the pod network and the iptables chains are the
        machine's): refuse when another directory's node still runs."""
        with contextlib.suppress(OSError):
            owner = LOCK.read_text().strip()
            if owner and owner != str(self.directory):
                other = Node(Path(owner).parent)
                if other.running():
                    raise NodeError(
                        f"another node runs from {owner}: one node per machine "
                        f"(hack/node.sh down {Path(owner).parent})"
                    )
        LOCK.write_text(f"{self.directory}\n")

    def _save(self) -> None:
        save_state(self.directory, self.state)

    def _ours(self, name: str, pid: int) -> bool:
        return started_here(name, pid, self.directory)

    def _prepare(self) -> None:
        d = self.directory
        for sub in ("logs", "containerd/root", "containerd/state", "cni/net.d", "cni/ipam",
                    "kubelet/root", "kubelet/certs", "opt"):  # fmt: skip
            (d / sub).mkdir(parents=True, exist_ok=True)
        sock_dir = _short_dir(d / "run")
        sock_dir.mkdir(parents=True, exist_ok=True)
        ports = {
            "kubelet": free_port(),
            "kubelet_healthz": free_port(),
            "proxy_healthz": free_port(),
            "proxy_metrics": free_port(),
        }
        self.state = {
            "ports": ports,
            "pids": {},
            "socket_dir": str(sock_dir),
            "sysctls": {},
            "service_cidr": self.cp.state.get("service_cidr", "10.96.0.0/16"),
        }
        self._save()
        (d / "containerd.toml").write_text(self._containerd_config())
        # No registry is reachable from here, and a pull must never leave the machine: every
        # well-known registry's only host is a closed port on loopback.
        for registry in REGISTRIES:
            hosts = d / "registries" / registry
            hosts.mkdir(parents=True, exist_ok=True)
            (hosts / "hosts.toml").write_text(
                f'server = "{NO_REGISTRY}"\n\n'
                f'[host."{NO_REGISTRY}"]\n  capabilities = ["pull", "resolve"]\n'
            )
        (d / "cni/net.d/10-pairwarden.conflist").write_text(
            json.dumps(self._cni_config(), indent=2) + "\n"
        )
        (d / "kubelet.json").write_text(json.dumps(self._kubelet_config(), indent=2) + "\n")
        (d / "kube-proxy.json").write_text(json.dumps(self._proxy_config(), indent=2) + "\n")

    def _containerd_config(self) -> str:
        d = self.directory
        sock = self.containerd_socket
        return f"""# pairwarden node (testbed/pairwarden_testbed/node.py): containerd of its own
version = 2
root = "{d / "containerd/root"}"
state = "{d / "containerd/state"}"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d / "opt"}"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE_IMAGE}"
    restrict_oom_score_adj = true
    disable_apparmor = true
    enable_selinux = false
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    disable_tcp_service = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "{d / "registries"}"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{CNI_BIN}"
      conf_dir = "{d / "cni/net.d"}"
      max_conf_num = 1
"""

    def _cni_config(self) -> dict[str, Any]:
        return {
            "cniVersion": "0.4.0",
            "name": "pairwarden",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": BRIDGE_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.directory / "cni/ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def _kubelet_config(self) -> dict[str, Any]:
        p = self.state["ports"]
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # The node's address is the bridge's (a kubelet refuses a loopback node IP): the
            # API server reaches the kubelet there for logs and exec.
            "address": BRIDGE_IP,
            "port": p["kubelet"],
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": p["kubelet_healthz"],
            "authentication": {
                "anonymous": {"enabled": True},
                "webhook": {"enabled": False},
                "x509": {},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "clusterDomain": "cluster.local",
            "resolvConf": "/etc/resolv.conf",
            "serializeImagePulls": False,
            "makeIPTablesUtilChains": True,
            # Disks here are shared and sometimes nearly full: evict on little.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "nodeStatusUpdateFrequency": "5s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "volumeStatsAggPeriod": "0s",
            # The kubelet writes pods' logs under /var/log/pods (fixed in 1.20, not under
            # its root dir): keep each container's small; `down` removes them.
            "containerLogMaxSize": "1Mi",
            "containerLogMaxFiles": 2,
            "podCIDR": POD_CIDR,
            "maxPods": 60,
        }

    def _proxy_config(self) -> dict[str, Any]:
        p = self.state["ports"]
        return {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.cp.token_kubeconfig("kube-proxy"))},
            "mode": "iptables",
            "bindAddress": "127.0.0.1",
            "clusterCIDR": CLUSTER_CIDR,
            "hostnameOverride": self.name,
            "healthzBindAddress": f"127.0.0.1:{p['proxy_healthz']}",
            "metricsBindAddress": f"127.0.0.1:{p['proxy_metrics']}",
            # 0: leave the machine's conntrack table size and timeouts alone.
            "conntrack": {"maxPerCore": 0, "min": 0},
            # minSyncPeriod 1s, kube-proxy's own default, as users run it ("0s" here before was
            # taken as unset and defaulted to 1s all the same): with 1.20's burst of 2 syncs,
            # a lone change after a quiet second (a failover's EndpointSlice) syncs at once;
            # the bound is for churn (many Services changing), which a pair does not make.
            "iptables": {"masqueradeAll": False, "syncPeriod": "30s", "minSyncPeriod": "1s"},
        }

    def _command(self, name: str) -> list[str]:
        d = self.directory
        bins = Path(self.cp.state.get("bin") or bin_dir())
        if name == "containerd":
            return [
                shutil.which("containerd") or "containerd",
                "--config",
                str(d / "containerd.toml"),
            ]
        if name == "kubelet":
            return [
                str(bins / "kubelet"),
                "--config", str(d / "kubelet.json"),
                "--kubeconfig", str(self.cp.token_kubeconfig(f"node-{self.name}")),
                "--hostname-override", self.name,
                "--node-ip", BRIDGE_IP,
                "--container-runtime", "remote",
                "--container-runtime-endpoint", f"unix://{self.containerd_socket}",
                "--runtime-request-timeout", "5m",
                "--root-dir", str(d / "kubelet/root"),
                "--cert-dir", str(d / "kubelet/certs"),
                "--containerd", str(self.containerd_socket),
                # 2 logs the PLEG's events, which bench/failover.py's crash timeline reads
                "--v", os.environ.get("PAIRWARDEN_KUBELET_VERBOSITY", "1"),
            ]  # fmt: skip
        if name == "kube-proxy":
            return [str(bins / "kube-proxy"), "--config", str(d / "kube-proxy.json"), "--v", "1"]
        raise ValueError(name)

    def _start(self, name: str) -> None:
        env = {**os.environ, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        proc = processes.spawn(self._command(name), self.directory / "logs" / f"{name}.log", env)
        self._procs[name] = proc
        self.state["pids"][name] = proc.pid
        self._save()

    def _stop(self, name: str, pid: int | None, grace: float) -> None:
        if not pid or not self._ours(name, pid):
            if name in self._procs and self._procs[name].poll() is None:
                print(f"node: {name} (pid {pid}) does not look like ours: left running",
                      file=sys.stderr)  # fmt: skip
            return
        processes.stop([(name, pid)], self.directory, grace)

    def _check_alive(self, *names: str) -> None:
        for name in names or tuple(self.state["pids"]):
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is not None:
                log = self.directory / "logs" / f"{name}.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-10:]
                raise NodeError(f"{name} exited; its log ends:\n" + "\n".join(tail))

    def _wait_socket(self, deadline: float) -> None:
        while True:
            self._check_alive("containerd")
            if self.containerd_socket.exists():
                proc = self.ctr("version", check=False)
                if proc.returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise NodeError(f"containerd does not answer on {self.containerd_socket}")
            time.sleep(0.1)

    # -- the Node object
    def _api(self, method: str, path: str, body: Any = None, ctype: str = "") -> Any:
        token = self.cp.state["tokens"]["admin"]
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if ctype:
            headers["Content-Type"] = ctype
        req = urllib.request.Request(
            self.cp.server + path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(req, context=self.cp._ssl(), timeout=10) as resp:
            return json.loads(resp.read())

    def node_object(self) -> dict[str, Any] | None:
        try:
            return self._api("GET", f"/api/v1/nodes/{self.name}")  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def _wait_ready(self, deadline: float) -> None:
        """Ready, then the not-ready/unreachable taints lifted (no node-lifecycle controller
        runs to do it)."""
        while True:
            self._check_alive("containerd", "kubelet")
            node = None
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                node = self.node_object()
            conds = {
                c["type"]: c["status"] for c in (node or {}).get("status", {}).get("conditions", [])
            }
            if node and conds.get("Ready") == "True":
                taints = node["spec"].get("taints") or []
                keep = [t for t in taints if not t["key"].startswith(LIFECYCLE_TAINTS)]
                if keep == taints:
                    return
                rv = node["metadata"]["resourceVersion"]
                patch = {"metadata": {"resourceVersion": rv}, "spec": {"taints": keep or None}}
                with contextlib.suppress(urllib.error.HTTPError):  # 409: raced, read again
                    self._api("PATCH", f"/api/v1/nodes/{self.name}", patch,
                              "application/merge-patch+json")  # fmt: skip
                continue
            if time.monotonic() > deadline:
                raise NodeError(
                    f"node {self.name} not Ready in time (conditions {conds or 'none'}); "
                    f"see {self.directory / 'logs'}"
                )
            time.sleep(0.25)

    def _wait_proxy(self, deadline: float) -> None:
        """kube-proxy's /healthz answers once it has synced its rules."""
        url = f"http://127.0.0.1:{self.state['ports']['proxy_healthz']}/healthz"
        while True:
            self._check_alive("kube-proxy")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as resp,
            ):
                if resp.status == 200:
                    return
            if time.monotonic() > deadline:
                raise NodeError("kube-proxy /healthz does not answer: see its log")
            time.sleep(0.2)

    # -- the network of the node
    def _network_up(self) -> None:
        sysctls = self.state["sysctls"]
        for key, value in (
            ("net.ipv4.ip_forward", "1"),
            ("net.bridge.bridge-nf-call-iptables", "1"),
        ):
            old = _sysctl(key, value)
            if old is not None:
                sysctls[key] = old
        self.state["veths_before"] = _veths()
        self.state["pod_logs_before"] = [p.name for p in POD_LOGS.glob("*_*_*")]
        self._save()
        if _run("ip", "link", "show", BRIDGE, check=False, quiet=True).returncode != 0:
            _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "replace", f"{BRIDGE_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        # Service addresses without a rule go to the bridge, never off the machine.
        if not self.state["service_cidr"].startswith("127."):
            _run("ip", "route", "replace", self.state["service_cidr"], "dev", BRIDGE,
                 "src", BRIDGE_IP)  # fmt: skip
        _sysctl(f"net.ipv4.conf.{BRIDGE}.route_localnet", "1")
        # Pods talk to the host and to each other, never past the machine.
        self._iptables_chain()
        self._api_service_rule()

    def _api_service_rule(self) -> None:
        """The `kubernetes` Service: the API server binds 127.0.0.1 only and publishes no
        endpoint for a loopback address, so kube-proxy has nothing to route 10.96.0.1:443 to.
        DNAT it to the API server from pods (route_localnet lets a pod's packet go to
        127.0.0.1) and from the host; the serving certificate names 10.96.0.1."""
        import ipaddress

        service_ip = str(next(ipaddress.ip_network(self.state["service_cidr"]).hosts()))
        target = f"127.0.0.1:{self.cp.state['ports']['apiserver']}"
        chain = "PAIRWARDEN-NODE-API"
        if _run("iptables", "-w", "-t", "nat", "-N", chain, check=False, quiet=True).returncode:
            _run("iptables", "-w", "-t", "nat", "-F", chain)
        _run("iptables", "-w", "-t", "nat", "-A", chain, "-d", f"{service_ip}/32", "-p", "tcp",
             "--dport", "443", "-j", "DNAT", "--to-destination", target)  # fmt: skip
        for hook in ("PREROUTING", "OUTPUT"):
            if _run("iptables", "-w", "-t", "nat", "-C", hook, "-j", chain, check=False,
                    quiet=True).returncode:  # fmt: skip
                _run("iptables", "-w", "-t", "nat", "-I", hook, "1", "-j", chain)

    def _iptables_chain(self) -> None:
        chain = "PAIRWARDEN-NODE"
        if _run("iptables", "-w", "-N", chain, check=False, quiet=True).returncode != 0:
            _run("iptables", "-w", "-F", chain)
        _run("iptables", "-w", "-A", chain, "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT")
        _run("iptables", "-w", "-A", chain, "-i", BRIDGE, "-j", "DROP")
        _run("iptables", "-w", "-A", chain, "-o", BRIDGE, "-j", "ACCEPT")
        if _run("iptables", "-w", "-C", "FORWARD", "-j", chain, check=False, quiet=True).returncode:
            _run("iptables", "-w", "-I", "FORWARD", "1", "-j", chain)

    def _network_down(self) -> None:
        cidr = self.state.get("service_cidr", "10.96.0.0/16")
        if not cidr.startswith("127."):
            _run("ip", "route", "del", cidr, "dev", BRIDGE, check=False, quiet=True)
        _run("ip", "link", "del", BRIDGE, check=False, quiet=True)
        for key, old in self.state.get("sysctls", {}).items():
            _sysctl(key, old)
        shutil.rmtree(self.directory / "cni/ipam", ignore_errors=True)

    def _iptables_cleanup(self) -> None:
        """kube-proxy's own --cleanup, then the chains the kubelet and this node added."""
        bins = Path(self.cp.state.get("bin") or bin_dir())
        if os.access(bins / "kube-proxy", os.X_OK):
            subprocess.run([str(bins / "kube-proxy"), "--cleanup", "--v", "0"],
                           capture_output=True, timeout=60)  # fmt: skip
        for table, hooks, chain in (
            ("filter", ("FORWARD",), "PAIRWARDEN-NODE"),
            ("nat", ("PREROUTING", "OUTPUT"), "PAIRWARDEN-NODE-API"),
        ):
            for hook in hooks:
                _run(
                    "iptables", "-w", "-t", table, "-D", hook, "-j", chain, check=False, quiet=True
                )
            _run("iptables", "-w", "-t", table, "-F", chain, check=False, quiet=True)
            _run("iptables", "-w", "-t", table, "-X", chain, check=False, quiet=True)
        # The kubelet's utility chains (KUBE-MARK-DROP, KUBE-MARK-MASQ, KUBE-FIREWALL,
        # KUBE-POSTROUTING, KUBE-KUBELET-CANARY, ...) and their jumps from built-in chains.
        for table in ("filter", "nat", "mangle"):
            proc = _run("iptables-save", "-t", table, check=False, quiet=True)
            if proc.returncode != 0:
                continue
            jumps, chains = [], []
            for line in proc.stdout.splitlines():
                if line.startswith(":KUBE-"):
                    chains.append(line[1:].split()[0])
                elif (
                    line.startswith("-A ")
                    and " -j KUBE-" in line
                    and not line.split()[1].startswith("KUBE-")
                ):
                    jumps.append(line[3:].split())
            for rule in jumps:
                _run("iptables", "-w", "-t", table, "-D", *rule, check=False, quiet=True)
            for c in chains:
                _run("iptables", "-w", "-t", table, "-F", c, check=False, quiet=True)
            for c in chains:
                _run("iptables", "-w", "-t", table, "-X", c, check=False, quiet=True)

    # -- containers and mounts
    def _kill_tasks(self) -> None:
        """Every container of the k8s.io namespace: SIGKILL, delete (the pods' processes do
        not outlive the node)."""
        proc = self.ctr("tasks", "ls", "-q", check=False)
        tasks = proc.stdout.split() if proc.returncode == 0 else []
        for task in tasks:
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
        deadline = time.monotonic() + 10
        for task in tasks:
            while time.monotonic() < deadline:
                proc = self.ctr("tasks", "delete", task, check=False)
                if proc.returncode == 0 or "not found" in proc.stderr:
                    break
                time.sleep(0.1)
        proc = self.ctr("containers", "ls", "-q", check=False)
        for container in proc.stdout.split() if proc.returncode == 0 else []:
            self.ctr("containers", "delete", container, check=False)

    def _kill_shims(self) -> None:
        """containerd-shim-runc-v2 processes of our containerd (they outlive it)."""
        for pid in self._shims():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _shims(self) -> list[int]:
        needle = str(self.containerd_socket).encode()
        found = []
        for proc_dir in Path("/proc").iterdir():
            if not proc_dir.name.isdigit():
                continue
            try:
                cmdline = (proc_dir / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and needle in cmdline:
                found.append(int(proc_dir.name))
        return found

    def _remove_pod_logs(self) -> None:
        """The logs of this node's pods: the /var/log/pods/<ns>_<pod>_<uid> directories that
        appeared while it ran (one node per machine; the kubelet forgets a deleted pod, a
        finished Job's, before its logs go), and the /var/log/containers links into them
        (the kubelet's paths, fixed in 1.20)."""
        removed = [str(p) for p in self._pod_logs()]
        for pod_dir in removed:
            shutil.rmtree(pod_dir, ignore_errors=True)
        for link in CONTAINER_LOGS.glob("*.log"):
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(tuple(removed)):
                    link.unlink()

    def _pod_logs(self) -> list[Path]:
        before = set(self.state.get("pod_logs_before", []))
        return [p for p in POD_LOGS.glob("*_*_*") if p.name not in before]

    def leftovers(self) -> list[str]:
        """What of this node is still on the machine after `down`: its daemons and pods'
        processes, mounts under its directories, network namespaces, the bridge and veths,
        iptables chains, pod logs. Empty when `down` cleaned up (tests assert it)."""
        found = [f"process {n}" for n in self.running()]
        found += [f"shim {pid}" for pid in self._shims()]
        found += [f"mount {m}" for m in self._mounts()]
        if _run("ip", "link", "show", BRIDGE, check=False, quiet=True).returncode == 0:
            found.append(f"bridge {BRIDGE}")
        before = set(self.state.get("veths_before", []))
        found += [f"veth {v}" for v in _veths() if v not in before]
        for table in ("filter", "nat", "mangle"):
            rules = _run("iptables-save", "-t", table, check=False, quiet=True).stdout
            found += [
                f"iptables {table} {line.split()[0][1:]}"
                for line in rules.splitlines()
                if line.startswith((":KUBE-", ":PAIRWARDEN-NODE"))
            ]
        found += [f"pod log {p}" for p in self._pod_logs()]
        return found

    def _unmount_all(self) -> None:
        """Everything mounted under the node's directory (pod volumes, rootfs, and the pods'
        network namespaces, which containerd bind-mounts under its state directory: once
        unmounted and their processes gone, the kernel frees them), deepest first."""
        for point in sorted(self._mounts(), key=len, reverse=True):
            _run("umount", "-l", point, check=False, quiet=True)

    def _mounts(self) -> set[str]:
        prefixes = (str(self.directory) + "/", str(_short_dir(self.directory / "run")) + "/")
        mounts = set()
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4].encode().decode("unicode_escape")
                if point.startswith(prefixes):
                    mounts.add(point)
        return mounts


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: node up DIR [--images] | down DIR | status DIR | install | images"
    try:
        match args:
            case ["install"]:
                install_packages()
            case ["images"]:
                took = prepare_images()
                print(
                    f"node: the project's images are built for this tree ({took:.0f}s, "
                    f"load average {os.getloadavg()[0]:.1f})",
                    file=sys.stderr,
                )
            case ["up", directory, *rest] if set(rest) <= {"--images"}:
                install_packages()
                t0 = time.monotonic()
                node = Node(Path(directory)).up(images="--images" in rest)
                print(
                    f"node: {node.name} Ready in {time.monotonic() - t0:.1f}s "
                    f"(containerd {node.containerd_socket}, pods on {POD_CIDR})",
                    file=sys.stderr,
                )
            case ["down", directory]:
                node = Node(Path(directory))
                node.down()
                left = node.leftovers()
                if left:
                    print(f"node: left behind: {', '.join(left)}", file=sys.stderr)
                    return 1
            case ["status", directory]:
                node = Node(Path(directory))
                if not node.state:
                    print(f"{directory}: no node here")
                    return 1
                pids = node.state.get("pids", {})
                return processes.print_status(COMPONENTS, pids, node.directory)
            case _:
                print(usage, file=sys.stderr)
                return 2
    except ControlPlaneError as exc:
        print(f"node: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
