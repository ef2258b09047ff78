"""The chart rendered by a real Helm install into the sandbox, for several values
combinations: every object valid for Kubernetes 1.33, read back as created, and shaped as the
operator needs (peering priorities, probes, hardening, scope)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jsonschema
import kubernetes_validate
import pytest

if TYPE_CHECKING:
    from conftest import ChartCluster, Rendered

K8S_VERSION = "1.33.0"  # kubernetes-validate schemas checked against
MONITORING = "monitoring.coreos.com/v1"
_DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": _STRINGS},
    "required": ["matchLabels"],
}
_NAMESPACE_SELECTOR = {
    "type": "object",
    "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}},
    "additionalProperties": False,
}
_ENDPOINTS = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "port": {"type": "string"},
            "path": {"type": "string"},
            "interval": _DURATION,
            "scrapeTimeout": _DURATION,
        },
    },
}
# The fields of the Prometheus Operator's CRDs that the chart uses, as that CRD declares them
# (its schema is not in kubernetes-validate, and the sandbox holds a schemaless stand-in).
MONITORING_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["selector", "endpoints"],
        "additionalProperties": False,
        "properties": {
            "namespaceSelector": _NAMESPACE_SELECTOR,
            "selector": _SELECTOR,
            "endpoints": _ENDPOINTS,
        },
    },
    "PodMonitor": {
        "type": "object",
        "required": ["selector", "podMetricsEndpoints"],
        "additionalProperties": False,
        "properties": {
            "namespaceSelector": _NAMESPACE_SELECTOR,
            "selector": {
                "type": "object",
                "properties": {
                    "matchLabels": _STRINGS,
                    "matchExpressions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["key", "operator"],
                            "properties": {
                                "key": {"type": "string"},
                                "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                                "values": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                },
                "additionalProperties": False,
            },
            "podMetricsEndpoints": _ENDPOINTS,
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["groups"],
        "additionalProperties": False,
        "properties": {
            "groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "rules"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "rules": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["alert", "expr"],
                                "additionalProperties": False,
                                "properties": {
                                    "alert": {"type": "string"},
                                    "expr": {"type": "string", "minLength": 1},
                                    "for": _DURATION,
                                    "labels": _STRINGS,
                                    "annotations": _STRINGS,
                                },
                            },
                        },
                    },
                },
            }
        },
    },
}
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def _operator(rendered: Rendered) -> dict[str, Any]:
    return rendered.one("StatefulSet")


def test_every_object_is_valid_for_kubernetes_1_33(rendered: Rendered) -> None:
    assert rendered.objects
    for obj in rendered.objects:
        if obj["apiVersion"] == MONITORING:
            jsonschema.validate(obj["spec"], MONITORING_SCHEMAS[obj["kind"]])
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_every_object_carries_the_standard_labels(rendered: Rendered) -> None:
    for obj in rendered.objects:
        labels = obj["metadata"].get("labels", {})
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{obj['kind']} {obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == rendered.release


def test_every_object_was_created_as_rendered(
    rendered: Rendered, chart_cluster: ChartCluster
) -> None:
    for obj in rendered.objects:
        got = chart_cluster.read_back(obj, rendered.namespace)
        assert got["metadata"]["labels"] == obj["metadata"]["labels"]
        for key in ("spec", "rules", "roleRef", "subjects", "automountServiceAccountToken"):
            if key in obj:  # the server may add defaults, never drop or change what was sent
                assert _contains(got[key], obj[key]), f"{obj['kind']}.{key} changed"


def _contains(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(
            k in got and _contains(got[k], v) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(_contains(g, w) for g, w in zip(got, want, strict=True))
        )
    return bool(got == want)


def test_operator_pods_are_hardened_and_probed(rendered: Rendered) -> None:
    pod = _operator(rendered)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert "--health-port=8081" in container["args"]
    assert container["ports"][0] == {"name": "metrics", "containerPort": 8080, "protocol": "TCP"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == 8081
    assert container["resources"]["requests"] and container["resources"]["limits"]
    fields = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert fields["POD_NAME"] == "metadata.name"
    assert fields["POD_NAMESPACE"] == "metadata.namespace"
    assert fields["POD_INDEX"] == "metadata.labels['apps.kubernetes.io/pod-index']"


def test_replicas_get_distinct_peering_priorities(rendered: Rendered) -> None:
    """kopf pauses every replica when two share a priority: each takes its ordinal."""
    sts = _operator(rendered)
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "operator"
    assert "--priority=$(POD_INDEX)" in args
    assert "--peering=pairwarden" in args
    expected = rendered.values.get("operator", {}).get("replicas", 2)
    assert sts["spec"]["replicas"] == expected
    pdbs = rendered.of_kind("PodDisruptionBudget")
    assert len(pdbs) == (1 if expected > 1 else 0)


def test_metrics_service_selects_the_operator_pods(rendered: Rendered) -> None:
    service = rendered.one("Service")
    pod_labels = _operator(rendered)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def _expected_image(rendered: Rendered, which: str) -> str:
    """[registry/]repository:tag[@digest], as values.yaml documents it."""
    values = rendered.values.get("image", {})
    registry = values.get("registry", "").rstrip("/")
    mine = values.get(which, {})
    name = f"pairwarden/{which}:{mine.get('tag') or '0.1.0'}"
    digest = f"@{mine['digest']}" if mine.get("digest") else ""
    return f"{registry}/{name}{digest}" if registry else name + digest


def test_images_default_to_the_app_version(rendered: Rendered) -> None:
    image = _operator(rendered)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == _expected_image(rendered, "operator")
    assert _expected_image(rendered, "agent") in rendered.notes
    assert _expected_image(rendered, "voicemail") in rendered.notes
    if rendered.values.get("image", {}).get("registry"):  # a mirror, and a pinned digest
        assert image == "registry.example.com/mirror/pairwarden/operator:1.2.3"
        assert _expected_image(rendered, "agent").endswith("agent:0.1.0@sha256:" + "ab" * 32)


def test_scope_follows_the_watch_values(rendered: Rendered) -> None:
    args = _operator(rendered)["spec"]["template"]["spec"]["containers"][0]["args"]
    watch = rendered.values.get("operator", {}).get("watch", {})
    if watch.get("allNamespaces", False):
        assert "--all-namespaces" in args
        assert not [a for a in args if a.startswith("--namespace")]
    else:
        members = rendered.values.get("memberNamespaces")
        served = watch.get("namespaces") or members or [rendered.namespace]
        assert [a for a in args if a.startswith("--namespace=")] == [
            f"--namespace={ns}" for ns in served
        ]
        assert "--all-namespaces" not in args


def test_monitoring_objects_only_when_enabled(rendered: Rendered) -> None:
    values = rendered.values
    monitors = rendered.of_kind("ServiceMonitor")
    rules = rendered.of_kind("PrometheusRule")
    pod_monitors = rendered.of_kind("PodMonitor")
    assert len(monitors) == int(values.get("serviceMonitor", {}).get("enabled", False))
    assert len(rules) == int(values.get("prometheusRule", {}).get("enabled", False))
    assert len(pod_monitors) == int(values.get("podMonitor", {}).get("enabled", False))
    for obj in monitors + rules + pod_monitors:
        assert obj["metadata"]["labels"]["release"] == "prom"


def test_alertmanager_receiver_only_when_enabled(rendered: Rendered) -> None:
    receiver = rendered.values.get("operator", {}).get("alertmanager", {})
    pod = _operator(rendered)["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    ports = [p["name"] for p in rendered.one("Service")["spec"]["ports"]]
    if not receiver.get("enabled"):
        assert not [a for a in args if a.startswith("--alertmanager")]
        assert ports == ["metrics"]
        return
    assert "--alertmanager-port=9095" in args
    assert "--alertmanager-token-file=/etc/pairwarden/alertmanager/t" in args
    assert ports == ["metrics", "alertmanager"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["alertmanager-token"]["secret"]["secretName"] == "pw-am"


BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"operator": {"replicas": "two"}}, "replicas"),
    ({"operator": {"replicas": 0}}, "replicas"),
    ({"operatr": {"replicas": 2}}, "operatr"),
    ({"image": {"operator": {"pullPolicy": "Sometimes"}}}, "pullPolicy"),
    ({"operator": {"watch": {"allNamespaces": False, "namespaces": ["Bad_NS"]}}}, "namespaces"),
    ({"operator": {"alertmanager": {"enabled": True}}}, "name"),  # no token Secret: never open
]


@pytest.fixture(scope="module")
def rejections(chart_cluster: ChartCluster) -> list[dict[str, Any]]:
    chart_cluster.ensure_namespace("pw-rejects")
    jobs = [(f"rejected-{i}", "pw-rejects", values) for i, (values, _) in enumerate(BAD_VALUES)]
    return chart_cluster.install_many(jobs)


@pytest.mark.parametrize("case", range(len(BAD_VALUES)))
def test_schema_rejects_bad_values(rejections: list[dict[str, Any]], case: int) -> None:
    outcome = rejections[case]
    assert "result" not in outcome, f"values {BAD_VALUES[case][0]} were accepted"
    assert "values don't meet the specifications of the schema" in outcome["error"]
    assert BAD_VALUES[case][1] in outcome["error"]


def test_operator_is_told_the_replication_image_and_service_account(rendered: Rendered) -> None:
    """Replication Jobs run the agent image (same version) as the chart's replication SA."""
    args = _operator(rendered)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--replication-image={_expected_image(rendered, 'agent')}" in args
    accounts = {sa["metadata"]["name"] for sa in rendered.of_kind("ServiceAccount")}
    (flag,) = [a for a in args if a.startswith("--replication-service-account=")]
    assert flag.split("=", 1)[1] in accounts and flag.endswith("-replication")


def test_operator_is_told_the_agent_ports_and_the_network_policy_values(
    rendered: Rendered,
) -> None:
    """The operator's flags parse as `pairwarden operator` parses them: what the chart renders
    is what the operator then does (agent ports, NetworkPolicies on or off, metrics peers)."""
    import argparse

    from pairwarden.controller.main import configure

    args = _operator(rendered)["spec"]["template"]["spec"]["containers"][0]["args"]
    parser = argparse.ArgumentParser()
    configure(parser)
    parsed = parser.parse_args([a for a in args[1:] if "$(" not in a])
    policy = rendered.values.get("networkPolicy", {})
    assert (parsed.agent_port, parsed.agent_metrics_port) == (8082, 8080)
    assert parsed.network_policies is policy.get("enabled", True)
    assert list(parsed.network_policy_metrics_from) == policy.get("metricsFrom", [])


def test_helm_test_hook_probes_the_operator_through_its_service(rendered: Rendered) -> None:
    (pod,) = rendered.hooks
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    (container,) = pod["spec"]["containers"]
    service = rendered.one("Service")["metadata"]["name"]
    assert f"http://{service}.{rendered.namespace}.svc:8080/readyz" in container["args"][0]
    assert (
        container["image"]
        == _operator(rendered)["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_notes_tell_the_next_steps_with_namespaces(rendered: Rendered) -> None:
    assert "kubectl pairwarden status <pair> -n <namespace>" in rendered.notes
    assert f"helm test {rendered.release} -n {rendered.namespace}" in rendered.notes
    owns_crds = rendered.values.get("crds", {}).get("create", True)
    assert ("helm upgrade updates the CRDs" in rendered.notes) == owns_crds
    policies = rendered.values.get("networkPolicy", {}).get("enabled", True)
    assert (
        '"<pair>-members" admits the agents\' file API (port 8082)' in rendered.notes
    ) == policies
