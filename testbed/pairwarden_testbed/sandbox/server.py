"""The HTTP face of the sandbox on aiohttp: URL routing, content negotiation, list/watch
streaming, faults and stats. Semantics live in `cluster.Cluster`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from pairwarden.api.crd import build_crd

from . import codec, discovery, tables
from .admin import Fault, Faults, Stats
from .authn import Authenticator, User
from .authz import RBAC_GROUP, Attributes, Authorizer
from .cluster import Cluster
from .errors import ApiError, bad_request, expired, not_found
from .kubeconfig import write_kubeconfig
from .patching import PATCH_TYPES
from .persist import SqliteBackend
from .resources import Registry, ResourceType
from .selectors import Selector, check_field_labels, parse_selector
from .store import Event, Store
from .tls import sandbox_pki

TRUE = ("true", "True", "1")
JSON = "application/json"


@dataclass
class Settings:
    """Knobs tests turn: small history to provoke 410, short bookmark interval."""

    history_size: int = 5000
    bookmark_interval: float = 10.0
    max_body_bytes: int = 3 * 1024 * 1024
    default_watch_timeout: float = 1800.0
    watch_lag: float = 0.0  # seconds every watch holds its events before writing them
    watch_lag_user: str | None = None  # only this identity's watches lag (None: everyone's)


@dataclass
class Route:
    rt: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None


@dataclass
class Negotiated:
    yaml: bool = False
    table: bool = False


def _negotiate(accept: str) -> Negotiated:
    """The response form: JSON unless YAML or a Table is asked for. The sandbox writes no
    protobuf, so a client asking for protobuf first (kubectl's typed commands send
    `protobuf,json`) gets the JSON it also accepts, and one accepting protobuf only gets 406."""
    if not accept.strip():
        return Negotiated()
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if "as=Table" in params and media in (JSON, "*/*"):
            return Negotiated(table=True)
        if any(p.startswith("as=") for p in params):
            continue
        if media in (JSON, "*/*", "application/*"):
            return Negotiated()
        if media == "application/yaml":
            return Negotiated(yaml=True)
    raise ApiError(406, f"only the following media types are accepted: {JSON}, application/yaml")


def _respond(body: Any, status: int = 200, neg: Negotiated | None = None) -> web.Response:
    if neg is not None and neg.yaml:
        return web.Response(
            body=yaml.safe_dump(body, sort_keys=False).encode(),
            status=status,
            content_type="application/yaml",
        )
    return web.Response(body=codec.encode(body), status=status, content_type=JSON)


def _error(err: ApiError) -> web.Response:
    return _respond(err.status(), err.code)


class ApiServer:
    """One sandbox API server; run inside an asyncio loop with `start()` / `stop()`."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        crds_dir: str | Path | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings()
        backend = SqliteBackend(data_dir) if data_dir is not None else None
        self.store = Store(backend, self.settings.history_size)
        self.registry = Registry()
        self.cluster = Cluster(self.store, self.registry)
        self.authenticator = Authenticator(self.store)
        self.authorizer = Authorizer(self.store)
        self.faults = Faults()
        self.stats = Stats()
        self.crds_dir = Path(crds_dir) if crds_dir else None
        self.url = ""
        # What kubeconfigs name: the TLS address and its CA (tls.py says why), else `url`.
        self.client_url = ""
        self.ca_pem: bytes | None = None
        self._runner: web.AppRunner | None = None

    # lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self.crds_dir is not None:
            self.install_crds(self.crds_dir)
        else:
            self.install_product_crds()
        app = web.Application(client_max_size=self.settings.max_body_bytes + 1)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A client that goes away cancels its request: a watch is unsubscribed at once, not at
        # the next event; other requests are cancelled only at an await, before any write.
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=2.0, handler_cancellation=True
        )
        await self._runner.setup()
        self.url = f"http://{host}:{await self._listen(host, port, None)}"
        self.client_url = self.url
        pki = sandbox_pki()
        if pki is not None:
            secure = await self._listen(host, 0, pki.server_context())
            self.client_url, self.ca_pem = f"https://{host}:{secure}", pki.ca.read_bytes()
        return self.url

    async def _listen(self, host: str, port: int, ctx: ssl.SSLContext | None) -> int:
        assert self._runner is not None
        site = web.TCPSite(self._runner, host, port, ssl_context=ctx)
        await site.start()
        server = site._server  # the listening socket tells which port 0 became
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    def write_kubeconfig(self, path: str | Path, user: str = "admin") -> Path:
        """A kubeconfig acting as `user`, one of the rig's superusers (authn.py)."""
        token = self.authenticator.static_token(user)
        return write_kubeconfig(path, self.client_url, token, user, self.ca_pem)

    async def stop(self) -> None:
        self.store.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def install_product_crds(self) -> None:
        """The FailoverPair CRD as the installed product's models generate it (the same
        document as the repository's `crds/`, which a test keeps in step), so a sandbox from
        a wheel serves it too."""
        crd_type = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_type is not None
        self.apply_crd(crd_type, build_crd())

    def install_crds(self, directory: Path) -> int:
        """Create or update every CRD in the directory's YAML files; a missing or empty
        directory installs nothing."""
        if not directory.is_dir():
            return 0
        crd_type = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_type is not None
        count = 0
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            for doc in codec.load_yaml_documents(path):
                if doc.get("kind") != "CustomResourceDefinition":
                    continue
                self.apply_crd(crd_type, doc)
                count += 1
        return count

    def apply_crd(self, crd_type: ResourceType, doc: dict[str, Any]) -> None:
        name = doc["metadata"]["name"]
        old = self.store.get(crd_type.key, "", name)
        if old is None:
            self.cluster.create(crd_type, None, doc)
        else:
            body = {**doc, "metadata": {**doc["metadata"], "resourceVersion": None}}
            self.cluster.replace(crd_type, None, name, body, None, False)

    # routing

    def _route(self, parts: list[str]) -> Route | None:
        """The resource a path names; None for discovery paths (`/api`, `/apis/g/v`)."""
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if not rest:
            return None
        ns: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            ns, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise not_found(group, rest[0], "/".join(rest[1:]))
        rt = self.registry.get(group, version, rest[0])
        if rt is None:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rt.subresources:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        if ns is not None and not rt.namespaced:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        return Route(rt, ns, name, sub)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except ApiError as err:
            return _error(err)
        except web.HTTPRequestEntityTooLarge:
            return _error(self._too_large())

    def _too_large(self) -> ApiError:
        limit = self.settings.max_body_bytes
        return ApiError(413, f"Request entity too large: limit is {limit}")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["sandbox"]:
            return await self._admin(request, parts[1:])
        user = self.authenticator.authenticate(request.headers.get("Authorization"))
        route = self._route(parts) if parts[:1] in (["api"], ["apis"]) else None
        if route is None:
            self._authorize_path(user, request.method, request.path)
        else:
            return await self._resource(request, route, user)
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(
            ("/healthz/", "/readyz/", "/livez/")
        ):
            return web.Response(text="ok")
        if path == "/version":
            return _respond(discovery.VERSION_INFO)
        if parts[:2] == ["openapi", "v3"]:
            return self._openapi(parts[2:])
        if parts[:1] == ["openapi"]:
            raise ApiError(404, "the server could not find the requested resource")
        neg = _negotiate(request.headers.get("Accept", ""))
        if parts == ["api"]:
            return _respond(discovery.api_versions(request.host), neg=neg)
        if parts == ["apis"]:
            return _respond(discovery.api_group_list(self.registry), neg=neg)
        if len(parts) == 2 and parts[0] == "apis":
            group_doc = discovery.api_group(self.registry, parts[1])
            if group_doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            return _respond(group_doc, neg=neg)
        if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
            listing = discovery.resource_list(self.registry, group, version)
            if listing is None:
                raise ApiError(404, "the server could not find the requested resource")
            return _respond(listing, neg=neg)
        raise ApiError(404, "the server could not find the requested resource")

    def _authorize_path(self, user: User, method: str, path: str) -> None:
        """A request for no resource (discovery, /version, /healthz): RBAC's
        nonResourceURLs, with the HTTP method as the verb."""
        self.authorizer.authorize(Attributes(user, method.lower(), path=path))

    def _openapi(self, parts: list[str]) -> web.Response:
        if not parts:
            return _respond(discovery.openapi_v3_root(self.registry))
        group, version = ("", parts[1]) if parts[0] == "api" and len(parts) == 2 else ("", "")
        if parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        doc = discovery.openapi_v3_group_version(self.registry, group, version)
        if doc is None:
            raise ApiError(404, "the server could not find the requested resource")
        return _respond(doc)

    def _verb(self, method: str, route: Route, watch: bool) -> str:
        if method == "GET":
            if route.name is not None:
                return "get"
            return "watch" if watch else "list"
        verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        if method not in verbs:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if method == "DELETE" and route.name is None:
            return "deletecollection"
        if (route.name is None) != (method == "POST"):
            raise ApiError(405, "the server does not allow this method on the requested resource")
        return verbs[method]

    async def _body(self, request: web.Request, patch: bool) -> tuple[str, Any]:
        if (request.content_length or 0) > self.settings.max_body_bytes:
            raise self._too_large()
        raw = await request.read()
        if len(raw) > self.settings.max_body_bytes:
            raise self._too_large()
        media = codec.media_type(request.headers.get("Content-Type"))
        if patch and media not in PATCH_TYPES:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(PATCH_TYPES)}",
            )
        protobuf = media.startswith(codec.PROTOBUF)
        if not patch and not protobuf and media not in ("", JSON, "application/yaml", "*/*"):
            raise ApiError(
                415,
                "the body of the request was in an unknown format - accepted media types "
                f"include: {JSON}, application/yaml, application/vnd.kubernetes.protobuf",
            )
        if not raw.strip():
            if request.method == "DELETE":
                return media, {}
            raise bad_request("the body of the request is empty")
        return media, codec.decode(media, raw, self.settings.max_body_bytes)

    def _attributes(self, user: User, verb: str, route: Route, q: Any) -> Attributes:
        """The request as RBAC sees it (apiserver's RequestInfo): a list or watch selecting
        one `metadata.name` names it, so `resourceNames` can admit it; a namespace is its
        own namespace."""
        rt, name = route.rt, route.name or ""
        if not name and verb in ("list", "watch"):
            for term in (q.get("fieldSelector") or "").split(","):
                key, _, value = term.partition("=")
                if key.strip() == "metadata.name" and not value.startswith("="):
                    name = value.lstrip("=").strip()
        namespace = route.namespace or ""
        if rt.plural == "namespaces" and not rt.group and route.name:
            namespace = route.name
        return Attributes(user, verb, namespace, rt.group, rt.plural, route.sub or "", name)

    async def _resource(self, request: web.Request, route: Route, user: User) -> web.StreamResponse:
        q = request.query
        rt = route.rt
        verb = self._verb(request.method, route, q.get("watch", "") in TRUE)
        self.authorizer.authorize(self._attributes(user, verb, route, q))
        neg = _negotiate(request.headers.get("Accept", ""))
        resource = f"{rt.plural}/{route.sub}" if route.sub else rt.plural
        self.stats.record(user.name, verb, resource)
        fault = self.faults.take(
            verb, resource, rt.group, route.namespace, route.name or "", user.name
        )
        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if not fault.slows_only:
                raise fault.error()
        if verb in ("list", "watch", "deletecollection"):
            selector = parse_selector(
                route.namespace if rt.namespaced else None,
                q.get("labelSelector"),
                q.get("fieldSelector"),
            )
            check_field_labels(rt.group, rt.plural, selector)
            if verb == "watch":
                return await self._watch(request, rt, selector, neg)
            if verb == "list":
                return self._list(rt, selector, q, neg)
        strict = q.get("fieldValidation") == "Strict"
        if verb == "get":
            assert route.name is not None
            obj = self.cluster.get(rt, route.namespace, route.name)
            if neg.table:
                return _respond(tables.to_table(rt, [obj], None, q.get("includeObject", "")))
            return _respond(obj, neg=neg)
        # Every await (the body) comes before the dry-run flag is set: the flag then covers
        # only this request's synchronous work, never a concurrent request's.
        media, body = await self._body(request, patch=verb == "patch")
        self.cluster.dry_run = "dryRun" in q
        if rt.group == RBAC_GROUP:
            self.cluster.guard = lambda rt, obj, old: self.authorizer.check_grant(
                user, rt.plural, obj, old
            )
        try:
            if verb == "create":
                return _respond(self.cluster.create(rt, route.namespace, body, strict), 201, neg)
            if verb == "update":
                assert route.name is not None
                obj = self.cluster.replace(rt, route.namespace, route.name, body, route.sub, strict)
                return _respond(obj, neg=neg)
            if verb == "patch":
                assert route.name is not None
                if media == "application/apply-patch+yaml" and not q.get("fieldManager"):
                    raise bad_request("PATCH, fieldManager is required for apply requests")
                obj = self.cluster.patch(
                    rt, route.namespace, route.name, media, body, route.sub, strict
                )
                return _respond(obj, neg=neg)
            options = body if isinstance(body, dict) else {}
            if verb == "delete":
                assert route.name is not None
                return _respond(self.cluster.delete(rt, route.namespace, route.name, options))
            gone = [
                self.cluster.delete(rt, route.namespace, o["metadata"]["name"], options)
                for o in self.cluster.list_objects(rt, selector)
            ]
            return _respond(self._list_body(rt, gone, None))
        finally:
            self.cluster.dry_run = False
            self.cluster.guard = None

    def _list_body(self, rt: ResourceType, items: list[Any], cont: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
        if cont:
            meta["continue"] = cont
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": meta,
            "items": items,
        }

    def _list(self, rt: ResourceType, selector: Selector, q: Any, neg: Negotiated) -> web.Response:
        items = self.cluster.list_objects(rt, selector)
        token = q.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start = (str(state["start"][0]), str(state["start"][1]))
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise bad_request(f"invalid continue token: {exc}") from exc
            if int(state.get("rv", 0)) < self.store.floor(rt.key):
                raise expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
            items = [
                i
                for i in items
                if (i["metadata"].get("namespace", ""), i["metadata"]["name"]) > start
            ]
        cont = None
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise bad_request(f"invalid limit: {q.get('limit')!r}") from None
        if limit > 0 and len(items) > limit:
            items = items[:limit]
            last = items[-1]["metadata"]
            state = {"rv": self.store.rv, "start": [last.get("namespace", ""), last["name"]]}
            cont = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
        if neg.table:
            return _respond(
                tables.to_table(rt, items, str(self.store.rv), q.get("includeObject", ""))
            )
        return _respond(self._list_body(rt, items, cont), neg=neg)

    async def _watch(
        self, request: web.Request, rt: ResourceType, selector: Selector, neg: Negotiated
    ) -> web.StreamResponse:
        q = request.query
        rv_text = q.get("resourceVersion", "")
        bookmarks = q.get("allowWatchBookmarks", "") in TRUE
        initial = q.get("sendInitialEvents", "") in TRUE
        try:
            since = None if rv_text in ("", "0") or initial else int(rv_text)
            timeout = float(q.get("timeoutSeconds") or self.settings.default_watch_timeout)
        except ValueError as exc:
            raise bad_request(f"invalid watch parameter: {exc}") from exc
        response = web.StreamResponse(headers={"Content-Type": JSON})
        await response.prepare(request)
        floor = self.store.floor(rt.key)
        if since is not None and since < floor:
            err = expired(f"too old resource version: {since} ({floor})")
            await response.write(codec.encode({"type": "ERROR", "object": err.status()}) + b"\n")
            return response
        watcher = self.store.subscribe(rt.key, selector, since, initial_end=initial and bookmarks)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        include = q.get("includeObject", "")
        try:
            while (remaining := deadline - loop.time()) > 0:
                wait = min(remaining, self.settings.bookmark_interval) if bookmarks else remaining
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and deadline - loop.time() > 0:
                        await response.write(self._bookmark(rt, self.store.rv, False))
                    continue
                batch = [item]
                while not watcher.queue.empty() and len(batch) < 500:
                    batch.append(watcher.queue.get_nowait())
                stop = None in batch
                if self._lags(request) and not stop:  # a server behind its clients
                    await asyncio.sleep(self.settings.watch_lag)
                    while not watcher.queue.empty() and len(batch) < 500:
                        batch.append(watcher.queue.get_nowait())
                    stop = None in batch
                chunk = b"".join(
                    self._event_line(rt, kind, event, neg.table, include)
                    for kind, event in (i for i in batch if i is not None)
                )
                if chunk:
                    await response.write(chunk)
                if stop:
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unsubscribe(watcher)
        return response

    def _user_name(self, request: web.Request) -> str:
        try:
            return self.authenticator.authenticate(request.headers.get("Authorization")).name
        except ApiError:
            return ""

    def _lags(self, request: web.Request) -> bool:
        who = self.settings.watch_lag_user
        return self.settings.watch_lag > 0 and (who is None or who == self._user_name(request))

    def _bookmark(self, rt: ResourceType, rv: int, initial_end: bool) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        return codec.encode({"type": "BOOKMARK", "object": obj}) + b"\n"

    def _event_line(
        self, rt: ResourceType, kind: str, event: Event, table: bool, include: str
    ) -> bytes:
        if kind == "BOOKMARK":
            return self._bookmark(rt, event.rv, True)
        if table:
            obj = self.cluster.served(rt, event.obj)
            body = tables.to_table(rt, [obj], None, include)
            return codec.encode({"type": kind, "object": body}) + b"\n"
        return event.line(kind, rt.api_version)

    # admin endpoints

    async def _admin(self, request: web.Request, parts: list[str]) -> web.Response:
        method = request.method
        if parts == ["stats"] and method == "GET":
            snap = self.stats.snapshot()
            snap["resourceVersion"] = self.store.rv
            snap["watchers"] = self.store.watcher_count()
            return _respond(snap)
        if parts == ["stats"] and method == "DELETE":
            self.stats.reset()
            return _respond({})
        if parts == ["faults"] and method == "GET":
            return _respond({"faults": self.faults.pending()})
        if parts == ["faults"] and method == "DELETE":
            self.faults.clear()
            return _respond({})
        if parts == ["faults"] and method == "POST":
            spec = codec.decode(JSON, await request.read())
            try:
                self.faults.add(Fault(**spec))
            except (TypeError, ValueError) as exc:
                raise bad_request(f"invalid fault: {exc}") from exc
            return _respond({"faults": self.faults.pending()}, 201)
        if parts == ["compact"] and method == "POST":
            self.store.compact()
            return _respond({"resourceVersion": self.store.rv})
        raise not_found("", "sandbox", "/".join(parts))
