"""Bad requests get the real server's code and a Status body, and change nothing stored."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import urllib3

from .helpers import GROUP, PLURAL, VERSION, bearer, wait_for

JSON_TYPE = "application/json"


@pytest.fixture
def http(sandbox: Any) -> Iterator[Any]:
    """Raw HTTP with the admin token, to send what typed clients refuse to build."""
    if not sandbox.url.startswith("http://"):
        pytest.skip("raw HTTP tests need the plain-http sandbox")
    pool = urllib3.PoolManager()
    token = bearer(sandbox.kubeconfig_path)

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


def _cm(value: bytes) -> bytes:
    return b'{"metadata":{"name":"hostile"},"data":{"k":' + value + b"}}"


def _deep(depth: int) -> bytes:
    return b'{"metadata":{"name":"deep"},"data":' + b"[" * depth + b"]" * depth + b"}"


# A few hundred bytes of YAML whose nested aliases stand for megabytes of JSON.
_BOMB = b"metadata: {name: bomb}\na: &a [" + b",".join([b'"xxxxxxxxxxxxxxxx"'] * 16) + b"]\n"
for _n in "bcdef":
    _BOMB += f"{_n}: &{_n} [".encode() + b",".join([b"*" + bytes([ord(_n) - 1])] * 16) + b"]\n"

HOSTILE = [
    ("nan", _cm(b"NaN"), "application/json", (400,)),
    ("infinity", _cm(b"Infinity"), "application/json", (400,)),
    ("-infinity", _cm(b"-Infinity"), "application/json", (400,)),
    ("yaml-inf", b"metadata: {name: hostile}\ndata: {k: .inf}\n", "application/yaml", (400,)),
    ("5000-digits", _cm(b"9" * 5000), "application/json", (400,)),
    ("10^30", _cm(b"1" + b"0" * 30), "application/json", (400,)),
    ("100000-deep", _deep(100_000), "application/json", (400, 422)),
    ("alias-bomb", _BOMB, "application/yaml", (400, 413, 422)),
]


@pytest.mark.parametrize(
    ("body", "ctype", "codes"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile_bodies_get_a_status_and_store_nothing(
    http: Any, namespace: str, body: bytes, ctype: str, codes: tuple[int, ...]
) -> None:
    """Never a plain-text 500, never a stored NaN that would break every later list."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    resp = http("POST", path, body, **{"Content-Type": ctype})
    assert resp.status in codes, resp.data[:200]
    status = json.loads(resp.data)
    assert status["kind"] == "Status" and status["code"] == resp.status
    listed = http("GET", path)
    assert listed.status == 200 and json.loads(listed.data)["items"] == []


@pytest.mark.parametrize(
    "query", ["limit=abc", "fieldSelector=data.k%3Dv", "fieldSelector=spec.nodeName%3Dx"]
)
def test_bad_list_parameters_are_bad_request(http: Any, namespace: str, query: str) -> None:
    """configmaps support no field label but metadata.name/namespace, as on the real server."""
    resp = http("GET", f"/api/v1/namespaces/{namespace}/configmaps?{query}")
    assert resp.status == 400, resp.data[:200]
    assert json.loads(resp.data)["reason"] == "BadRequest"


def test_supported_field_selectors_still_work(http: Any, namespace: str) -> None:
    for query in ("fieldSelector=metadata.name%3Dx", "fieldSelector=status.phase%3DRunning"):
        assert http("GET", f"/api/v1/namespaces/{namespace}/pods?{query}").status == 200


def test_dry_run_is_per_request_under_concurrency(http: Any, namespace: str) -> None:
    """Real and dry-run creates in flight together: each one is answered and stored (or not)
    as its own query says."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"

    def create(name: str, dry: bool) -> int:
        body = json.dumps({"metadata": {"name": name}, "data": {"k": "v" * 20_000}}).encode()
        query = "?dryRun=All" if dry else ""
        return int(http("POST", path + query, body, **{"Content-Type": JSON_TYPE}).status)

    jobs = [(f"real-{i}", False) for i in range(20)] + [(f"dry-{i}", True) for i in range(20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda job: create(*job), jobs))
    assert codes == [201] * 40
    names = {i["metadata"]["name"] for i in json.loads(http("GET", path).data)["items"]}
    assert names == {f"real-{i}" for i in range(20)}


def test_a_watch_whose_client_left_is_freed_at_once(sandbox_only: Any, namespace: str) -> None:
    """Sandbox-only (its stats): a closed watch connection unregisters without any write."""
    url = f"{sandbox_only.url}/api/v1/namespaces/{namespace}/configmaps?watch=1"
    stats = f"{sandbox_only.url}/sandbox/stats"
    pool = urllib3.PoolManager()
    before = json.loads(pool.request("GET", stats).data)["watchers"]
    resp = pool.request(
        "GET", url, preload_content=False, headers=bearer(sandbox_only.kubeconfig_path)
    )
    wait_for(
        lambda: json.loads(pool.request("GET", stats).data)["watchers"] == before + 1,
        30,
        "the watch to register",
    )
    if resp.connection is not None:
        resp.connection.close()
    pool.clear()
    wait_for(
        lambda: json.loads(urllib3.request("GET", stats).data)["watchers"] == before,
        30,
        "the watch to be freed",
    )
