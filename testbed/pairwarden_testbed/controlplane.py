"""A real Kubernetes v1.20.2 control plane on loopback: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, built from Debian's packages by
`hack/control-plane.sh build` (issue 14).

    cp = ControlPlane(Path("/tmp/k8s")).up()    # returns once /readyz answers and the
    cp.kubeconfig                               # default ServiceAccount exists
    cp.serviceaccount_kubeconfig("ns", "sa")    # act as a ServiceAccount (its token)
    cp.down()

Everything runs as detached processes with pids, logs and state in the directory, so
`python -m pairwarden_testbed.controlplane down DIR` stops what another process started.
Ports are chosen free on 127.0.0.1, so two control planes can run side by side. TLS
material comes from the `openssl` command; authentication is by static tokens
(`--token-auth-file`) and ServiceAccount tokens; authorization is Node,RBAC.

Standard library only: `hack/control-plane.sh` runs this with any python3.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pairwarden_testbed import processes
from pairwarden_testbed.processes import save_state, started_here

K8S_VERSION = "1.20.2"
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "hack" / "control-plane.sh"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
# Components `up` starts, in start order (stopped in reverse).
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The controllers that need a node agent or a cloud are off; EndpointSlice, Job,
# ServiceAccount token and the rest stay on.
CONTROLLERS = "*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-binder"
SERVICE_CIDR = "10.96.0.0/16"  # virtual: only a kube-proxy on a node (issue 19) routes it
NODE_NAME = "pairwarden-node"  # a static node identity for a kubelet (system:node:<name>)


class ControlPlaneError(RuntimeError):
    """A step of building or starting the control plane failed; the message says which."""


def cache_dir() -> Path:
    """Where `hack/control-plane.sh build` keeps its work and the binaries."""
    if env := os.environ.get("PAIRWARDEN_K8S_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pairwarden" / f"kubernetes-{K8S_VERSION}"


def bin_dir() -> Path:
    if env := os.environ.get("PAIRWARDEN_K8S_BIN"):
        return Path(env)
    return cache_dir() / "bin"


def missing() -> list[str]:
    """What `up` lacks to start: binaries not built, etcd or openssl not installed."""
    lacking = [b for b in BINARIES if not os.access(bin_dir() / b, os.X_OK)]
    lacking += [tool for tool in ("etcd", "openssl") if shutil.which(tool) is None]
    return lacking


def unavailable() -> str | None:
    """Why a control plane cannot start here (None when it can): for tests to skip with."""
    if os.environ.get("PAIRWARDEN_REAL_K8S") == "0":
        return "real Kubernetes disabled by PAIRWARDEN_REAL_K8S=0"
    lacking = missing()
    if not lacking:
        return None
    reason = f"real Kubernetes {K8S_VERSION} not available: missing {', '.join(lacking)}"
    failed = cache_dir() / "build-failed"
    if failed.exists():
        return f"{reason}; hack/control-plane.sh build failed: {failed.read_text().strip()}"
    return f"{reason}; build it with `make control-plane` (hack/control-plane.sh build)"


def build(log: Path | None = None, timeout: float = 1800) -> None:
    """Run `hack/control-plane.sh build` (a no-op when the binaries are cached)."""
    out = log.open("wb") if log else subprocess.DEVNULL
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "build"], stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log else []
        raise ControlPlaneError("hack/control-plane.sh build failed: " + " | ".join(tail))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ControlPlaneError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _genkey(name: str, pki: Path) -> None:
    """An ECDSA P-256 key: RSA keys take seconds each on a loaded machine."""
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=pki
    )


def make_pki(pki: Path, service_ip: str, extra_ips: Sequence[str] = ()) -> None:
    """A CA, the API server's serving certificate (loopback and in-cluster names) and the
    ServiceAccount signing key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "apiserver.crt").exists():
        return
    _genkey("ca.key", pki)
    _openssl(
        "req", "-x509", "-new", "-nodes", "-key", "ca.key", "-sha256", "-days", "3650",
        "-subj", "/CN=pairwarden-test-ca", "-out", "ca.crt", cwd=pki,
    )  # fmt: skip
    names = [
        "DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local", "IP:127.0.0.1", f"IP:{service_ip}",
    ]  # fmt: skip
    names += [f"IP:{ip}" for ip in extra_ips if ip not in ("127.0.0.1", "0.0.0.0")]
    (pki / "apiserver.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={','.join(names)}\n"
    )
    _genkey("apiserver.key", pki)
    _openssl(
        "req", "-new", "-key", "apiserver.key", "-subj", "/CN=kube-apiserver",
        "-out", "apiserver.csr", cwd=pki,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", "apiserver.ext",
        "-out", "apiserver.crt", cwd=pki,
    )  # fmt: skip
    _genkey("sa.key", pki)  # ServiceAccount tokens signed ES256
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def kubeconfig_text(server: str, ca_pem: bytes, user: str, token: str) -> str:
    """A kubeconfig (JSON, which is YAML) for one bearer token."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "pairwarden-k8s",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "pairwarden-k8s", "user": user}}],
        "current-context": user,
    }
    return json.dumps(doc, indent=2) + "\n"


@dataclass
class ControlPlane:
    """One control plane whose files (state.json, logs, pids, pki, kubeconfigs) live in
    `directory`."""

    directory: Path
    nodes: Sequence[str] = (NODE_NAME,)
    service_cidr: str = SERVICE_CIDR
    # Where the API server listens and what the `kubernetes` Service's Endpoints name. On
    # loopback alone (the default) those Endpoints stay empty (Kubernetes refuses 127/8
    # there); a node whose pods must reach the API server passes an address of the host
    # that they can reach (e.g. its CNI bridge's) and a bind address covering it.
    advertise_address: str = "127.0.0.1"
    bind_address: str = "127.0.0.1"
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory).resolve()
        if (self.directory / "state.json").exists():
            self.state = json.loads((self.directory / "state.json").read_text())

    # ---- what tests use -------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (system:masters)."""
        return self.directory / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.state['ports']['apiserver']}"

    @property
    def ca_file(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    def token_kubeconfig(self, name: str) -> Path:
        """The kubeconfig of a static identity: admin, kube-controller-manager,
        kube-scheduler, kube-proxy or node-<name> (system:node:<name>, for a kubelet)."""
        return self.directory / f"{name}.kubeconfig"

    def serviceaccount_token(self, namespace: str, name: str, timeout: float = 60) -> str:
        """The token of ServiceAccount namespace/name from the Secret that the token
        controller creates for it (1.20), waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(urllib.error.HTTPError):
                sa = self.api_get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
                for ref in sa.get("secrets") or []:
                    secret = self.api_get(f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
                    token = (secret.get("data") or {}).get("token")
                    if secret.get("type") == "kubernetes.io/service-account-token" and token:
                        return base64.b64decode(token).decode()
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"no token for ServiceAccount {namespace}/{name}")
            time.sleep(0.2)

    def serviceaccount_kubeconfig(
        self, namespace: str, name: str, path: Path | None = None, timeout: float = 60
    ) -> Path:
        """Write a kubeconfig acting as ServiceAccount namespace/name; return its path."""
        token = self.serviceaccount_token(namespace, name, timeout)
        path = path or self.directory / "serviceaccounts" / f"{namespace}.{name}.kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        user = f"system:serviceaccount:{namespace}:{name}"
        path.write_text(kubeconfig_text(self.server, self.ca_file.read_bytes(), user, token))
        path.chmod(0o600)
        return path

    def api_get(self, path: str, token: str | None = None) -> Any:
        """GET an API path as admin (or with `token`); the decoded JSON."""
        token = token or self.state["tokens"]["admin"]
        req = urllib.request.Request(
            self.server + path,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        with urllib.request.urlopen(req, context=self._ssl(), timeout=10) as resp:
            return json.loads(resp.read())

    # ---- lifecycle ------------------------------------------------------------------
    def up(self, timeout: float = 240) -> ControlPlane:
        """Start all four (a no-op if they run already) and wait until ready."""
        lacking = missing()
        if lacking:
            raise ControlPlaneError(
                f"cannot start: missing {', '.join(lacking)} "
                "(run hack/control-plane.sh build, as root on Debian)"
            )
        if self.state and self.running() == list(COMPONENTS):
            self._wait_ready(time.monotonic() + timeout)
            return self
        self.down()
        self._prepare()
        deadline = time.monotonic() + timeout
        try:
            self._start("etcd")
            self._wait_port(self.state["ports"]["etcd"], "etcd", deadline)
            self._start("kube-apiserver")
            # The others read the API server's authentication ConfigMap at start and give
            # up after 10 s: start them once it serves.
            admin = self.state["tokens"]["admin"]
            self._wait(
                "kube-apiserver /readyz",
                lambda: self._healthy(f"{self.server}/readyz", admin),
                deadline,
            )
            self._start("kube-controller-manager")
            self._start("kube-scheduler")
            self._wait_ready(deadline)
        except BaseException:
            self.down()
            raise
        return self

    def down(self, grace: float = 15) -> None:
        """Stop every component this directory started (idempotent)."""
        procs = self.state.get("pids", {})
        processes.stop([(n, procs.get(n)) for n in reversed(COMPONENTS)], self.directory, grace)
        if procs:
            self.state["pids"] = {}
            self._save()
        etcd_data = self.state.get("etcd_data")
        if etcd_data and Path(etcd_data).exists():
            shutil.rmtree(etcd_data, ignore_errors=True)

    def running(self) -> list[str]:
        return processes.running(COMPONENTS, self.state.get("pids", {}), self.directory)

    @contextlib.contextmanager
    def paused(self, component: str) -> Iterator[None]:
        """`component` (etcd, kube-apiserver, ...) stopped for the block (`pause`) and
        resumed on the way out, whatever ends the block (a failed assertion, a
        KeyboardInterrupt): a process left stopped hangs every later user of this plane."""
        self.pause(component)
        try:
            yield
        finally:
            self.resume(component)

    def pause(self, component: str) -> None:
        """SIGSTOP `component`, as a hung disk, a swapped-out process or a stuck leader holds
        it: its sockets stay open and nothing answers. Refuses a pid this directory did not
        start. Whoever pauses resumes (`resume`, or `paused` for a block)."""
        os.kill(self._pid_of(component), signal.SIGSTOP)

    def resume(self, component: str) -> None:
        """SIGCONT `component` (a no-op for one that runs)."""
        os.kill(self._pid_of(component), signal.SIGCONT)

    def _pid_of(self, component: str) -> int:
        pid = int(self.state["pids"][component])
        if not self._ours(component, pid):
            raise ControlPlaneError(f"{component} (pid {pid}) is not running from {self.directory}")
        return pid

    def __enter__(self) -> ControlPlane:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---- internals ------------------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _save(self) -> None:
        save_state(self.directory, self.state)

    def _ours(self, name: str, pid: int) -> bool:
        return started_here(name, pid, self.directory)

    def _prepare(self) -> None:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        (d / "logs").mkdir(exist_ok=True)
        service_ip = _first_ip(self.service_cidr)
        make_pki(d / "pki", service_ip, (self.advertise_address, self.bind_address))
        ports = {
            "etcd": free_port(),
            "etcd_peer": free_port(),
            "apiserver": free_port(),
            "controller_manager": free_port(),
            "scheduler": free_port(),
        }
        users = {
            "admin": ("admin", "system:masters"),
            "kube-controller-manager": ("system:kube-controller-manager", ""),
            "kube-scheduler": ("system:kube-scheduler", ""),
            "kube-proxy": ("system:kube-proxy", ""),
        }
        for node in self.nodes:
            users[f"node-{node}"] = (f"system:node:{node}", "system:nodes")
        tokens = {key: secrets.token_hex(16) for key in users}
        rows = [
            f'{tokens[key]},{user},{user},"{groups}"' if groups else f"{tokens[key]},{user},{user}"
            for key, (user, groups) in users.items()
        ]
        (d / "tokens.csv").write_text("\n".join(rows) + "\n")
        (d / "tokens.csv").chmod(0o600)
        # etcd on tmpfs when there is one: fsync-bound writes make a loaded machine's API slow.
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else d
        etcd_data = tempfile.mkdtemp(prefix="pairwarden-etcd-", dir=base)
        self.state = {
            "version": K8S_VERSION,
            "bin": str(bin_dir()),
            "ports": ports,
            "tokens": tokens,
            "pids": {},
            "etcd_data": etcd_data,
            "service_cidr": self.service_cidr,
        }
        self._save()
        (d / "state.json").chmod(0o600)
        ca = (d / "pki" / "ca.crt").read_bytes()
        for key, (user, _) in users.items():
            path = self.token_kubeconfig(key)
            path.write_text(kubeconfig_text(self.server, ca, user, tokens[key]))
            path.chmod(0o600)
        shutil.copyfile(self.token_kubeconfig("admin"), self.kubeconfig)
        self.kubeconfig.chmod(0o600)

    def _command(self, name: str) -> list[str]:
        d, p, bins = self.directory, self.state["ports"], Path(self.state["bin"])
        pki = d / "pki"
        if name == "etcd":
            peer = f"http://127.0.0.1:{p['etcd_peer']}"
            return [
                shutil.which("etcd") or "etcd",
                "--name", "pairwarden",
                "--data-dir", str(self._etcd_link()),
                "--listen-client-urls", f"http://127.0.0.1:{p['etcd']}",
                "--advertise-client-urls", f"http://127.0.0.1:{p['etcd']}",
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"pairwarden={peer}",
                "--initial-cluster-state", "new",
                "--log-level", "warn",
                "--logger", "zap",
            ]  # fmt: skip
        if name == "kube-apiserver":
            loopback = self.advertise_address.startswith("127.")
            return [
                str(bins / name),
                "--etcd-servers", f"http://127.0.0.1:{p['etcd']}",
                "--bind-address", self.bind_address,
                "--advertise-address", self.advertise_address,
                "--secure-port", str(p["apiserver"]),
                "--cert-dir", str(d / "apiserver-certs"),
                "--tls-cert-file", str(pki / "apiserver.crt"),
                "--tls-private-key-file", str(pki / "apiserver.key"),
                "--client-ca-file", str(pki / "ca.crt"),
                # Filled in so that the controller-manager and scheduler, which read it, do
                # not log its absence each minute; nobody holds a front-proxy-client cert.
                "--requestheader-client-ca-file", str(pki / "ca.crt"),
                "--requestheader-allowed-names", "front-proxy-client",
                "--requestheader-username-headers", "X-Remote-User",
                "--requestheader-group-headers", "X-Remote-Group",
                "--requestheader-extra-headers-prefix", "X-Remote-Extra-",
                "--token-auth-file", str(d / "tokens.csv"),
                "--authorization-mode", "Node,RBAC",
                "--enable-admission-plugins", "NodeRestriction",
                "--service-account-key-file", str(pki / "sa.pub"),
                "--service-account-signing-key-file", str(pki / "sa.key"),
                "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range", self.state["service_cidr"],
                # A node's name does not resolve here: reach kubelets by their address.
                "--kubelet-preferred-address-types", "InternalIP,Hostname",
                "--allow-privileged=true",
                "--profiling=false",
                "--v", "1",
                *(["--endpoint-reconciler-type", "none"] if loopback else []),
            ]  # fmt: skip
        kubeconfig = str(self.token_kubeconfig(name))
        common = [
            "--kubeconfig", kubeconfig,
            "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig,
            "--bind-address", "127.0.0.1",
            "--port", "0",
            "--leader-elect=false",
            "--profiling=false",
            "--v", "1",
        ]  # fmt: skip
        if name == "kube-controller-manager":
            return [
                str(bins / name), *common,
                "--secure-port", str(p["controller_manager"]),
                "--cert-dir", str(d / "controller-manager-certs"),
                "--controllers", CONTROLLERS,
                "--use-service-account-credentials=true",
                "--service-account-private-key-file", str(pki / "sa.key"),
                "--root-ca-file", str(pki / "ca.crt"),
                "--cluster-signing-cert-file", str(pki / "ca.crt"),
                "--cluster-signing-key-file", str(pki / "ca.key"),
                "--service-cluster-ip-range", self.state["service_cidr"],
            ]  # fmt: skip
        if name == "kube-scheduler":
            return [
                str(bins / name), *common,
                "--secure-port", str(p["scheduler"]),
                "--cert-dir", str(d / "scheduler-certs"),
            ]  # fmt: skip
        raise ValueError(name)

    def _etcd_link(self) -> Path:
        """DIR/etcd-data, a link to the tmpfs data directory (so etcd's command line
        names DIR, which `_ours` relies on)."""
        link = self.directory / "etcd-data"
        target = Path(self.state["etcd_data"])
        if link.is_symlink() or link.exists():
            link.unlink()
        if target != link:
            link.symlink_to(target)
        return link

    def _start(self, name: str) -> None:
        pid = processes.spawn(self._command(name), self.directory / "logs" / f"{name}.log").pid
        self.state["pids"][name] = pid
        (self.directory / f"{name}.pid").write_text(f"{pid}\n")
        self._save()

    def _check_alive(self) -> None:
        for name, pid in self.state["pids"].items():
            if not self._ours(name, pid):
                log = self.directory / "logs" / f"{name}.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-8:]
                raise ControlPlaneError(
                    f"{name} exited at start; its log ends:\n" + "\n".join(tail)
                )

    def _wait_port(self, port: int, what: str, deadline: float) -> None:
        while True:
            self._check_alive()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{what} does not listen on 127.0.0.1:{port}")
            time.sleep(0.1)

    def _healthy(self, url: str, token: str | None = None) -> bool:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        ctx = self._ssl() if token else ssl._create_unverified_context()  # self-signed
        try:
            req = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _wait_ready(self, deadline: float) -> None:
        """/readyz of the API server, /healthz of controller-manager and scheduler, the
        `default` namespace and its `default` ServiceAccount (made by a controller)."""
        p, admin = self.state["ports"], self.state["tokens"]["admin"]
        checks: list[tuple[str, Callable[[], bool]]] = [
            ("kube-apiserver /readyz", lambda: self._healthy(f"{self.server}/readyz", admin)),
            (
                "kube-controller-manager /healthz",
                lambda: self._healthy(f"https://127.0.0.1:{p['controller_manager']}/healthz"),
            ),
            (
                "kube-scheduler /healthz",
                lambda: self._healthy(f"https://127.0.0.1:{p['scheduler']}/healthz"),
            ),
            ("the default ServiceAccount", lambda: self._exists(
                "/api/v1/namespaces/default/serviceaccounts/default")),
        ]  # fmt: skip
        for what, check in checks:
            self._wait(what, check, deadline)

    def _wait(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while not check():
            self._check_alive()
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"control plane in {self.directory} not ready: {what} does not answer"
                )
            time.sleep(0.2)

    def _exists(self, path: str) -> bool:
        try:
            self.api_get(path)
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return True


def _first_ip(cidr: str) -> str:
    import ipaddress

    return str(next(ipaddress.ip_network(cidr).hosts()))


@contextlib.contextmanager
def running(directory: Path) -> Iterator[ControlPlane]:
    """A control plane up for the duration of a `with` block."""
    cp = ControlPlane(directory).up()
    try:
        yield cp
    finally:
        cp.down()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: controlplane up DIR | down DIR | status DIR | kubeconfig DIR NAMESPACE SA"
    if not args:
        print(usage, file=sys.stderr)
        return 2
    try:
        match args:
            case ["up", directory]:
                t0 = time.monotonic()
                cp = ControlPlane(Path(directory)).up()
                print(
                    f"control-plane: up in {time.monotonic() - t0:.1f}s: {cp.server} "
                    f"(kubectl --kubeconfig {cp.kubeconfig})",
                    file=sys.stderr,
                )
            case ["down", directory]:
                ControlPlane(Path(directory)).down()
            case ["status", directory]:
                cp = ControlPlane(Path(directory))
                if not cp.state:
                    print(f"{directory}: no control plane here")
                    return 1
                print(f"server {cp.server}  kubeconfig {cp.kubeconfig}")
                return processes.print_status(COMPONENTS, cp.state.get("pids", {}), cp.directory)
            case ["kubeconfig", directory, namespace, sa]:
                path = ControlPlane(Path(directory)).serviceaccount_kubeconfig(namespace, sa)
                sys.stdout.write(path.read_text())
            case _:
                print(usage, file=sys.stderr)
                return 2
    except ControlPlaneError as exc:
        print(f"control-plane: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
