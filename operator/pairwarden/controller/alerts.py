"""An Alertmanager webhook receiver: a firing alert labelled with a pair and an action becomes
that pair's failover or failback request, the same annotations `kubectl pairwarden` writes.

Off unless `--alertmanager-port` is given; every request must carry `Authorization: Bearer
<token>` with the token read from `--alertmanager-token-file` (a mounted Secret, re-read on each
request so a rotated Secret takes effect without a restart).

Labels an alert carries (set them in the alerting rule or with Alertmanager's relabelling):
- `pairwarden_pair`: the FailoverPair's name (required);
- `pairwarden_action`: `failover` or `failback` (required);
- `pairwarden_namespace`: its namespace (else the alert's `namespace` label, else the
  operator's own namespace).

Each firing of an alert is one request: the id is derived from the alert's fingerprint and its
`startsAt`, so Alertmanager's repeated notifications of the same firing act once, while the
same alert firing again later (a new `startsAt`) acts again. Resolved alerts do nothing.

The port is reachable by anything the network lets through, so the receiver holds under abuse
(`Limits`): a connection must deliver its request headers within a deadline (as the agents'
ports do: `header_bounded_runner`) and its body within another; a body is at most 1 MiB and
nested at most 32 deep (Alertmanager's is 4), checked before it is parsed; anything it cannot
parse is a 400, and no request leaves a traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from kubernetes_asyncio import client

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.controller.client import MERGE_PATCH, status_of
from pairwarden.protocol import ANNOTATION_REQUEST, ANNOTATION_REQUEST_ID
from pairwarden.replication.fileapi import HEADER_TIMEOUT, header_bounded_runner

log = logging.getLogger(__name__)
LABEL_PAIR = "pairwarden_pair"
LABEL_ACTION = "pairwarden_action"
LABEL_NAMESPACE = "pairwarden_namespace"
ACTIONS = ("failover", "failback")
PATH = "/alertmanager"


@dataclass(frozen=True)
class Limits:
    """What one request to the receiver may cost. The timeouts are seconds: `header` from the
    connection's start until its request headers are in (also an idle keep-alive connection's
    life), `body` for the body after them. Alertmanager sends a notification in one write."""

    header_timeout: float = HEADER_TIMEOUT  # the agents' file API's and metrics port's too
    body_timeout: float = 10.0
    linger_timeout: float = 1.0  # after a refusal (413, 408, 401): header_bounded_runner
    max_body: int = 1 << 20
    max_depth: int = 32


# A JSON string (escapes included) or one bracket: what decides nesting, strings skipped whole.
_JSON_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def parse_json(raw: bytes, max_depth: int) -> Any:
    """The JSON document in `raw` (pure). Raises ValueError for anything but a JSON document
    nested at most `max_depth` deep: the depth is counted before parsing, since Python's
    parser recurses once per level and a deep enough body ends in RecursionError."""
    depth = 0
    for token in _JSON_NESTING.finditer(raw):
        bracket = token.group()
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
        elif bracket in (b"]", b"}"):
            depth -= 1
    try:
        return json.loads(raw)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, too long an integer
        raise ValueError(f"not JSON: {error}") from None


@dataclass(frozen=True)
class AlertRequest:
    namespace: str
    pair: str
    action: str
    id: str


@dataclass(frozen=True)
class Parsed:
    requests: tuple[AlertRequest, ...]
    skipped: tuple[str, ...]  # one line per alert that asked for nothing, and why


def requests_from_webhook(payload: Any, default_namespace: str) -> Parsed:
    """The requests a webhook notification carries (pure). Raises ValueError when the body is
    not an Alertmanager notification at all."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("alerts"), list):
        raise ValueError("not an Alertmanager webhook body: no `alerts` list")
    found: dict[tuple[str, str], AlertRequest] = {}
    skipped: list[str] = []
    for index, alert in enumerate(payload["alerts"]):
        labels = alert.get("labels") if isinstance(alert, Mapping) else None
        if not isinstance(labels, Mapping):
            skipped.append(f"alert {index}: no labels")
            continue
        name = str(labels.get("alertname") or f"alert {index}")
        if alert.get("status") != "firing":
            skipped.append(f"{name}: {alert.get('status') or 'no status'}, not firing")
            continue
        pair, action = labels.get(LABEL_PAIR), labels.get(LABEL_ACTION)
        if not pair or action not in ACTIONS:
            skipped.append(
                f"{name}: needs labels {LABEL_PAIR} and {LABEL_ACTION} (failover|failback)"
            )
            continue
        namespace = str(labels.get(LABEL_NAMESPACE) or labels.get("namespace") or default_namespace)
        firing = f"{alert.get('fingerprint') or sorted(labels.items())}@{alert.get('startsAt')}"
        digest = hashlib.sha256(firing.encode()).hexdigest()[:16]
        # One request per pair: a notification naming a pair twice acts once.
        found.setdefault(
            (namespace, str(pair)), AlertRequest(namespace, str(pair), action, f"am-{digest}")
        )
    return Parsed(tuple(found.values()), tuple(skipped))


def authorized(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time; an empty token never
    authorizes anything."""
    scheme, _, given = (header or "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


@dataclass
class Receiver:
    api: client.ApiClient
    token_file: Path
    default_namespace: str
    allowed: Callable[[str], bool]  # namespaces this operator watches
    limits: Limits = field(default_factory=Limits)

    def token(self) -> str:
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            log.error("alertmanager receiver: cannot read the token file: %s", exc)
            return ""

    async def handle(self, request: web.Request) -> web.Response:
        if not authorized(request.headers.get("Authorization"), self.token()):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:  # a body over max_body: aiohttp's 413 (client_max_size), raised from read()
            raw = await asyncio.wait_for(request.read(), self.limits.body_timeout)
        except TimeoutError:
            response = web.json_response({"error": "request body too slow"}, status=408)
            response.force_close()
            return response
        try:
            payload = parse_json(raw, self.limits.max_depth)
            parsed = requests_from_webhook(payload, self.default_namespace)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        results = [await self._write(r) for r in parsed.requests]
        return web.json_response({"requests": results, "skipped": list(parsed.skipped)})

    async def _write(self, req: AlertRequest) -> dict[str, str]:
        result = {"namespace": req.namespace, "pair": req.pair, "action": req.action, "id": req.id}
        if not self.allowed(req.namespace):
            return {**result, "outcome": "namespace not watched by this operator"}
        patch = {
            "metadata": {
                "annotations": {ANNOTATION_REQUEST: req.action, ANNOTATION_REQUEST_ID: req.id}
            }
        }
        try:
            await client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
                GROUP, VERSION, req.namespace, PLURAL, req.pair, patch, _content_type=MERGE_PATCH
            )
        except client.ApiException as exc:
            outcome = "no such pair" if status_of(exc) == 404 else f"API error {status_of(exc)}"
            log.warning("alertmanager: %s %s/%s: %s", req.action, req.namespace, req.pair, outcome)
            return {**result, "outcome": outcome}
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:  # the API server away
            outcome = f"API unreachable: {exc!r}"
            log.warning("alertmanager: %s %s/%s: %s", req.action, req.namespace, req.pair, outcome)
            return {**result, "outcome": outcome}
        log.info(
            "alertmanager: %s requested on %s/%s (%s)", req.action, req.namespace, req.pair, req.id
        )
        return {**result, "outcome": "requested"}


async def serve(receiver: Receiver, address: str, port: int) -> web.AppRunner:
    """Listen on address:port (0: any free port, `runner.addresses` tells which)."""
    limits = receiver.limits
    app = web.Application(client_max_size=limits.max_body)
    app.router.add_post(PATH, receiver.handle)
    runner = header_bounded_runner(app, limits.header_timeout, limits.linger_timeout)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
