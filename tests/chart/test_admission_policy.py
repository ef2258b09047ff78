"""The chart's ValidatingAdmissionPolicy (templates/admission-policy.yaml), rendered where the
server serves admissionregistration.k8s.io/v1 (the sandbox does, as 1.30+ does) and evaluated
here with cel-python as kube-apiserver evaluates it: matchConstraints, matchConditions, lazy
variables, every validation. No 1.30 server runs on these machines, so this is the policy's
only test of behaviour; kube-apiserver's CEL has more functions, and the expressions use none
of them (has, all, in, size, startsWith, ==).

Two sides, each with objects the world produces: everything the operator's own code sends
(controller/jobs.py, pods.py, services.py, leases.py, netpol.py, secrets.py, rbac.py) is
admitted, since a refusal there stops the operator; every escalation of issue 25 and its
neighbours, sent with the operator's token, is refused; the same from another account is not
this policy's business."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import celpy
import pytest

from pairwarden.controller import jobs, leases, netpol, pods, rbac, secrets, services

if TYPE_CHECKING:
    from conftest import ChartCluster

NS = "pwdef-ns"  # stands for any namespace: the policy names none
OWNER = {"apiVersion": "pairwarden.io/v1", "kind": "FailoverPair", "name": "vm", "uid": "u-1"}
RESOURCES = {  # kind -> (group, plural)
    "Job": ("batch", "jobs"),
    "Pod": ("", "pods"),
    "Service": ("", "services"),
    "Secret": ("", "secrets"),
    "Lease": ("coordination.k8s.io", "leases"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
}
_ENV = celpy.Environment()


class PolicyError(AssertionError):
    """An expression failed to evaluate: kube-apiserver refuses the request (failurePolicy
    Fail), for the operator's own requests too."""


def _eval(expression: str, activation: dict[str, Any]) -> Any:
    """The expression's value, or the CELEvalError it ended in."""
    program = _ENV.program(_ENV.compile(expression))
    try:
        return program.evaluate(activation)
    except celpy.CELEvalError as error:
        return error


def refusals(
    policy: dict[str, Any],
    user: str,
    operation: str,
    new: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
) -> list[str]:
    """The messages of the validations that refuse this request ([] admitted, also when the
    policy does not match it). Raises PolicyError when an expression errs."""
    kind = (new or old or {})["kind"]
    group, plural = RESOURCES[kind]
    spec = policy["spec"]
    if not any(
        group in rule["apiGroups"]
        and plural in rule["resources"]
        and operation in rule["operations"]
        for rule in spec["matchConstraints"]["resourceRules"]
    ):
        return []
    request = {
        "operation": operation,
        "resource": {"group": group, "version": "v1", "resource": plural},
        "userInfo": {"username": user},
    }
    activation: dict[str, Any] = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(new),
        "oldObject": celpy.json_to_cel(old),
    }
    if not all(_eval(c["expression"], activation) for c in spec.get("matchConditions", [])):
        return []
    variables = celpy.celtypes.MapType()
    for variable in spec.get("variables", []):  # lazy in kube-apiserver: an error only if read
        result = _eval(variable["expression"], {**activation, "variables": variables})
        if not isinstance(result, celpy.CELEvalError):
            variables[celpy.celtypes.StringType(variable["name"])] = result
    activation["variables"] = variables
    refused = []
    for validation in spec["validations"]:
        result = _eval(validation["expression"], activation)
        if isinstance(result, celpy.CELEvalError):
            raise PolicyError(f"{validation['expression'][:80]}...: {result}")
        if not result:
            refused.append(str(validation["message"]))
    return refused


@pytest.fixture(scope="module")
def policy(chart_cluster: ChartCluster) -> dict[str, Any]:
    rendered = chart_cluster.render("defaults")
    (found,) = rendered.of_kind("ValidatingAdmissionPolicy")
    (binding,) = rendered.of_kind("ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {
        "policyName": found["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    assert found["spec"]["failurePolicy"] == "Fail"
    return found


OPERATOR = "system:serviceaccount:pairwarden:pwdef-pairwarden-operator"
IMAGE, ACCOUNT = "pairwarden/agent:0.1.0", "pwdef-pairwarden-replication"  # the chart's args


def _args(rendered_args: list[str], flag: str) -> str:
    return next(a.split("=", 1)[1] for a in rendered_args if a.startswith(f"{flag}="))


def test_the_policy_names_the_images_and_account_the_operator_is_told(
    chart_cluster: ChartCluster,
) -> None:
    """The Jobs the operator makes carry --replication-image and --replication-service-account:
    the policy must name the same, or it refuses every replication Job."""
    rendered = chart_cluster.render("defaults")
    args = rendered.one("StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert (_args(args, "--replication-image"), _args(args, "--replication-service-account")) == (
        IMAGE,
        ACCOUNT,
    )
    assert rendered.one("ServiceAccount", "pwdef-pairwarden-operator")


def _job(**changes: Any) -> dict[str, Any]:
    job = jobs.ReplicationJob(
        namespace=NS,
        pair="vm",
        source_url="http://10.0.0.1:8082",
        target_url="http://10.0.0.2:8082",
        secret_name=secrets.token_secret_name("vm"),
        image=IMAGE,
        owner=OWNER,
        service_account=ACCOUNT,
        epoch=3,
    )
    return jobs.job_body("vm-replicate-abc123", job)


def _pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def _member_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "vm-0", "namespace": NS, "labels": {"app": "vm"}},
        "spec": {"containers": [{"name": "voicemail", "image": "pairwarden/voicemail:0.1.0"}]},
    }


def _service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "vm", "namespace": NS},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "selector": {"app": "vm"},
            "ports": [{"port": 5060, "protocol": "UDP"}],
        },
    }


def _merged(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    target = out
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return out


def _without(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    target = out
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return out


def _agent_objects() -> dict[str, dict[str, Any]]:
    objects = {o["kind"]: o for o in rbac.agent_objects("vm", OWNER)}
    for subject in objects["RoleBinding"]["subjects"]:
        subject["namespace"] = NS  # as ensure_agent_rbac sends it
    for obj in objects.values():
        obj["metadata"]["namespace"] = NS
    return objects


def _operators_own_requests() -> dict[str, tuple[str, dict[str, Any] | None, Any]]:
    """(operation, object, oldObject) of every write the operator's code makes."""
    job = _job()
    pod = _member_pod()
    labelled = copy.deepcopy(pod)
    labelled["metadata"]["labels"].update(pods.labels_for("vm", "primary", True))
    relabelled = copy.deepcopy(labelled)
    relabelled["metadata"]["labels"].update(pods.labels_for("vm", "primary", False))
    service = _service()
    pointed = copy.deepcopy(service)
    pointed["spec"]["selector"].update(services.selector_for("vm", "primary"))
    lease = leases._lease("vm-primary", "vm", "primary", 40, OWNER)
    renewed = _merged(lease, ("spec", "holderIdentity"), "vm-0")
    settings = netpol.PolicySettings()
    policy = netpol.policy_body("vm", [{"port": 5060, "protocol": "UDP"}], settings, OWNER)
    agent = _agent_objects()
    return {
        "replication Job": ("CREATE", job, None),
        "delete a finished replication Job": ("DELETE", None, job),
        "label a member pod": ("UPDATE", labelled, pod),
        "move a member's role label": ("UPDATE", relabelled, labelled),
        "point the Service at the active member": ("UPDATE", pointed, service),
        "create a member Lease": ("CREATE", lease, None),
        "write a pair's Lease": ("UPDATE", renewed, lease),
        "create the pair's NetworkPolicy": ("CREATE", policy, None),
        "patch the pair's NetworkPolicy": ("UPDATE", policy, policy),
        "create the replication token": ("CREATE", secrets.token_body("vm", OWNER), None),
        "the agents' Role": ("CREATE", agent["Role"], None),
        "the agents' RoleBinding": ("CREATE", agent["RoleBinding"], None),
    }


@pytest.mark.parametrize("name", sorted(_operators_own_requests()))
def test_every_write_of_the_operators_own_code_is_admitted(
    policy: dict[str, Any], name: str
) -> None:
    operation, new, old = _operators_own_requests()[name]
    assert refusals(policy, OPERATOR, operation, new, old) == []


def _attacks() -> dict[str, tuple[str, dict[str, Any] | None, Any]]:
    job = _job()
    spec = ("spec", "template", "spec")
    container = _pod_spec(job)["containers"][0]
    pod = _member_pod()
    service = _service()
    foreign_lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
        "spec": {"holderIdentity": "master-1"},
    }
    agent = _agent_objects()
    role, binding = agent["Role"], agent["RoleBinding"]
    role_ref = ("roleRef",)
    jobs_create = [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]
    lease_rule = copy.deepcopy(role["rules"][0])
    return {
        "Job as clusterrole-aggregation-controller": (
            "CREATE",
            _merged(job, (*spec, "serviceAccountName"), "clusterrole-aggregation-controller"),
            None,
        ),
        "Job as the namespace's default account": (
            "CREATE",
            _merged(job, (*spec, "serviceAccountName"), "default"),
            None,
        ),
        "Job with no account named": ("CREATE", _without(job, (*spec, "serviceAccountName")), None),
        "Job with another image": (
            "CREATE",
            _merged(job, (*spec, "containers"), [{**container, "image": "bitnami/kubectl"}]),
            None,
        ),
        "Job running a shell in the replication image": (
            "CREATE",
            _merged(job, (*spec, "containers"), [{**container, "command": ["sh", "-c", "id"]}]),
            None,
        ),
        "Job mounting the node's disk": (
            "CREATE",
            _merged(job, (*spec, "volumes"), [{"name": "h", "hostPath": {"path": "/"}}]),
            None,
        ),
        "Job mounting another Secret (its replicate sends it as a bearer token)": (
            "CREATE",
            _merged(job, (*spec, "volumes"), [{"name": "token", "secret": {"secretName": "db"}}]),
            None,
        ),
        "Job reading a Secret into its environment": (
            "CREATE",
            _merged(
                job,
                (*spec, "containers"),
                [{**container, "envFrom": [{"secretRef": {"name": "db"}}]}],
            ),
            None,
        ),
        "Job privileged": (
            "CREATE",
            _merged(
                job,
                (*spec, "containers"),
                [
                    {
                        **container,
                        "securityContext": {**container["securityContext"], "privileged": True},
                    }
                ],
            ),
            None,
        ),
        "Job with an init container": (
            "CREATE",
            _merged(job, (*spec, "initContainers"), [{"name": "i", "image": "busybox"}]),
            None,
        ),
        "Job on the host network": ("CREATE", _merged(job, (*spec, "hostNetwork"), True), None),
        "Job with the API token mounted": (
            "CREATE",
            _merged(job, (*spec, "automountServiceAccountToken"), True),
            None,
        ),
        "Job updated": ("UPDATE", job, job),
        "delete a foreign Job": (
            "DELETE",
            None,
            _merged(job, ("metadata", "labels"), {"app": "backup"}),
        ),
        "pod image": (
            "UPDATE",
            _merged(pod, ("spec", "containers"), [{"name": "voicemail", "image": "evil"}]),
            pod,
        ),
        "pod label outside pairwarden.io/": (
            "UPDATE",
            _merged(pod, ("metadata", "labels"), {"app": "other"}),
            pod,
        ),
        "pod label removed": ("UPDATE", _merged(pod, ("metadata", "labels"), {}), pod),
        "pod owned by a made-up owner (the garbage collector deletes it)": (
            "UPDATE",
            _merged(pod, ("metadata", "ownerReferences"), [OWNER]),
            pod,
        ),
        "pod created": ("CREATE", pod, None),
        "Service externalIPs (CVE-2020-8554)": (
            "UPDATE",
            _merged(service, ("spec", "externalIPs"), ["8.8.8.8"]),
            service,
        ),
        "Service ports": (
            "UPDATE",
            _merged(service, ("spec", "ports"), [{"port": 22, "protocol": "TCP"}]),
            service,
        ),
        "Service created": ("CREATE", service, None),
        "Lease in kube-system, unlabelled": ("CREATE", foreign_lease, None),
        "a controller's leader Lease taken by labelling it": (
            "UPDATE",
            _merged(foreign_lease, ("metadata", "labels"), {"pairwarden.io/pair": "x"}),
            foreign_lease,
        ),
        "ServiceAccount token Secret": (
            "CREATE",
            _merged(
                _merged(secrets.token_body("vm", OWNER), ("type",), SA_TOKEN),
                ("metadata", "annotations"),
                {"kubernetes.io/service-account.name": "clusterrole-aggregation-controller"},
            ),
            None,
        ),
        "Secret updated": (
            "UPDATE",
            secrets.token_body("vm", None),
            secrets.token_body("vm", None),
        ),
        "NetworkPolicy over kube-system's pods": (
            "CREATE",
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "deny", "labels": {"pairwarden.io/pair": "x"}},
                "spec": {"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
            },
            None,
        ),
        "Role granting jobs create": ("CREATE", _merged(role, ("rules",), jobs_create), None),
        "Role on every Lease (no resourceNames)": (
            "CREATE",
            _merged(
                role, ("rules",), [{k: v for k, v in lease_rule.items() if k != "resourceNames"}]
            ),
            None,
        ),
        "Role letting agents create Leases": (
            "CREATE",
            _merged(role, ("rules",), [{**lease_rule, "verbs": ["create"]}]),
            None,
        ),
        "Role writing FailoverPairs": (
            "CREATE",
            _merged(
                role,
                ("rules",),
                [
                    {
                        "apiGroups": ["pairwarden.io"],
                        "resources": ["failoverpairs"],
                        "resourceNames": ["vm"],
                        "verbs": ["update"],
                    }
                ],
            ),
            None,
        ),
        "RoleBinding to cluster-admin": (
            "CREATE",
            _merged(
                binding,
                role_ref,
                {**binding["roleRef"], "kind": "ClusterRole", "name": "cluster-admin"},
            ),
            None,
        ),
        "RoleBinding of the agents' Role to default": (
            "CREATE",
            _merged(
                binding,
                ("subjects",),
                [{"kind": "ServiceAccount", "name": "default", "namespace": NS}],
            ),
            None,
        ),
        "RoleBinding of the agents' Role to an account elsewhere": (
            "CREATE",
            _merged(
                binding,
                ("subjects",),
                [{"kind": "ServiceAccount", "name": "vm-agent", "namespace": "kube-system"}],
            ),
            None,
        ),
        "RoleBinding of the operator's own Role": (
            "CREATE",
            _merged(
                _merged(binding, ("metadata", "name"), "pwdef-pairwarden-operator"),
                role_ref,
                {**binding["roleRef"], "name": "pwdef-pairwarden-operator"},
            ),
            None,
        ),
        "RoleBinding to a user": (
            "CREATE",
            _merged(binding, ("subjects",), [{"kind": "User", "name": "vm-agent"}]),
            None,
        ),
    }


SA_TOKEN = "kubernetes.io/service-account-token"


@pytest.mark.parametrize("name", sorted(_attacks()))
def test_every_escalation_with_the_operators_token_is_refused(
    policy: dict[str, Any], name: str
) -> None:
    operation, new, old = _attacks()[name]
    assert refusals(policy, OPERATOR, operation, new, old), f"{name} was admitted"


@pytest.mark.parametrize("name", sorted(_attacks()))
def test_other_accounts_are_not_this_policys_business(policy: dict[str, Any], name: str) -> None:
    operation, new, old = _attacks()[name]
    admin = "system:serviceaccount:pairwarden:pwdef-pairwarden-operator-not"
    assert refusals(policy, admin, operation, new, old) == []


def test_the_policy_is_rendered_only_where_the_server_serves_it(
    chart_cluster: ChartCluster,
) -> None:
    """The sandbox lists admissionregistration.k8s.io/v1 policies (1.30+): one per release
    there, none when turned off (`rbac.admissionPolicy: false`)."""
    assert chart_cluster.serves("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy")
    for combo in ("defaults", "clusterwide", "namespaced"):
        assert len(chart_cluster.render(combo).of_kind("ValidatingAdmissionPolicy")) == 1
    single = chart_cluster.render("single")
    assert single.values["rbac"] == {"admissionPolicy": False}
    assert single.of_kind("ValidatingAdmissionPolicy") == []
    assert single.of_kind("ValidatingAdmissionPolicyBinding") == []
