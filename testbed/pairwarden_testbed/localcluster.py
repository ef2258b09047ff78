"""A whole cluster on loopback: the sandbox API server, the local kubelet, kube-proxy and Job
controller stand-ins, and the real operator as its own process. The demo, the e2e scenarios and the
benchmarks all drive this one harness, so what they measure is the same path.

Callers dial the Service's clusterIP like any client would; the proxy forwards to whichever
pod the selector picks at that moment, so a flip is seen by callers, not only in the API.

With `real=RealBackend(...)` the same harness runs on a real Kubernetes control plane
(hack/control-plane.sh) instead: the scheduler binds the pods to the local kubelet's Node,
the proxy routes by the EndpointSlices the controller-manager computes, the Job controller
runs replication Jobs through pods on that node.

On both, every process the rig starts acts as what its manifest gives it (credentials.py):
the agents as the ServiceAccount their pod names, with its token; a replication Job as its
account, which mounts none; the operator, given the chart's RBAC objects (`Chart`), as the
chart's ServiceAccount, allowed only what those objects grant (without them, as admin: the
demo renders no chart). The sandbox enforces authentication and RBAC as the real server does.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.protocol import ANNOTATION_REQUEST, ANNOTATION_REQUEST_ID, MEMBERS, Member
from pairwarden_testbed.credentials import credentials, write_kubeconfig_as
from pairwarden_testbed.lifecycle import sigterm_unwinds
from pairwarden_testbed.waiting import eventually

EXAMPLES = Path(__file__).resolve().parent / "examples"  # shipped in the package
HARNESS, OPERATOR = "harness", "operator"  # the sandbox identities of the test and the operator


wait_until = eventually  # the scenarios' name for it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failover_pair(
    name: str = "vm",
    service: str = "vm-calls",
    interval_ms: int = 100,
    missed: int = 10,
    renewals: int = 3,
    **spec: Any,
) -> dict[str, Any]:
    """A FailoverPair for pods `<name>-primary` / `<name>-secondary`, shortened heartbeat."""
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FailoverPair",
        "metadata": {"name": name},
        "spec": {
            "members": {
                "primary": {"podName": f"{name}-primary"},
                "secondary": {"podName": f"{name}-secondary"},
            },
            "service": service,
            "heartbeat": {
                "intervalMs": interval_ms,
                "missedBeforeFailover": missed,
                "renewalsPerWindow": renewals,
            },
        },
    }
    body["spec"].update(spec)
    return body


class OperatorProcess:
    """`pairwarden operator` as a child process, as it runs in its own pod."""

    def __init__(self, kubeconfig: str, namespace: str, log: Path, extra: list[str] | None = None):
        self.kubeconfig, self.namespace, self.log = kubeconfig, namespace, log
        self.metrics_port = free_port()
        self.extra = extra or ["--standalone"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "pairwarden.cli", "operator",
            "--kubeconfig", self.kubeconfig, "-n", self.namespace,
            "--metrics-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
            *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def metrics(self) -> str:
        import urllib.request

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())


@dataclass(frozen=True)
class Chart:
    """What the chart installs for the operator, rendered for the cluster's namespace: its
    ServiceAccounts, Roles, ClusterRoles and bindings, and the operator pod's spec (whose
    `serviceAccountName` the operator process runs as)."""

    rbac: Sequence[dict[str, Any]]
    operator_spec: dict[str, Any]


@dataclass(frozen=True)
class RealBackend:
    """A real control plane to run on: `plane` is a `controlplane.ControlPlane` that is up;
    the members run as `agent_account` when given (bench/failover.py: one bound to
    cluster-admin), else as the account their manifest names."""

    plane: Any
    agent_account: str | None = None  # None: the manifest's


def place_call(address: tuple[str, int], caller: str, timeout: float) -> str | None:
    """One call on the reference voicemail's line protocol: the pod that answered, or None
    (refused as standby, or no answer)."""
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(f"CALL {caller}\n".encode())
            reply = sock.makefile("rb").readline().decode().split()
            with contextlib.suppress(OSError):
                sock.sendall(b"BYE\n")
    except OSError:
        return None
    return reply[1] if len(reply) >= 2 and reply[0] == "ANSWERED" else None


class LocalCluster:
    """Start with `with LocalCluster() as cluster:`; everything stops on exit."""

    def __init__(
        self,
        namespace: str = "voice",
        workdir: Path | None = None,
        real: RealBackend | None = None,
        chart: Chart | None = None,
    ) -> None:
        self.namespace = namespace
        self.real = real
        self.chart = chart
        self._tmp = tempfile.TemporaryDirectory(prefix="pairwarden-") if workdir is None else None
        self.workdir = workdir or Path(self._tmp.name if self._tmp else ".")
        self._stack = contextlib.ExitStack()
        self.operator: OperatorProcess | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from pairwarden_testbed.localnode import LocalKubelet, LocalServiceProxy
        from pairwarden_testbed.localnode.jobrunner import LocalJobRunner
        from pairwarden_testbed.sandbox import Sandbox

        # a `kill` of the run (chaos, demo, bench) stops what this cluster started, too
        self._stack.enter_context(sigterm_unwinds())
        if self.real is not None:
            self._start_real(self.real)
            return
        self.sandbox = self._stack.enter_context(Sandbox())
        self.kubeconfig = str(self.sandbox.kubeconfig_path)
        self._connect(str(self.sandbox.kubeconfig_for(HARNESS)))
        self.kubelet = LocalKubelet(self.kubeconfig, self.namespace, workdir=self.workdir)
        self.kubelet.start()
        self._stack.callback(self.kubelet.stop)
        self.proxy = LocalServiceProxy(self.kubeconfig, self.namespace)
        self.proxy.start()
        self._stack.callback(self.proxy.stop)
        self.jobs = self._stack.enter_context(
            LocalJobRunner(self.kubeconfig, self.namespace, workdir=self.workdir / "jobs")
        )
        self._install_chart()
        self.start_operator()

    def _connect(self, kubeconfig: str | None = None) -> None:
        """The test's own client: on the sandbox as HARNESS, so faults can spare the
        observer (inject_fault(spare=HARNESS)) while the node, the pods and the operator
        feel them."""
        self.api = config.new_client_from_config(config_file=kubeconfig or self.kubeconfig)
        self._stack.callback(self.api.close)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        with contextlib.suppress(client.ApiException):
            self.core.create_namespace({"metadata": {"name": self.namespace}})

    def _start_real(self, real: RealBackend) -> None:
        """The test acts as admin; the node, the proxy, the operator and the pods each with
        their own identity (system:node:<name>, system:kube-proxy, ServiceAccounts)."""
        from pairwarden_testbed.localnode import LocalKubelet, LocalServiceProxy
        from pairwarden_testbed.localnode.realnode import LOCAL_NODE, lift_not_ready_taint

        self.kubeconfig = str(real.plane.kubeconfig)
        self._connect()
        self._stack.callback(self._delete_namespace)
        self._install_crd()
        self._install_chart()
        node = str(real.plane.token_kubeconfig(f"node-{LOCAL_NODE}"))
        self.kubelet = LocalKubelet(node, self.namespace, workdir=self.workdir, node=LOCAL_NODE)
        self.kubelet.start()
        self._stack.callback(self.kubelet.stop)
        lift_not_ready_taint(self.api, LOCAL_NODE)  # the node-lifecycle controller's part
        proxy = str(real.plane.token_kubeconfig("kube-proxy"))
        self.proxy = LocalServiceProxy(proxy, self.namespace, endpoint_slices=True)
        self.proxy.start()
        self._stack.callback(self.proxy.stop)
        self.start_operator()

    def _install_chart(self) -> None:
        """The chart's RBAC objects, as `helm install` creates them (as admin); then the
        operator runs as the chart's ServiceAccount (`operator_kubeconfig`)."""
        from kubernetes import utils

        # Without the chart, a rig identity of its own (a superuser), so a fault can still cut
        # the operator alone (inject_fault(user=cluster.operator_user)).
        self.operator_kubeconfig = self.kubeconfig
        self.operator_user = OPERATOR
        if self.real is None:
            self.operator_kubeconfig = str(self.sandbox.kubeconfig_for(OPERATOR))
        if self.chart is None:
            return
        for obj in self.chart.rbac:
            utils.create_from_dict(self.api, obj, namespace=self.namespace)
        account = self.chart.operator_spec.get("serviceAccountName") or "default"
        self.operator_user = f"system:serviceaccount:{self.namespace}:{account}"
        credential = credentials(self.core, self.namespace, self.chart.operator_spec, timeout=60)
        path = self.workdir / "operator.kubeconfig"
        self.operator_kubeconfig = str(write_kubeconfig_as(self.kubeconfig, credential, path))

    def _install_crd(self) -> None:
        """The FailoverPair CRD as a user of Kubernetes < 1.25 installs it (`pairwarden crds
        --without-cel`), unless there already; returns once it is served."""
        from pairwarden.api import crd

        with contextlib.suppress(client.ApiException):  # 409: an earlier scenario's
            client.ApiextensionsV1Api(self.api).create_custom_resource_definition(
                crd.without_cel(crd.build_crd())
            )

        def served() -> bool:
            try:
                self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
            except client.ApiException:
                return False
            return True

        wait_until(served, timeout=60)

    def _delete_namespace(self) -> None:
        """On a real server a namespace outlives the scenario by the namespace controller's
        cleanup; nothing waits for it (each scenario has a namespace of its own). Its pods go
        at once (grace 0): the node's kubelet has stopped, and a pod bound to a node stays
        Terminating until its kubelet confirms, counted against the node's 110 pods; every
        scenario on the real control plane filled the local node after about 40 ("0/1 nodes
        are available: 1 Too many pods"). Deleting the namespace first stops its Jobs from
        making new ones."""
        with contextlib.suppress(client.ApiException):
            self.core.delete_namespace(self.namespace)
        with contextlib.suppress(client.ApiException):
            self.core.delete_collection_namespaced_pod(self.namespace, grace_period_seconds=0)

    def start_operator(self, extra: list[str] | None = None) -> OperatorProcess:
        self.operator = OperatorProcess(
            self.operator_kubeconfig, self.namespace, self.workdir / "operator.log", extra
        )
        self.operator.start()
        self._stack.callback(self.operator.stop)
        return self.operator

    @contextlib.contextmanager
    def api_away(self, pods: Sequence[str] = ("vm-primary", "vm-secondary")) -> Iterator[None]:
        """The API server away for everyone a pair depends on (an upgrade, an etcd leader
        change, an overloaded server): every member pod's link to it cut (their agents'
        requests hang, as in a partition) and the operator stopped (SIGKILL: it writes nothing
        on its way out). The kubelet and kube-proxy stand-ins keep the state they have, as the
        real ones do while the API server is away: the data path needs none of it. On exit
        the links heal and a new operator starts, as after a control-plane upgrade."""
        assert self.operator is not None
        self.operator.stop(signal.SIGKILL)
        links = [self.kubelet.link(pod) for pod in pods]
        for link in links:
            link.cut()
        try:
            yield
        finally:
            for link in links:
                link.heal()
            self.start_operator()

    def stop(self) -> None:
        self._stack.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    # ------------------------------------------------------------------ objects

    def apply_file(self, path: Path, service_account: str | None = None) -> None:
        """Create every object in `path`; its Pods as `service_account` when given, else as
        the account each names. Pods wait for their accounts' tokens: the ServiceAccount
        admission of 1.20 (and of the sandbox) refuses a pod whose account does not exist yet
        or has no token yet."""
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        pods = [d for d in docs if d["kind"] == "Pod"]
        for pod in pods:
            if service_account is not None:
                pod["spec"]["serviceAccountName"] = service_account
        for account in sorted({p["spec"].get("serviceAccountName") or "default" for p in pods}):
            wait_until(partial(self._has_token, account), 90, f"ServiceAccount {account}'s token")
        for doc in docs:
            self.create(doc)

    def create(self, body: dict[str, Any]) -> None:
        kind = body["kind"]
        if kind == "Pod":
            self.core.create_namespaced_pod(self.namespace, body)
        elif kind == "Service":
            self.core.create_namespaced_service(self.namespace, body)
        elif kind == "FailoverPair":
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body
            )
        else:
            raise ValueError(f"LocalCluster.create does not know kind {kind}")

    def start_pair(
        self, manifest: Path = EXAMPLES / "voicemail-pair.yaml", **spec: Any
    ) -> dict[str, Any]:
        """A FailoverPair, then the pods and Service of `manifest` (the example voicemail
        pair's by default) it names. The pair comes first: its members run as the
        ServiceAccount their manifest names, which the operator creates for the pair with a
        Role naming only its Leases (controller/rbac.py) (or the backend's `agent_account`);
        1.20's admission refuses a pod whose account does not exist or has no token yet."""
        pair = failover_pair(**spec)
        self.create(pair)
        account = self.real.agent_account if self.real is not None else None
        self.apply_file(manifest, service_account=account)
        return pair

    def _has_token(self, account: str) -> bool:
        """The account exists and 1.20's token controller (or the sandbox's) gave it its
        token Secret."""
        try:
            found = self.core.read_namespaced_service_account(account, self.namespace)
        except client.ApiException:
            return False
        return bool(found.secrets)

    def pair(self, name: str = "vm") -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return body

    def patch_pair(self, patch: dict[str, Any], name: str = "vm") -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, patch
        )

    def request(self, action: str, name: str = "vm") -> str:
        """What `kubectl pairwarden failover|failback` writes; the request id."""
        request_id = uuid.uuid4().hex[:12]
        annotations = {ANNOTATION_REQUEST: action, ANNOTATION_REQUEST_ID: request_id}
        self.patch_pair({"metadata": {"annotations": annotations}}, name)
        return request_id

    def data_dir(self, pod: str) -> Path:
        """The pod's voicemail data directory (its `data` volume) on this machine."""
        return self.kubelet.pod_dir(pod) / "volumes" / "data"

    def selector(self, service: str = "vm-calls") -> dict[str, str]:
        return dict(self.core.read_namespaced_service(service, self.namespace).spec.selector or {})

    def pod_labels(self, pod: str) -> dict[str, str]:
        return dict(self.core.read_namespaced_pod(pod, self.namespace).metadata.labels or {})

    def events(self, name: str = "vm") -> list[Any]:
        selector = f"involvedObject.name={name}"
        return list(self.core.list_namespaced_event(self.namespace, field_selector=selector).items)

    # ------------------------------------------------------------------ callers

    def service_address(self, service: str = "vm-calls") -> tuple[str, int]:
        spec = self.core.read_namespaced_service(service, self.namespace).spec
        return str(spec.cluster_ip), int(spec.ports[0].port)

    def sip_address(self, service: str = "vm-calls") -> tuple[str, int]:
        """The Service's SIP (UDP) address, where SIP callers dial."""
        spec = self.core.read_namespaced_service(service, self.namespace).spec
        port = next(p.port for p in spec.ports if p.protocol == "UDP")
        return str(spec.cluster_ip), int(port)

    def call(self, service: str = "vm-calls", timeout: float = 0.5) -> str | None:
        """Dial the Service like a caller; the answering pod's name, or None if refused."""
        return place_call(self.service_address(service), "demo", timeout)

    def answering_members(self, name: str = "vm") -> list[Member]:
        """Members whose voicemail process says it answers, asked directly (not via Service)."""
        return [m for m in MEMBERS if self.kubelet_status(f"{name}-{m}").get("answering")]

    def kubelet_status(self, pod: str) -> dict[str, Any]:
        try:
            return self.voicemail_control(pod, "/status", timeout=0.5)
        except OSError:
            return {}

    def voicemail_control(
        self, pod: str, path: str, body: dict[str, Any] | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Call the voicemail process's control port, which listens on its pod's loopback
        (127.0.0.1:8081) so that only the agent beside it orders its role. The local kubelet
        gives each pod a loopback address of its own (`127.0.0.1` in a pod means its podIP),
        so the test, on the same host, reaches it there; on a real node this takes
        `kubectl exec` into the pod. GET without a body, POST with one."""
        import json
        import urllib.request

        ip = self.core.read_namespaced_pod(pod, self.namespace).status.pod_ip
        if not ip:
            raise OSError(f"pod {pod} has no address yet")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{ip}:8081{path}", data=data)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            result: dict[str, Any] = json.loads(response.read() or b"{}")
            return result
