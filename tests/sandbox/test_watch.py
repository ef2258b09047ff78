"""List and watch: selectors, resume, 410 Expired, bookmarks, timeouts, pagination,
through both the `kubernetes` and `kubernetes_asyncio` clients."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig
from kubernetes_asyncio import watch as awatch

from pairwarden_testbed.sandbox import Sandbox, Settings

# Every namespace of a real server holds this ConfigMap (the root CA publisher puts it there);
# the tests count only their own objects.
ROOT_CA = "kube-root-ca.crt"


def _names(items: list[Any]) -> list[str]:
    return [i.metadata.name for i in items if i.metadata.name != ROOT_CA]


def _cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data}


@pytest.fixture
def labelled(core: client.CoreV1Api, namespace: str) -> str:
    core.create_namespaced_config_map(namespace, _cm("a", {"role": "active", "pair": "vm"}))
    core.create_namespaced_config_map(namespace, _cm("b", {"role": "standby", "pair": "vm"}))
    core.create_namespaced_config_map(namespace, _cm("c", {"role": "none"}))
    return namespace


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("role=active", ["a"]),
        ("role==active", ["a"]),
        ("role!=active", ["b", "c"]),
        ("role in (active,standby)", ["a", "b"]),
        ("role notin (active)", ["b", "c"]),
        ("pair", ["a", "b"]),
        ("!pair", ["c"]),
        ("pair=vm,role=standby", ["b"]),
    ],
)
def test_label_selectors_filter(
    core: client.CoreV1Api, labelled: str, selector: str, names: list[str]
) -> None:
    items = core.list_namespaced_config_map(labelled, label_selector=selector).items
    assert _names(items) == names


def test_field_selectors_filter(core: client.CoreV1Api, labelled: str) -> None:
    by_name = core.list_namespaced_config_map(labelled, field_selector="metadata.name=b")
    assert [i.metadata.name for i in by_name.items] == ["b"]
    others = core.list_namespaced_config_map(labelled, field_selector="metadata.name!=b")
    assert _names(others.items) == ["a", "c"]
    everywhere = core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={labelled}", label_selector="pair=vm"
    )
    assert sorted(i.metadata.name for i in everywhere.items) == ["a", "b"]


def test_field_selector_on_an_unsupported_label_is_refused(
    leases: client.CoordinationV1Api, namespace: str
) -> None:
    """Leases support only metadata.name and metadata.namespace, as on the real server: a
    selector on any other path is a 400, never silently matched."""
    with pytest.raises(ApiException) as refused:
        leases.list_namespaced_lease(namespace, field_selector="spec.holderIdentity==pod-b")
    assert refused.value.status == 400
    message = json.loads(refused.value.body)["message"]
    assert message == (
        '"spec.holderIdentity" is not a known field selector: only "metadata.name", '
        '"metadata.namespace"'
    )


def test_list_carries_kind_and_resource_version(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, _cm("k"))
    typed = core.list_namespaced_config_map(namespace)
    assert typed.kind == "ConfigMapList" and typed.api_version == "v1"
    assert int(typed.metadata.resource_version) >= int(typed.items[0].metadata.resource_version)


def test_pagination_with_limit_and_continue(core: client.CoreV1Api, namespace: str) -> None:
    for i in range(5):
        core.create_namespaced_config_map(namespace, _cm(f"p{i}"))
    seen: list[str] = []
    token = None
    while True:
        page = core.list_namespaced_config_map(namespace, limit=2, _continue=token)
        assert len(page.items) <= 2
        seen += _names(page.items)
        token = page.metadata._continue
        if not token:
            break
    assert seen == [f"p{i}" for i in range(5)]


def _events(stream: Iterator[dict[str, Any]], count: int) -> list[tuple[str, str]]:
    out = []
    for event in stream:
        out.append((event["type"], event["object"].metadata.name))
        if len(out) == count:
            break
    return out


def test_watch_without_version_starts_with_added_then_follows(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, _cm("w1"))
    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map,
        namespace,
        field_selector=f"metadata.name!={ROOT_CA}",
        timeout_seconds=10,
    )
    assert _events(stream, 1) == [("ADDED", "w1")]
    core.patch_namespaced_config_map("w1", namespace, {"data": {"x": "1"}})
    core.delete_namespaced_config_map("w1", namespace)
    assert _events(stream, 2) == [("MODIFIED", "w1"), ("DELETED", "w1")]
    w.stop()


def test_watch_resumes_after_a_resource_version(core: client.CoreV1Api, namespace: str) -> None:
    first = core.create_namespaced_config_map(namespace, _cm("r1"))
    core.create_namespaced_config_map(namespace, _cm("r2"))
    core.patch_namespaced_config_map("r1", namespace, {"data": {"v": "2"}})
    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=first.metadata.resource_version,
        timeout_seconds=10,
    )
    assert _events(stream, 2) == [("ADDED", "r2"), ("MODIFIED", "r1")]
    w.stop()


def test_selector_watch_sees_objects_leave_and_enter(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, _cm("m", {"role": "active"}))
    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map, namespace, label_selector="role=active", timeout_seconds=10
    )
    assert _events(stream, 1) == [("ADDED", "m")]
    core.patch_namespaced_config_map("m", namespace, {"metadata": {"labels": {"role": "standby"}}})
    core.create_namespaced_config_map(namespace, _cm("other", {"role": "standby"}))
    core.patch_namespaced_config_map("m", namespace, {"metadata": {"labels": {"role": "active"}}})
    assert _events(stream, 2) == [("DELETED", "m"), ("ADDED", "m")]
    w.stop()


def test_cluster_wide_watch_sees_every_namespace(core: client.CoreV1Api, namespace: str) -> None:
    start = core.list_config_map_for_all_namespaces(label_selector="probe=cw")
    w = watch.Watch()
    stream = w.stream(
        core.list_config_map_for_all_namespaces,
        label_selector="probe=cw",
        resource_version=start.metadata.resource_version,
        timeout_seconds=10,
    )
    core.create_namespaced_config_map(namespace, _cm("cw", {"probe": "cw"}))
    event = next(iter(stream))
    assert event["type"] == "ADDED" and event["object"].metadata.namespace == namespace
    w.stop()


def test_watch_timeout_ends_the_stream(core: client.CoreV1Api, namespace: str) -> None:
    started = time.monotonic()
    events = list(
        watch.Watch().stream(
            core.list_namespaced_config_map, namespace, label_selector="none", timeout_seconds=1
        )
    )
    assert events == []
    assert time.monotonic() - started < 10


def test_resume_before_compaction_gets_410(
    sandbox_only: Sandbox, core: client.CoreV1Api, namespace: str
) -> None:
    old = core.create_namespaced_config_map(namespace, _cm("old")).metadata.resource_version
    core.patch_namespaced_config_map("old", namespace, {"data": {"x": "1"}})
    sandbox_only.compact()
    stream = watch.Watch().stream(
        core.list_namespaced_config_map, namespace, resource_version=old, timeout_seconds=5
    )
    with pytest.raises(ApiException) as exc:
        next(iter(stream))
    assert exc.value.status == 410


def test_bookmarks_and_bounded_history() -> None:
    settings = Settings(bookmark_interval=0.2, history_size=3)
    with Sandbox(crds_dir="/nonexistent", settings=settings) as sb:
        api = client.ApiClient(_configuration(sb))
        core = client.CoreV1Api(api)
        first = core.create_namespaced_config_map("default", _cm("h0")).metadata.resource_version
        for i in range(1, 6):
            core.create_namespaced_config_map("default", _cm(f"h{i}"))
        with pytest.raises(ApiException) as exc:
            next(
                iter(
                    watch.Watch().stream(
                        core.list_namespaced_config_map,
                        "default",
                        resource_version=first,
                        timeout_seconds=5,
                    )
                )
            )
        assert exc.value.status == 410
        now = core.list_namespaced_config_map("default").metadata.resource_version
        resp = core.list_namespaced_config_map(
            "default",
            watch=True,
            resource_version=now,
            allow_watch_bookmarks=True,
            timeout_seconds=5,
            _preload_content=False,
        )
        line = resp.readline()
        resp.release_conn()
        assert b'"BOOKMARK"' in line and f'"resourceVersion":"{now}"'.encode() in line
        api.close()


def _configuration(sb: Sandbox) -> client.Configuration:
    conf = client.Configuration()
    config.load_kube_config(str(sb.kubeconfig_path), client_configuration=conf)
    return conf


async def test_kubernetes_asyncio_list_and_watch(sandbox: Any, namespace: str) -> None:
    api = await aconfig.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
    async with api:
        core = aclient.CoreV1Api(api)
        await core.create_namespaced_config_map(namespace, _cm("aio", {"x": "y"}))
        listing = await core.list_namespaced_config_map(namespace, label_selector="x=y")
        assert [i.metadata.name for i in listing.items] == ["aio"]
        w = awatch.Watch()
        seen = []
        async for event in w.stream(
            core.list_namespaced_config_map, namespace, label_selector="x=y", timeout_seconds=10
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if seen == [("ADDED", "aio")]:
                await core.delete_namespaced_config_map("aio", namespace)
            if ("DELETED", "aio") in seen:
                break
        assert seen[-1] == ("DELETED", "aio")
        await w.close()
