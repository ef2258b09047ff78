"""The API semantics on top of the store: metadata (uid, generation, resourceVersion,
generateName), namespaces, status subresources, finalizers, CRD registration, CR schema
handling and optimistic concurrency. The HTTP layer only parses and renders.

Every method validates completely before `Store.write`, so a refused request stores nothing.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import accounts, builtins, schema
from .authn import SA_NAME_ANNOTATION, SA_TOKEN_TYPE, SA_UID_ANNOTATION
from .authz import RBAC_GROUP
from .errors import (
    ApiError,
    Cause,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    stale,
)
from .patching import (
    APPLY,
    JSON_PATCH,
    MERGE,
    STRATEGIC,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge,
)
from .resources import Registry, ResourceType
from .selectors import Selector
from .store import Obj, Store

NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_IMMUTABLE_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
)
# Built-in kinds whose strategy sets metadata.generation (Kubernetes 1.37, which the sandbox
# reports): those with a spec a controller acts on. ConfigMaps, Secrets, Leases, Services,
# Events and the like have none on a real server, so none here either.
GENERATION_KINDS = frozenset({"Pod", "Job", "Deployment", "CustomResourceDefinition"})


def has_generation(rt: ResourceType) -> bool:
    return rt.custom or rt.kind in GENERATION_KINDS


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Cluster:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.ips = builtins.IpAllocator()
        self.dry_run = False
        # Set by the server for one request's synchronous part: checks a new state of an
        # object against who asks (the RBAC escalation check), before it is validated.
        self.guard: Callable[[ResourceType, Obj, Obj | None], None] | None = None
        ns_type = self._builtin("", "namespaces")
        for key, obj in store.loaded():
            if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                registry.install_crd(obj)
            if key == ("", "services"):
                ip = (obj.get("spec") or {}).get("clusterIP")
                if ip and ip != "None":
                    self.ips.reserve(ip)
        for name in NAMESPACES:
            if store.get(ns_type.key, "", name) is None:
                self.create(ns_type, None, {"metadata": {"name": name}})
        self._bootstrap_accounts()

    def _bootstrap_accounts(self) -> None:
        """The real server's bootstrap RBAC policy, a `default` ServiceAccount per namespace
        and a token per ServiceAccount (also for a store written before the sandbox had them)."""
        for plural, bodies in (
            ("clusterroles", accounts.BOOTSTRAP_CLUSTER_ROLES),
            ("clusterrolebindings", accounts.BOOTSTRAP_BINDINGS),
        ):
            rt = self._builtin(RBAC_GROUP, plural)
            for body in bodies:
                if self.store.get(rt.key, "", body["metadata"]["name"]) is None:
                    self.create(rt, None, copy.deepcopy(body))
        for ns in self.store.objects(("", "namespaces"), None):
            self._ensure_default_account(ns["metadata"]["name"])
        for account in self.store.objects(("", "serviceaccounts"), None):
            if not account.get("secrets"):
                self._add_token(account)

    def _ensure_default_account(self, ns: str) -> None:
        rt = self._builtin("", "serviceaccounts")
        if self.store.get(rt.key, ns, "default") is None:
            self.create(rt, ns, {"metadata": {"name": "default"}})

    def _add_token(self, account: Obj) -> None:
        """The token controller: a token Secret for the account, named in its `secrets`."""
        secret = self.create(
            self._builtin("", "secrets"),
            account["metadata"]["namespace"],
            accounts.new_token_secret(account),
        )
        updated = copy.deepcopy(account)
        updated["secrets"] = [*(account.get("secrets") or []), {"name": secret["metadata"]["name"]}]
        self._commit(self._builtin("", "serviceaccounts"), updated, account)

    def _remove_tokens(self, account: Obj) -> None:
        meta = account["metadata"]
        rt = self._builtin("", "secrets")
        for secret in self.store.objects(rt.key, meta["namespace"]):
            notes = secret["metadata"].get("annotations") or {}
            if (
                secret.get("type") == SA_TOKEN_TYPE
                and notes.get(SA_NAME_ANNOTATION) == meta["name"]
                and notes.get(SA_UID_ANNOTATION) == meta["uid"]
            ):
                self.delete(rt, meta["namespace"], secret["metadata"]["name"], {})

    def _builtin(self, group: str, plural: str) -> ResourceType:
        rt = self.registry.get(group, "v1", plural)
        assert rt is not None
        return rt

    # reads

    def served(self, rt: ResourceType, obj: Obj) -> Obj:
        """The object as this version serves it (CR versions share storage unconverted)."""
        if obj.get("apiVersion") == rt.api_version:
            return obj
        return {**obj, "apiVersion": rt.api_version}

    def get(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        obj = self.store.get(rt.key, ns or "", name)
        if obj is None:
            raise not_found(rt.group, rt.plural, name)
        return self.served(rt, obj)

    def list_objects(self, rt: ResourceType, selector: Selector) -> list[Obj]:
        name = selector.exact_name
        objs = self.store.objects(rt.key, selector.namespace)
        if name is not None:
            objs = [o for o in objs if o["metadata"]["name"] == name]
        kept = [self.served(rt, o) for o in objs if selector.matches(o)]
        kept.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return kept

    # writes

    def _check_body(self, rt: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON or YAML object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version is not None and api_version != rt.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
            )
        if kind is not None and kind != rt.kind:
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = rt.storage_api_version(), rt.kind
        obj.setdefault("metadata", {})
        return obj

    def _check_namespace(self, rt: ResourceType, ns: str | None, obj: Obj) -> str:
        meta = obj["metadata"]
        if not rt.namespaced:
            meta.pop("namespace", None)
            return ""
        if ns is None:
            raise ApiError(405, f"{rt.group_resource} is namespaced: use a namespaced URL")
        if meta.get("namespace", ns) != ns:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        meta["namespace"] = ns
        if self.store.get(("", "namespaces"), "", ns) is None:
            raise not_found("", "namespaces", ns)
        return ns

    def create(self, rt: ResourceType, ns: str | None, body: Any, strict: bool = False) -> Obj:
        obj = self._check_body(rt, body)
        ns_name = self._check_namespace(rt, ns, obj)
        meta = obj["metadata"]
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise invalid(
                    rt.group,
                    rt.kind,
                    "",
                    [
                        Cause(
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            for _ in range(16):
                meta["name"] = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))
                if self.store.get(rt.key, ns_name, meta["name"]) is None:
                    break
        name = str(meta["name"])
        errors = builtins.name_errors(rt.kind, name)
        if errors:
            raise invalid(rt.group, rt.kind, name, errors)
        if self.store.get(rt.key, ns_name, name) is not None:
            raise already_exists(rt.group, rt.plural, name)
        for field in (*_IMMUTABLE_META, "resourceVersion", "managedFields"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if has_generation(rt):
            meta["generation"] = 1
        if "status" in rt.subresources and rt.custom:
            obj.pop("status", None)
        self._admit(rt, obj, None, strict)
        return self._commit(rt, obj, None)

    def _admit(self, rt: ResourceType, obj: Obj, old: Obj | None, strict: bool) -> None:
        """Defaults and validation for a new state of an object; raises 422 on errors."""
        name = obj["metadata"]["name"]
        if self.guard is not None:
            self.guard(rt, obj, old)
        if rt.kind == "Pod" and not rt.custom and old is None:
            ns = obj["metadata"]["namespace"]
            wanted = (obj.get("spec") or {}).get("serviceAccountName") or "default"
            accounts.admit_pod(obj, self.store.get(("", "serviceaccounts"), ns, wanted), ns)
        if rt.custom and rt.schema:
            _, pruned, errors = schema.normalise(obj, rt.schema, old)
            if strict and pruned:
                raise bad_request(
                    "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in pruned)
                )
            if errors:
                raise invalid(rt.group, rt.kind, name, errors)
        elif not rt.custom:
            if rt.group == "events.k8s.io" and (why := builtins.micro_time_error(rt.kind, obj)):
                raise bad_request(why)
            errors = builtins.default_builtin(rt.kind, obj, old, self.ips)
            if rt.kind == "CustomResourceDefinition":
                errors += self._crd_errors(obj)
            if errors:
                raise invalid(rt.group, rt.kind, name, errors)

    def _crd_errors(self, crd: Obj) -> list[Cause]:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        errors = []
        for field in ("group", "names", "versions"):
            if not spec.get(field):
                errors.append(Cause(f"spec.{field}", "FieldValueRequired", "Required value"))
        for field in ("plural", "kind"):
            if not names.get(field):
                errors.append(Cause(f"spec.names.{field}", "FieldValueRequired", "Required value"))
        if errors:
            return errors
        expected = f"{names['plural']}.{spec['group']}"
        if crd["metadata"]["name"] != expected:
            errors.append(
                Cause(
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{crd["metadata"]["name"]}": must be spec.names.plural+"."'
                    "+spec.group",
                )
            )
        versions = spec["versions"]
        if sum(1 for v in versions if v.get("storage")) != 1:
            errors.append(
                Cause(
                    "spec.versions",
                    "FieldValueInvalid",
                    "Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: must "
                    "have exactly one version marked as storage version",
                )
            )
        for i, ver in enumerate(versions):
            root = (ver.get("schema") or {}).get("openAPIV3Schema")
            if isinstance(root, dict):
                for cause in schema.rule_errors(root, f"spec.versions[{i}].schema.openAPIV3Schema"):
                    errors.append(cause)
        if not errors:
            spec.setdefault("scope", "Namespaced")
            crd["status"] = {
                "acceptedNames": {k: v for k, v in names.items()},
                "storedVersions": [v["name"] for v in versions if v.get("storage")],
                "conditions": [
                    {
                        "type": t,
                        "status": "True",
                        "reason": r,
                        "message": m,
                        "lastTransitionTime": now_rfc3339(),
                    }
                    for t, r, m in (
                        ("NamesAccepted", "NoConflicts", "no conflicts found"),
                        (
                            "Established",
                            "InitialNamesAccepted",
                            "the initial names are accepted",
                        ),
                    )
                ],
            }
        return errors

    def _commit(self, rt: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not self.dry_run:
            return self._remove(rt, obj)
        meta["resourceVersion"] = str(self.store.next_rv())
        if self.dry_run:
            return self.served(rt, obj)
        self.store.write(rt.key, "ADDED" if old is None else "MODIFIED", obj, old)
        served = self.served(rt, obj)
        if rt.custom:
            return served
        if rt.kind == "CustomResourceDefinition":
            self.registry.install_crd(obj)
        elif rt.kind == "Namespace" and old is None:
            self._ensure_default_account(meta["name"])
        elif rt.kind == "ServiceAccount" and old is None:
            self._add_token(obj)
        return served

    def _remove(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.write(rt.key, "DELETED", obj, None)
        if rt.custom:
            return self.served(rt, obj)
        if rt.kind == "CustomResourceDefinition":
            for gone in self.registry.remove_crd(meta["name"]):
                self.store.drop_resource(gone)
        elif rt.kind == "Service":
            ip = (obj.get("spec") or {}).get("clusterIP")
            if ip and ip != "None":
                self.ips.release(ip)
        elif rt.kind == "Namespace":
            self._empty_namespace(meta["name"])
        elif rt.kind == "ServiceAccount":
            self._remove_tokens(obj)
        return self.served(rt, obj)

    def _empty_namespace(self, ns: str) -> None:
        for key, obj in self.store.namespace_objects(ns):
            rt = next((t for t in self.registry.all() if t.key == key), None)
            # an account's token Secrets go with it, before the loop reaches them
            if rt is not None and self.store.get(key, ns, obj["metadata"]["name"]) is not None:
                self.delete(rt, ns, obj["metadata"]["name"], {})

    def _apply_update(
        self, rt: ResourceType, old: Obj, new: Any, sub: str | None, strict: bool, require_rv: bool
    ) -> Obj:
        obj = self._check_body(rt, new)
        meta, old_meta = obj["metadata"], old["metadata"]
        name = old_meta["name"]
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        if rt.namespaced and meta.get("namespace", old_meta["namespace"]) != old_meta["namespace"]:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        sent_rv = meta.get("resourceVersion")
        if sent_rv in (None, "") and require_rv:
            raise invalid(
                rt.group,
                rt.kind,
                name,
                [
                    Cause(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        if sent_rv not in (None, "") and str(sent_rv) != old_meta["resourceVersion"]:
            raise stale(rt.group, rt.plural, name)
        if sub == "status":
            status = obj.get("status")
            obj = copy.deepcopy(old)
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = status
            meta = obj["metadata"]
        else:
            if "status" in rt.subresources:
                if "status" in old:
                    obj["status"] = copy.deepcopy(old["status"])
                else:
                    obj.pop("status", None)
            meta.pop("managedFields", None)
            for field in _IMMUTABLE_META:
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            meta["name"] = name
            if rt.namespaced:
                meta["namespace"] = old_meta["namespace"]
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
                if added:
                    raise invalid(
                        rt.group,
                        rt.kind,
                        name,
                        [
                            Cause(
                                "metadata.finalizers",
                                "FieldValueForbidden",
                                "Forbidden: no new finalizers can be added if the object is "
                                "being deleted, found new finalizers " + str(sorted(added)),
                            )
                        ],
                    )
        meta["resourceVersion"] = old_meta["resourceVersion"]
        self._admit(rt, obj, old, strict)
        if has_generation(rt) and _spec_payload(rt, obj) != _spec_payload(rt, old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if obj == old:
            return self.served(rt, old)
        return self._commit(rt, obj, old)

    def _existing(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        old = self.store.get(rt.key, ns or "", name)
        if old is None:
            raise not_found(rt.group, rt.plural, name)
        return old

    def replace(
        self, rt: ResourceType, ns: str | None, name: str, body: Any, sub: str | None, strict: bool
    ) -> Obj:
        old = self._existing(rt, ns, name)
        return self._apply_update(rt, old, body, sub, strict, require_rv=rt.custom)

    def patch(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        patch_type: str,
        patch: Any,
        sub: str | None,
        strict: bool,
    ) -> Obj:
        old = self.store.get(rt.key, ns or "", name)
        if old is None:
            if patch_type == APPLY:
                body = copy.deepcopy(patch)
                if isinstance(body, dict):
                    body.setdefault("metadata", {})["name"] = name
                return self.create(rt, ns, body, strict)
            raise not_found(rt.group, rt.plural, name)
        base = self.served(rt, old)
        if patch_type == MERGE:
            if not isinstance(patch, dict):
                raise bad_request("merge patch must be a JSON object")
            new = merge_patch(base, patch)
        elif patch_type == JSON_PATCH:
            new = json_patch(base, patch)
        elif patch_type == STRATEGIC:
            if rt.custom:
                raise ApiError(
                    415,
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {JSON_PATCH}, {MERGE}, {APPLY}",
                )
            if not isinstance(patch, dict):
                raise bad_request("strategic merge patch must be a JSON object")
            new = strategic_merge(base, patch)
        else:
            new = apply_patch(base, patch)
        return self._apply_update(rt, old, new, sub, strict, require_rv=False)

    def delete(self, rt: ResourceType, ns: str | None, name: str, options: Obj) -> Obj:
        old = self._existing(rt, ns, name)
        meta = old["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise conflict(
                rt.group,
                rt.plural,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                f"{meta['uid']}",
            )
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != meta["resourceVersion"]:
            raise conflict(
                rt.group,
                rt.plural,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {meta['resourceVersion']}",
            )
        if self.dry_run:
            return self.served(rt, old)
        obj = copy.deepcopy(old)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return self.served(rt, old)
            obj["metadata"]["deletionTimestamp"] = now_rfc3339()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(rt, obj, old)
        return self._remove(rt, obj)


def _spec_payload(rt: ResourceType, obj: Obj) -> Any:
    if rt.custom:
        return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    return obj.get("spec")
