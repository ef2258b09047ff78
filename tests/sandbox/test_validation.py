"""Custom resources are defaulted, pruned and validated from the CRD's structural schema,
including CEL rules, and refused with the real server's 422 Status."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .helpers import GROUP, PLURAL, VERSION, skip_without_cel, widget

# How Kubernetes 1.20 words the same refusals (the sandbox speaks as 1.37 does).
WORDING_1_20 = {
    ("spec.tags", "must have at most 3 items"): ("spec.tags", "should have at most 3 items"),
    ("spec.tags[0]", "at least 1 chars long"): ("spec.tags", "at least 1 chars long"),
}


def _create(widgets: client.CustomObjectsApi, ns: str, body: dict[str, Any]) -> Any:
    return widgets.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)


def _refusal(widgets: client.CustomObjectsApi, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ApiException) as exc:
        _create(widgets, ns, body)
    assert exc.value.status == 422
    status: dict[str, Any] = json.loads(exc.value.body)
    assert status["kind"] == "Status" and status["reason"] == "Invalid"
    return status


def test_defaults_applied_and_unknown_fields_pruned(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    body = widget("d", unknown="x", extra={"kept": {"deep": 1}})
    created = _create(widgets, namespace, body)
    assert created["spec"]["size"] == "small" and created["spec"]["replicas"] == 1
    assert "unknown" not in created["spec"]
    assert created["spec"]["extra"] == {"kept": {"deep": 1}}


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"size": "huge"}, "spec.size", 'Unsupported value: "huge"'),
        ({"replicas": 11}, "spec.replicas", "less than or equal to 10"),
        ({"replicas": -1}, "spec.replicas", "greater than or equal to 0"),
        ({"replicas": "three"}, "spec.replicas", "must be of type integer"),
        ({"color": "Red"}, "spec.color", "should match '^[a-z]+$'"),
        ({"tags": ["a", "b", "c", "d"]}, "spec.tags", "must have at most 3 items"),
        ({"tags": [""]}, "spec.tags[0]", "at least 1 chars long"),
        (
            {"members": {"primary": "vm-a", "secondary": "vm-a"}},
            "spec.members.secondary",
            "must differ from primary",
        ),
    ],
)
def test_schema_violations_name_the_field(
    api_client: client.ApiClient,
    widgets: client.CustomObjectsApi,
    namespace: str,
    spec: dict[str, Any],
    field: str,
    text: str,
) -> None:
    if "members" in spec:
        skip_without_cel(api_client)
    status = _refusal(widgets, namespace, widget("bad", **spec))
    wordings = [(field, text), WORDING_1_20.get((field, text), (field, text))]
    assert any(f"{f}: " in status["message"] and t in status["message"] for f, t in wordings)
    assert status["details"]["causes"][0]["field"] in {f for f, _ in wordings}
    assert widgets.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"] == []


def test_a_whole_number_is_an_integer(widgets: client.CustomObjectsApi, namespace: str) -> None:
    """`replicas: 3.0` is an integer to the real server (a JSON number that is whole); 3.5 is
    not. The sandbox refused 3.0 (an e2e scenario's float grace, kept by the real 1.20)."""
    assert _create(widgets, namespace, widget("whole", replicas=3.0))["spec"]["replicas"] == 3
    status = _refusal(widgets, namespace, widget("half", replicas=3.5))
    assert "spec.replicas" in status["message"] and "must be of type integer" in status["message"]


def test_required_field(widgets: client.CustomObjectsApi, namespace: str) -> None:
    body = widget("r")
    del body["spec"]["color"]
    status = _refusal(widgets, namespace, body)
    assert status["details"]["causes"][0]["field"] == "spec.color"
    assert "Required value" in status["message"]


def test_transition_rule_compares_with_old_self(
    api_client: client.ApiClient, widgets: client.CustomObjectsApi, namespace: str
) -> None:
    skip_without_cel(api_client)
    _create(widgets, namespace, widget("t", mode="fast"))
    with pytest.raises(ApiException) as exc:
        widgets.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "t", {"spec": {"mode": "slow"}}
        )
    assert exc.value.status == 422 and "mode is immutable" in exc.value.body
    same = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "t", {"spec": {"size": "large"}}
    )
    assert same["spec"]["mode"] == "fast"


def test_status_is_validated_against_the_status_schema(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    _create(widgets, namespace, widget("s"))
    with pytest.raises(ApiException) as exc:
        widgets.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "s", {"status": {"phase": "Dancing"}}
        )
    assert exc.value.status == 422 and "status.phase" in exc.value.body


def test_update_validation_leaves_object_unchanged(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    before = _create(widgets, namespace, widget("u"))
    with pytest.raises(ApiException) as refused:
        widgets.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "u", {"spec": {"replicas": 99}}
        )
    assert refused.value.status == 422 and "spec.replicas" in refused.value.body
    after = widgets.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "u")
    assert after == before


def test_crd_with_uncompilable_rule_is_refused(api_client: client.ApiClient) -> None:
    skip_without_cel(api_client)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "brokens.test.pairwarden.io"},
        "spec": {
            "group": "test.pairwarden.io",
            "scope": "Namespaced",
            "names": {"plural": "brokens", "kind": "Broken"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-validations": [{"rule": "self.spec ==="}],
                        }
                    },
                }
            ],
        },
    }
    with pytest.raises(ApiException) as exc:
        client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
    assert exc.value.status == 422
