"""Metadata, create/get/list/replace/patch/delete semantics through the `kubernetes` client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .helpers import GROUP, PLURAL, VERSION, wait_for, widget


def _status(exc: pytest.ExceptionInfo[ApiException]) -> int:
    return int(exc.value.status)


def test_create_sets_metadata_and_bumps_one_global_resource_version(
    core: client.CoreV1Api, namespace: str
) -> None:
    first = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "a"}, "data": {"k": "v"}}
    )
    second = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "b-"}})
    assert first.metadata.uid and first.metadata.uid != second.metadata.uid
    assert first.metadata.creation_timestamp is not None
    assert first.metadata.namespace == namespace
    assert second.metadata.name.startswith("b-") and len(second.metadata.name) == 7
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    core.delete_namespaced_config_map("a", namespace)
    after_delete = core.list_namespaced_config_map(namespace).metadata.resource_version
    assert int(after_delete) > int(second.metadata.resource_version)


def test_create_twice_is_already_exists(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "dup"}})
    assert _status(exc) == 409
    assert '"reason":"AlreadyExists"' in exc.value.body.replace(" ", "")


def test_namespace_mismatch_is_bad_request_and_missing_namespace_not_found(
    core: client.CoreV1Api, namespace: str
) -> None:
    body = {"metadata": {"name": "x", "namespace": "default"}}
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(namespace, body)
    assert _status(exc) == 400
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("no-such-namespace", {"metadata": {"name": "x"}})
    assert _status(exc) == 404


def test_default_namespaces_exist(core: client.CoreV1Api) -> None:
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_stale_update_conflicts(core: client.CoreV1Api, namespace: str) -> None:
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}, "data": {}})
    cm.data = {"a": "1"}
    updated = core.replace_namespaced_config_map("c", namespace, cm)
    assert updated.metadata.resource_version != cm.metadata.resource_version
    cm.data = {"a": "2"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("c", namespace, cm)
    assert _status(exc) == 409
    assert core.read_namespaced_config_map("c", namespace).data == {"a": "1"}


def test_noop_update_keeps_resource_version(core: client.CoreV1Api, namespace: str) -> None:
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "n"}, "data": {}})
    same = core.patch_namespaced_config_map("n", namespace, {"data": {}})
    assert same.metadata.resource_version == cm.metadata.resource_version


def test_service_gets_loopback_cluster_ip_and_port_defaults(
    core: client.CoreV1Api, namespace: str, sandbox: Any
) -> None:
    svc = core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "callers"},
            "spec": {"selector": {"app": "vm"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    assert svc.spec.type == "ClusterIP"
    assert svc.spec.ports[0].protocol == "TCP"
    assert svc.spec.ports[0].target_port == 8080
    if sandbox.url.startswith("http://127."):
        assert svc.spec.cluster_ip.startswith("127.1.")
    headless = core.create_namespaced_service(
        namespace, {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None"}}
    )
    assert headless.spec.cluster_ip == "None"


def test_pod_starts_pending_and_status_changes_only_through_status(
    core: client.CoreV1Api, namespace: str
) -> None:
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running"},
        },
    )
    assert pod.status.phase == "Pending"
    core.patch_namespaced_pod("p", namespace, {"status": {"phase": "Running"}})
    assert core.read_namespaced_pod("p", namespace).status.phase == "Pending"
    core.patch_namespaced_pod_status("p", namespace, {"status": {"phase": "Running"}})
    assert core.read_namespaced_pod("p", namespace).status.phase == "Running"


def test_strategic_merge_merges_lists_by_key_and_pods_change_only_images(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "s"},
            "spec": {
                "containers": [
                    {"name": "a", "image": "one", "env": [{"name": "X", "value": "1"}]},
                    {"name": "b", "image": "two"},
                ]
            },
        },
    )
    patch = {"spec": {"containers": [{"name": "a", "image": "three"}]}}
    pod = core.patch_namespaced_pod("s", namespace, patch)  # client sends strategic merge
    containers = {c.name: c for c in pod.spec.containers}
    assert set(containers) == {"a", "b"}
    assert (containers["a"].image, containers["b"].image) == ("three", "two")
    assert [e.name for e in containers["a"].env] == ["X"]
    # A pod is replaced, not edited: anything but images (and a few fields) is refused.
    env = {"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}]}}
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_pod("s", namespace, env)
    assert _status(exc) == 422
    assert "pod updates may not change fields other than" in exc.value.body
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "s"},
            "spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]},
        },
    )
    delete = {"spec": {"ports": [{"port": 81, "$patch": "delete"}]}}
    svc = core.patch_namespaced_service("s", namespace, delete)
    assert [p.port for p in svc.spec.ports] == [80]


def test_json_patch_test_operation_guards_a_write(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    w = widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("j"))
    rv = w["metadata"]["resourceVersion"]

    def json_patch(ops: list[dict[str, Any]]) -> Any:
        return widgets.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "j", ops, _content_type="application/json-patch+json"
        )

    ok = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/spec/color", "value": "blue"},
    ]
    assert json_patch(ok)["spec"]["color"] == "blue"
    with pytest.raises(ApiException) as exc:
        json_patch(ok)  # resourceVersion moved on: the test op fails
    assert _status(exc) == 422
    got = widgets.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "j")
    assert got["spec"]["color"] == "blue"


def test_generation_counts_spec_changes_only(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    w = widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("g"))
    assert w["metadata"]["generation"] == 1
    labelled = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "g", {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    status = widgets.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "g", {"status": {"phase": "Ready"}}
    )
    assert status["metadata"]["generation"] == 1
    changed = widgets.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "g", {"spec": {"size": "large"}}
    )
    assert changed["metadata"]["generation"] == 2


def test_status_subresource_separates_spec_and_status(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    created = widgets.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, {**widget("st"), "status": {"phase": "Ready"}}
    )
    assert "status" not in created
    widgets.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "st",
        {"spec": {"color": "blue"}, "status": {"observed": 1}},
    )
    got = widgets.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "st")
    assert got["spec"]["color"] == "red" and got["status"] == {"observed": 1}
    got["spec"]["color"] = "green"
    got["status"] = {"observed": 9}
    replaced = widgets.replace_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "st", got
    )
    assert replaced["spec"]["color"] == "green" and replaced["status"] == {"observed": 1}


def test_replace_of_custom_resource_needs_resource_version(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("rv"))
    with pytest.raises(ApiException) as exc:
        widgets.replace_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "rv", widget("rv", color="blue")
        )
    assert _status(exc) == 422
    assert "metadata.resourceVersion" in exc.value.body


def test_finalizers_hold_deletion_until_removed(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    body = widget("f")
    body["metadata"]["finalizers"] = ["test.pairwarden.io/hold"]
    widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    widgets.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "f")
    held = widgets.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "f")
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["deletionGracePeriodSeconds"] == 0
    with pytest.raises(ApiException) as exc:
        widgets.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "f", {"metadata": {"finalizers": ["a", "b"]}}
        )
    assert _status(exc) == 422
    widgets.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "f", {"metadata": {"finalizers": None}}
    )
    with pytest.raises(ApiException) as exc:
        widgets.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "f")
    assert _status(exc) == 404


def test_delete_preconditions(core: client.CoreV1Api, namespace: str) -> None:
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "d"}})
    wrong = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_config_map("d", namespace, body=wrong)
    assert _status(exc) == 409
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1"))
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_config_map("d", namespace, body=stale)
    assert _status(exc) == 409
    right = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(
            uid=cm.metadata.uid, resource_version=cm.metadata.resource_version
        ),
        propagation_policy="Foreground",
    )
    core.delete_namespaced_config_map("d", namespace, body=right)

    def gone() -> bool:  # Foreground: a real server leaves the rest to the garbage collector
        try:
            core.read_namespaced_config_map("d", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, 30, "configmap d to be deleted")


def test_leases_jobs_and_events(api_client: client.ApiClient, namespace: str) -> None:
    lease = client.CoordinationV1Api(api_client).create_namespaced_lease(
        namespace,
        {"metadata": {"name": "vm-active"}, "spec": {"holderIdentity": "a", "leaseTransitions": 1}},
    )
    assert lease.spec.holder_identity == "a"
    assert lease.metadata.generation is None  # only kinds with a spec to act on have one
    job = client.BatchV1Api(api_client).create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "copy"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox"}],
                    }
                }
            },
        },
    )
    assert job.metadata.generation in (None, 1)  # Jobs have one from Kubernetes 1.21
    done = client.BatchV1Api(api_client).patch_namespaced_job_status(
        "copy", namespace, {"status": {"succeeded": 1}}
    )
    assert done.status.succeeded == 1
    body = {
        "metadata": {"name": "e1"},
        "eventTime": "2026-01-01T00:00:00.250000Z",
        "reason": "Failover",
        "action": "Promote",
        "type": "Normal",
        "reportingController": "pairwarden.io/operator",
        "reportingInstance": "op-1",
        "regarding": {"kind": "Lease", "name": "vm-active", "namespace": namespace},
    }
    event = client.EventsV1Api(api_client).create_namespaced_event(namespace, body)
    assert event.reason == "Failover"
    # The client's models re-serialize eventTime with isoformat(), which drops an all-zero
    # fraction: "2026-01-01T00:00:00+00:00" is no MicroTime, and the server says so.
    with pytest.raises(ApiException) as exc:
        client.EventsV1Api(api_client).create_namespaced_event(
            namespace, {**body, "metadata": {"name": "e2"}, "eventTime": "2026-01-01T00:00:00Z"}
        )
    assert _status(exc) == 400


def test_crd_deletion_stops_serving_its_resource(
    api_client: client.ApiClient, namespace: str
) -> None:
    from .helpers import WIDGET_CRD, install_crd

    crd = {
        **WIDGET_CRD,
        "metadata": {"name": "gadgets.test.pairwarden.io"},
        "spec": {
            **WIDGET_CRD["spec"],
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        },
    }
    install_crd(api_client, crd)
    custom = client.CustomObjectsApi(api_client)
    body = {**widget("x"), "kind": "Gadget"}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "gadgets", body)
    client.ApiextensionsV1Api(api_client).delete_custom_resource_definition(
        "gadgets.test.pairwarden.io"
    )

    def gone() -> bool:
        try:
            custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "gadgets")
        except ApiException as exc:
            return exc.status == 404
        return False

    from .helpers import wait_for

    wait_for(gone, 30, "gadgets to stop being served")
