"""The pair of examples/ on the real node (issue 19), installed as users install it, and
what the scenarios of tests/realnode ask of it.

The operator runs from its own image, as the chart's StatefulSet with the chart's RBAC, and
the two members of examples/voicemail-pair.yaml (voicemail + agent, from the project's images)
run as pods on the node: containerd and runc run them, the bridge CNI wires them, the real
EndpointSlice controller and kube-proxy (iptables) route the Service to the active one. The
operator is the image rather than a local process because that is what users run: its
in-cluster configuration, its ServiceAccount token and the `kubernetes` Service are exercised
only that way (the local-process operator is covered on the sandbox and the 1.20 control
plane by e2e/).

The chart is installed as users install it, `helm install` through Helm's own library
(helm-sdkpy, the quickstart's helm_step.py), and upgraded the same way
(tests/realnode/test_operator_life.py)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from e2e.sippcall import Pbx
from kubernetes import client, dynamic
from kubernetes.dynamic.exceptions import ConflictError

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.controller.rbac import agent_account
from pairwarden.protocol import (
    ANNOTATION_REQUEST,
    ANNOTATION_REQUEST_ID,
    LABEL_MEMBER,
    LABEL_ROLE,
    MEMBERS,
)
from pairwarden_testbed.localcluster import place_call
from pairwarden_testbed.node import BRIDGE_IP
from pairwarden_testbed.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).with_name("kubectl"))
HELM_STEP = ROOT / "tests" / "quickstart" / "helm_step.py"
RELEASE = "pairwarden"  # the chart's fullname is then "pairwarden"
# A 5 s window (500 ms x 10): crash and manual failovers do not wait for it (the agent
# publishes a voicemail exit at once), a partition does. 2 s (200 ms x 10) was tripped by
# accident at load 20 (an agent's renewal through a loaded API server): the pair flapped.
HEARTBEAT = {"intervalMs": 500, "missedBeforeFailover": 10, "renewalsPerWindow": 2}


def other(member: str) -> str:
    return "secondary" if member == "primary" else "primary"


def chart_values(voice: str, replicas: int = 1, *more: str) -> list[str]:
    """`helm install|upgrade` options: `replicas` operator replicas watching the pair's
    namespace, and `more` (`--set` words: a rolling upgrade's changed value)."""
    sets = [
        f"operator.replicas={replicas}",
        "operator.watch.allNamespaces=false",
        f"operator.watch.namespaces={{{voice}}}",
        f"memberNamespaces={{{voice}}}",
        *more,
    ]
    return [word for value in sets for word in ("--set", value)]


def helm(kubeconfig: Path, *words: str) -> dict[str, Any]:
    """One `helm` command (install, upgrade, uninstall) through helm-sdkpy; the release."""
    argv = [sys.executable, str(HELM_STEP), str(kubeconfig), *words]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"helm {' '.join(words)}:\n{done.stdout}\n{done.stderr}"
    release: dict[str, Any] = json.loads(done.stdout)
    return release


def members_from_example(path: Path, agent_image: str = "") -> list[dict[str, Any]]:
    """examples/voicemail-pair.yaml as it is, but for the message store (a directory of the
    machine, hostPath, there; an emptyDir here, so the test leaves nothing on the host) and,
    given `agent_image`, the agent sidecar's image (the release's, as the chart's NOTES name
    it, where the example has the build's `:dev`). The agents' ServiceAccounts are set to the
    ones the operator makes per member (`vm-agent-primary`, `vm-agent-secondary`, each with
    its own Role), which the example names too: a renamed pair stays served."""
    objects = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for obj in objects:
        if obj["kind"] == "Pod":
            member = obj["metadata"]["labels"]["member"]
            obj["spec"]["serviceAccountName"] = agent_account("vm", member)
            for container in obj["spec"]["containers"]:
                if agent_image and container["name"] == "agent":
                    container["image"] = agent_image
        for volume in obj.get("spec", {}).get("volumes", []):
            if "hostPath" in volume:
                del volume["hostPath"]
                volume["emptyDir"] = {}
    return objects


def pair_from_example(path: Path) -> dict[str, Any]:
    """examples/failoverpair.yaml with a short heartbeat, manual failback, no CPU rule and
    replication rare enough that its Jobs stay out of the measurements."""
    pair: dict[str, Any] = yaml.safe_load(path.read_text())
    spec = pair["spec"]
    spec["heartbeat"] = HEARTBEAT
    spec["failback"] = {"type": "Manual"}
    spec["excessiveCpu"] = {"enabled": False}
    spec["flapDamping"] = {"maxTransitions": 100, "periodSeconds": 3600}
    spec["replication"].update(fileIntervalSeconds=3600, databaseIntervalSeconds=3600)
    return pair


@dataclass
class Pair:
    """The pair `vm` of namespace `namespace` on the real node, and its callers."""

    admin: client.ApiClient
    node: Any
    namespace: str
    workdir: Path
    system: str = ""  # the operator's namespace (the chart's release)
    agent_image: str = ""  # the members' agent sidecar image (members_from_example)
    chart: Path = ROOT / "charts" / "pairwarden"  # what `helm install` installed (upgrade it)
    installed: dict[str, str] = field(default_factory=dict)  # chart_images at install
    core: client.CoreV1Api = field(init=False)
    custom: client.CustomObjectsApi = field(init=False)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.admin)
        self.custom = client.CustomObjectsApi(self.admin)

    def status(self) -> dict[str, Any]:
        pair = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, "vm"
        )
        return dict(pair.get("status") or {})

    def routed(self) -> str | None:
        spec = self.core.read_namespaced_service("vm-calls", self.namespace).spec
        member = (spec.selector or {}).get(LABEL_MEMBER)
        return member if member in ("primary", "secondary") else None

    def sip_address(self) -> tuple[str, int]:
        spec = self.core.read_namespaced_service("vm-calls", self.namespace).spec
        port = next(p.port for p in spec.ports if p.protocol == "UDP")
        return str(spec.cluster_ip), int(port)

    def caller(self, fixed_port: bool) -> Pbx:
        # From the bridge's address: the pods answer it directly (the BYE goes to the 200's
        # Contact, the pod's own address).
        return Pbx(self.sip_address(), self.workdir, local_ip=BRIDGE_IP, fixed_port=fixed_port)

    def both_up(self) -> bool:
        members = self.status().get("members") or {}
        return all((members.get(m) or {}).get("serviceUp") for m in ("primary", "secondary"))

    def request(self, action: str) -> str:
        """What `kubectl pairwarden failover|failback` writes; the request id."""
        request_id = uuid.uuid4().hex[:12]
        annotations = {ANNOTATION_REQUEST: action, ANNOTATION_REQUEST_ID: request_id}
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            "vm",
            {"metadata": {"annotations": annotations}},
        )
        return request_id

    def pod(self, member: str) -> Any:
        return self.core.read_namespaced_pod(f"vm-{member}", self.namespace)

    def container_pid(self, member: str, container: str) -> int:
        """The host pid of a member's running container (containerd's task)."""
        statuses = self.pod(member).status.container_statuses or []
        (state,) = [c for c in statuses if c.name == container]
        return int(self.node.container_pid(state.container_id))

    def data_dir(self, member: str) -> Path:
        """The member's --data-dir (an emptyDir) as the host sees it, through its agent's
        mount namespace."""
        return Path(f"/proc/{self.container_pid(member, 'agent')}/root/var/lib/voicemail")

    def epoch(self) -> int:
        return int(self.status().get("epoch") or 0)

    def next_transition(self, after_epoch: int, away_from: str, timeout: float) -> dict[str, Any]:
        """The role change away from `away_from` that the status records beyond `after_epoch`
        (a move by choice takes two epochs, the revoke and the grant; only the grant is a
        transition; the pair's first grant may be recorded a moment after its epoch)."""

        def recorded() -> dict[str, Any] | None:
            last = self.status().get("lastTransition") or {}
            ours = int(last.get("epoch") or 0) > after_epoch and last.get("from") == away_from
            return dict(last) if ours else None

        found: dict[str, Any] = eventually(recorded, timeout, "a recorded transition", poll=0.1)
        return found

    def answering(self) -> list[str]:
        """Members whose voicemail answers a call placed to its own pod address (the line
        protocol on 5070), not through the Service: exactly one when the pair is whole. A member
        whose pod is deleted (a scenario deletes it) answers nothing."""
        found = []
        for member in MEMBERS:
            try:
                ip = self.pod(member).status.pod_ip
            except client.ApiException as error:
                if error.status == 404:  # deleted: answers nobody
                    continue
                raise
            if ip and answered_by(ip) == f"vm-{member}":
                found.append(member)
        return found

    def kubectl(self, *args: str) -> list[str]:
        """A kubectl command line on the pair's namespace, as the admin."""
        kubeconfig = str(self.node.cp.kubeconfig)
        return [KUBECTL, "--kubeconfig", kubeconfig, "-n", self.namespace, *args]

    def delete_pod(self, member: str) -> None:
        """`kubectl delete pod` as a user does it: the pod's own grace period (SIGTERM to
        both containers), not waiting for the pod to go."""
        command = self.kubectl("delete", "pod", f"vm-{member}", "--wait=false")
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def pod_gone(self, member: str) -> bool:
        try:
            self.pod(member)
        except client.ApiException as error:
            return error.status == 404
        return False

    def recreate(self, member: str) -> None:
        """The member's pod as the example has it, as its owner would make it again (the
        example's pods have none)."""
        manifest = [
            m
            for m in members_from_example(
                ROOT / "examples" / "voicemail-pair.yaml", self.agent_image
            )
            if m["metadata"]["name"] == f"vm-{member}"
        ]
        create_all(self.admin, manifest, self.namespace)

    def member_up(self, member: str) -> bool:
        return bool(((self.status().get("members") or {}).get(member) or {}).get("serviceUp"))

    def serving(self, member: str) -> bool:
        """Service, status, pod labels and the voicemail processes all name `member`."""
        return (
            self.routed() == member
            and self.status().get("activeMember") == member
            and (self.pod(member).metadata.labels or {}).get(LABEL_ROLE) == "active"
            and self.answering() == [member]
        )

    def standby(self, member: str) -> bool:
        """`member` runs, reports its voicemail up, and is the pair's standby."""
        labels = self.pod(member).metadata.labels or {}
        return (
            self.member_up(member)
            and labels.get(LABEL_ROLE) == "standby"
            and self.status().get("activeMember") == other(member)
        )


def create_all(admin: client.ApiClient, objects: list[dict[str, Any]], namespace: str) -> None:
    """Create objects in order; CRDs first, each Established before anything uses it."""
    dyn = dynamic.DynamicClient(admin)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    for crd in crds:
        # Cluster-wide objects may be there from an earlier session (PAIRWARDEN_REAL_NODE_DIR).
        with contextlib.suppress(ConflictError):
            dyn.resources.get(api_version=crd["apiVersion"], kind=crd["kind"]).create(body=crd)
    for crd in crds:
        crd_established(admin, crd["metadata"]["name"])
    dyn = dynamic.DynamicClient(admin)  # discovery again, with the CRDs
    for obj in objects:
        if obj["kind"] == "CustomResourceDefinition":
            continue
        resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        if resource.namespaced:
            resource.create(body=obj, namespace=obj["metadata"].get("namespace", namespace))
        else:
            try:
                resource.create(body=obj)
            except ConflictError:  # an earlier session's (its binding names its namespace)
                resource.delete(name=obj["metadata"]["name"])
                resource.create(body=obj)


def crd_established(admin: client.ApiClient, name: str) -> None:
    ext = client.ApiextensionsV1Api(admin)

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    eventually(
        established, 60, f"CRD {name} Established", tolerate=(client.ApiException,), poll=0.2
    )


def pod_ready(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        status = core.read_namespaced_pod(name, namespace).status
    except client.ApiException:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def answered_by(ip: str, timeout: float = 5.0) -> str | None:
    """Place one call on the line protocol at `ip`:5070; the pod that answered, or None
    (refused as standby, or no answer)."""
    return place_call((ip, 5070), "realnode", timeout)


def chart_images(apps: client.AppsV1Api, namespace: str) -> dict[str, str]:
    """The operator and agent images the installed chart names: the operator's container,
    and its --replication-image (rendered from image.agent, as the NOTES name the sidecar's)."""
    operator = apps.read_namespaced_stateful_set(f"{RELEASE}-operator", namespace)
    (container,) = [c for c in operator.spec.template.spec.containers if c.name == "operator"]
    flag = "--replication-image="
    (agent,) = [a.removeprefix(flag) for a in container.args or [] if a.startswith(flag)]
    return {"operator": str(container.image), "agent": str(agent)}


def install(
    node: Any,
    admin: client.ApiClient,
    namespaces: Callable[[str], str],
    workdir: Path,
    chart: Path = ROOT / "charts" / "pairwarden",
) -> Pair:
    """The chart (helm install; a release's packaged chart, or the source tree's), the pair
    and its two members, their agents from the image the chart names; returns once the
    Service is routed and both voicemail processes are up."""
    core = client.CoreV1Api(admin)
    system, voice = namespaces("pw-system"), namespaces("voice")
    t0 = time.monotonic()
    words = chart_values(voice)
    helm(node.cp.kubeconfig, "install", RELEASE, str(chart), "--namespace", system, *words)
    installed = chart_images(client.AppsV1Api(admin), system)
    crd_established(admin, f"{PLURAL}.{GROUP}")
    operator = f"{RELEASE}-operator-0"
    eventually(lambda: pod_ready(core, system, operator), 180, "the operator pod Ready", poll=0.5)
    t_operator = time.monotonic() - t0
    # The pair first: the operator makes its agents' ServiceAccounts, which the pods name.
    create_all(admin, [pair_from_example(ROOT / "examples" / "failoverpair.yaml")], voice)
    for member in MEMBERS:
        eventually(
            lambda m=member: core.read_namespaced_service_account(agent_account("vm", m), voice),
            60,
            f"the {member}'s agent ServiceAccount",
            tolerate=(client.ApiException,),
            poll=0.2,
        )
    example = ROOT / "examples" / "voicemail-pair.yaml"
    create_all(admin, members_from_example(example, installed["agent"]), voice)
    (workdir / "sipp").mkdir()
    p = Pair(admin, node, voice, workdir / "sipp", system, installed["agent"], chart, installed)
    eventually(p.routed, 180, "the Service routed to a member", poll=0.5)
    eventually(p.both_up, 120, "both members' voicemail up", poll=0.5)
    print(
        f"real node: operator Ready {t_operator:.1f}s after install, pair whole "
        f"{time.monotonic() - t0:.1f}s after install"
    )
    return p
