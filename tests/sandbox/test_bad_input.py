"""Bad requests get the real server's code and a Status body, and change nothing stored."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from .helpers import GROUP, PLURAL, VERSION


@pytest.fixture
def http(sandbox: Any) -> Iterator[Any]:
    """Raw HTTP with the admin token, to send what typed clients refuse to build."""
    if not sandbox.url.startswith("http://"):
        pytest.skip("raw HTTP tests need the plain-http sandbox")
    pool = urllib3.PoolManager()
    token = {"Authorization": "Bearer sandbox-token-admin"}

    def send(method: str, path: str, body: bytes | None = None, **headers: str) -> Any:
        return pool.request(method, sandbox.url + path, body=body, headers={**token, **headers})

    yield send
    pool.clear()


def _snapshot(http: Any, namespace: str) -> list[Any]:
    paths = [
        f"/api/v1/namespaces/{namespace}/configmaps",
        f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}",
    ]
    return [json.loads(http("GET", p).data)["items"] for p in paths]


CASES = [
    ("POST", "configmaps", b'{"metadata": {"name": ', "application/json", 400, "BadRequest"),
    ("POST", "configmaps", b"metadata: [name: x\n", "application/yaml", 400, "BadRequest"),
    (
        "POST",
        "configmaps",
        b'{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"x"}}',
        "application/json",
        400,
        "BadRequest",
    ),
    (
        "POST",
        "configmaps",
        b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}',
        "application/json",
        400,
        "BadRequest",
    ),
    ("POST", "gizmos", b'{"metadata":{"name":"x"}}', "application/json", 404, "NotFound"),
    (
        "POST",
        "configmaps",
        b'{"metadata":{"name":"x"},"data":{"k":"' + b"v" * (3 << 20) + b'"}}',
        "application/json",
        413,
        "RequestEntityTooLarge",
    ),
    ("POST", "configmaps", b'{"metadata":{"name":"Bad_Name"}}', "application/json", 422, "Invalid"),
    ("POST", "configmaps", b"<xml/>", "text/plain", 415, "UnsupportedMediaType"),
    ("PATCH", "configmaps/seed", b'{"data":{"k":"v"}}', "text/plain", 415, "UnsupportedMediaType"),
    (
        "PATCH",
        f"{PLURAL}/seed",
        b'{"spec":{"size":"large"}}',
        "application/strategic-merge-patch+json",
        415,
        "UnsupportedMediaType",
    ),
    (
        "PATCH",
        "configmaps/seed",
        b'[{"op":"test","path":"/data/k","value":"other"}]',
        "application/json-patch+json",
        422,
        "Invalid",
    ),
    (
        "PUT",
        "configmaps/seed",
        b'{"metadata":{"name":"other"}}',
        "application/json",
        400,
        "BadRequest",
    ),
]


@pytest.mark.parametrize(("method", "what", "body", "ctype", "code", "reason"), CASES)
def test_bad_request_is_refused_and_changes_nothing(
    http: Any,
    widgets: Any,
    namespace: str,
    method: str,
    what: str,
    body: bytes,
    ctype: str,
    code: int,
    reason: str,
) -> None:
    base = f"/apis/{GROUP}/{VERSION}" if what.startswith(PLURAL) else "/api/v1"
    seed = {
        "configmaps": b'{"metadata":{"name":"seed"},"data":{"k":"v"}}',
        PLURAL: b'{"apiVersion":"test.pairwarden.io/v1","kind":"Widget",'
        b'"metadata":{"name":"seed"},"spec":{"color":"red"}}',
    }
    for plural, seed_body in seed.items():
        prefix = f"/apis/{GROUP}/{VERSION}" if plural == PLURAL else "/api/v1"
        created = http(
            "POST",
            f"{prefix}/namespaces/{namespace}/{plural}",
            seed_body,
            **{"Content-Type": "application/json"},
        )
        assert created.status == 201
    before = _snapshot(http, namespace)
    resp = http(method, f"{base}/namespaces/{namespace}/{what}", body, **{"Content-Type": ctype})
    status = json.loads(resp.data)
    assert resp.status == code, status
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["reason"] == reason and status["code"] == code and status["message"]
    assert _snapshot(http, namespace) == before


@pytest.mark.parametrize("selector", ["role in (a", "role=a b", "ro le=a", "=x", "a=b=c!"])
def test_invalid_label_selector_is_bad_request(http: Any, namespace: str, selector: str) -> None:
    query = urllib.parse.quote(selector)
    resp = http("GET", f"/api/v1/namespaces/{namespace}/configmaps?labelSelector={query}")
    assert resp.status == 400
    assert json.loads(resp.data)["reason"] == "BadRequest"


def test_protobuf_accept_is_answered_with_json(http: Any) -> None:
    resp = http(
        "GET",
        "/api/v1/namespaces/default",
        Accept="application/vnd.kubernetes.protobuf,application/json",
    )
    assert resp.status == 200 and json.loads(resp.data)["kind"] == "Namespace"


def test_yaml_body_is_accepted(http: Any, namespace: str) -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  when: 2026-01-01\n"
    resp = http(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        body,
        **{"Content-Type": "application/yaml"},
    )
    assert resp.status == 201
    assert json.loads(resp.data)["data"] == {"when": "2026-01-01"}
