"""What a caller may do: RBAC as kube-apiserver 1.20 evaluates it (`--authorization-mode
Node,RBAC`; the sandbox has no kubelets of its own, so only RBAC matters), and the escalation
check its RBAC storage makes on Roles, ClusterRoles and their bindings.

The rules are pure functions with public names (`rule_allows`, `subject_applies`, `covers`,
`compact_string`, `forbidden`), transcribed from k8s.io/kubernetes pkg/apis/rbac/v1 and
pkg/registry/rbac/validation; `Authorizer` only reads the Roles and bindings from the store.
The `system:masters` group may do anything and grant anything, as the real server's
privileged-group authorizer and `EscalationAllowed` say; aggregated ClusterRoles are not
aggregated (nothing in the rig uses them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .authn import MASTERS, User
from .errors import ApiError, not_found
from .store import Store

Rule = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES = (RBAC_GROUP, "roles")
CLUSTER_ROLES = (RBAC_GROUP, "clusterroles")
ROLE_BINDINGS = (RBAC_GROUP, "rolebindings")
CLUSTER_ROLE_BINDINGS = (RBAC_GROUP, "clusterrolebindings")


@dataclass(frozen=True)
class Attributes:
    """One request as the authorizer sees it (k8s.io/apiserver authorizer.Attributes).
    A non-resource request has `path` and no resource."""

    user: User
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""

    @property
    def resource_request(self) -> bool:
        return not self.path


def _has(values: Iterable[str], value: str) -> bool:
    return value in values


def rule_allows(rule: Rule, attrs: Attributes) -> bool:
    """rbac/v1 RuleAllows: verbs, groups, resources (`*`, `pods/log`, `*/status`),
    resourceNames (empty means all), nonResourceURLs (`*` and `prefix*`)."""
    verbs = rule.get("verbs") or []
    if not (_has(verbs, "*") or _has(verbs, attrs.verb)):
        return False
    if not attrs.resource_request:
        return any(
            url == "*"
            or url == attrs.path
            or (url.endswith("*") and attrs.path.startswith(url[:-1]))
            for url in rule.get("nonResourceURLs") or []
        )
    groups = rule.get("apiGroups") or []
    if not (_has(groups, "*") or _has(groups, attrs.api_group)):
        return False
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = rule.get("resources") or []
    if not any(
        r in ("*", combined) or (attrs.subresource and r == f"*/{attrs.subresource}")
        for r in resources
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or _has(names, attrs.name)


def subject_applies(subject: dict[str, Any], user: User, namespace: str) -> bool:
    """rbac appliesToUser: a User by name, a Group by membership, a ServiceAccount by its
    user name (a RoleBinding's subject without a namespace means the binding's)."""
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or namespace
        return bool(ns) and user.name == f"system:serviceaccount:{ns}:{name}"
    return False


def breakdown(rule: Rule) -> list[Rule]:
    """rbac/v1 BreakdownRule: one rule per group x resource x verb x resourceName, and per
    nonResourceURL x verb."""
    names = rule.get("resourceNames") or []
    out: list[Rule] = []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in rule.get("verbs") or []:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                out += [{**base, "resourceNames": [n]} for n in names] if names else [base]
    for url in rule.get("nonResourceURLs") or []:
        out += [{"nonResourceURLs": [url], "verbs": [v]} for v in rule.get("verbs") or []]
    return out


def _resource_covers_all(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    if "*" in owned or all(w in owned for w in wanted):
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covers(owner: str, sub: str) -> bool:
    return owner == sub or (owner.endswith("*") and sub.startswith(owner.rstrip("*")))


def rule_covers(owner: Rule, sub: Rule) -> bool:
    """validation.ruleCovers: does `owner` grant everything `sub` grants?"""
    o_verbs, o_groups = owner.get("verbs") or [], owner.get("apiGroups") or []
    o_names = owner.get("resourceNames") or []
    s_names = sub.get("resourceNames") or []
    return (
        ("*" in o_verbs or all(v in o_verbs for v in sub.get("verbs") or []))
        and ("*" in o_groups or all(g in o_groups for g in sub.get("apiGroups") or []))
        and _resource_covers_all(owner.get("resources") or [], sub.get("resources") or [])
        and all(
            any(_url_covers(o, s) for o in owner.get("nonResourceURLs") or [])
            for s in sub.get("nonResourceURLs") or []
        )
        and (not o_names if not s_names else not o_names or all(n in o_names for n in s_names))
    )


def covers(owned: Sequence[Rule], wanted: Sequence[Rule]) -> list[Rule]:
    """validation.Covers: the broken-down rules of `wanted` that no rule of `owned` covers
    (empty: a user holding `owned` may grant `wanted`)."""
    return [
        sub
        for rule in wanted
        for sub in breakdown(rule)
        if not any(rule_covers(owner, sub) for owner in owned)
    ]


def compact(rules: Sequence[Rule]) -> list[Rule]:
    """validation.CompactRules: rules naming one group, one resource and at most one
    resourceName, merged into one rule per such target with all its verbs."""
    merged: dict[tuple[str, str, str], Rule] = {}
    out: list[Rule] = []
    for rule in rules:
        groups, resources = rule.get("apiGroups") or [], rule.get("resources") or []
        names = rule.get("resourceNames") or []
        simple = len(groups) == 1 and len(resources) == 1 and len(names) <= 1
        if rule.get("verbs") and simple and not rule.get("nonResourceURLs"):
            key = (groups[0], resources[0], names[0] if names else "")
            if key in merged:
                merged[key]["verbs"] = [*merged[key]["verbs"], *rule["verbs"]]
            else:
                merged[key] = {**rule, "verbs": list(rule["verbs"])}
            continue
        out.append(rule)
    return out + list(merged.values())


def _go_quote(values: Sequence[str]) -> str:
    """Go's %q of a []string: `["a" "b"]`."""
    return (
        "["
        + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "]"
    )


def compact_string(rule: Rule) -> str:
    """rbac/v1 CompactString, as the escalation refusal lists missing rights."""
    parts = [
        f"{label}:{_go_quote(rule[key])}"
        for label, key in (
            ("APIGroups", "apiGroups"),
            ("Resources", "resources"),
            ("NonResourceURLs", "nonResourceURLs"),
            ("ResourceNames", "resourceNames"),
            ("Verbs", "verbs"),
        )
        if rule.get(key)
    ]
    return "{" + ", ".join(parts) + "}"


def forbidden(attrs: Attributes) -> ApiError:
    """The real server's 403 for a request the authorizer refused (responsewriters.Forbidden,
    apierrors.NewForbidden): the resource, the name, the user, the verb and the scope."""
    who = f'User "{attrs.user.name}" cannot {attrs.verb}'
    if not attrs.resource_request:
        return ApiError(403, f'forbidden: {who} path "{attrs.path}"', "Forbidden")
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    why = f'{who} resource "{resource}" in API group "{attrs.api_group}" {scope}'
    return forbidden_error(attrs.api_group, attrs.resource, attrs.name, why)


def forbidden_error(group: str, resource: str, name: str, why: str) -> ApiError:
    """apierrors.NewForbidden: `<resource>[.<group>] ["name"] is forbidden: <why>`."""
    qualified = f"{resource}.{group}" if group else resource
    subject = f'{qualified} "{name}"' if name else qualified
    details: dict[str, Any] = {"kind": resource}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return ApiError(403, f"{subject} is forbidden: {why}", "Forbidden", details)


def escalation_message(user: User, missing: Sequence[Rule]) -> str:
    """validation.ConfirmNoEscalation's refusal, listing the rights the user lacks."""
    listed = sorted({compact_string(r) for r in compact(missing)})
    return (
        f'user "{user.name}" (groups={_go_quote(user.groups)}) is attempting to grant RBAC '
        "permissions not currently held:\n" + "\n".join(listed)
    )


class Authorizer:
    """RBAC over the Roles and bindings in the store, read at each request."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _role_rules(self, kind: str, name: str, namespace: str) -> list[Rule] | None:
        if kind == "ClusterRole":
            role = self._store.get(CLUSTER_ROLES, "", name)
        elif kind == "Role" and namespace:
            role = self._store.get(ROLES, namespace, name)
        else:
            role = None
        return None if role is None else list(role.get("rules") or [])

    def rules_for(self, user: User, namespace: str) -> list[Rule]:
        """Every rule granted to `user` cluster-wide and, with a namespace, in it."""
        found: list[Rule] = []
        sources = [(b, "") for b in self._store.objects(CLUSTER_ROLE_BINDINGS, None)]
        if namespace:
            sources += [(b, namespace) for b in self._store.objects(ROLE_BINDINGS, namespace)]
        for binding, ns in sources:
            if any(subject_applies(s, user, ns) for s in binding.get("subjects") or []):
                ref = binding.get("roleRef") or {}
                found += self._role_rules(ref.get("kind", ""), ref.get("name", ""), ns) or []
        return found

    def allowed(self, attrs: Attributes) -> bool:
        if MASTERS in attrs.user.groups:
            return True
        return any(rule_allows(r, attrs) for r in self.rules_for(attrs.user, attrs.namespace))

    def authorize(self, attrs: Attributes) -> None:
        if not self.allowed(attrs):
            raise forbidden(attrs)

    def check_grant(
        self, user: User, resource: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """The RBAC storage's escalation check on a create or update of a Role, ClusterRole,
        RoleBinding or ClusterRoleBinding by `user`: a role only with rules the user holds
        (or `escalate` on it); a binding only to a role whose rules it holds (or `bind` on
        it). An update of owner references or finalizers alone (the garbage collector's) passes."""
        if MASTERS in user.groups or (old is not None and only_gc_fields_change(obj, old)):
            return
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        if resource in ("roles", "clusterroles"):
            # a create names no object yet (its RequestInfo has no name): only an update's
            # `escalate` can be limited by resourceNames
            named = name if old is not None else ""
            may = Attributes(user, "escalate", namespace, RBAC_GROUP, resource, name=named)
            wanted: list[Rule] | None = list(obj.get("rules") or [])
        else:
            ref = obj.get("roleRef") or {}
            plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            may = Attributes(user, "bind", namespace, RBAC_GROUP, plural, name=ref.get("name", ""))
            wanted = None
        if self.allowed(may):
            return
        if wanted is None:  # the bound role's rules, once `bind` did not allow it
            wanted = self._role_rules(ref.get("kind", ""), ref.get("name", ""), namespace)
            if wanted is None:
                raise not_found(RBAC_GROUP, plural, ref.get("name", ""))
        missing = covers(self.rules_for(user, namespace), wanted)
        if missing:
            raise forbidden_error(RBAC_GROUP, resource, name, escalation_message(user, missing))


# What the garbage collector changes (rbacregistry.IsOnlyMutatingGCFields), and what the
# server itself keeps.
_GC_FIELDS = ("ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation")


def only_gc_fields_change(obj: dict[str, Any], old: dict[str, Any]) -> bool:
    """An update that changes nothing but owner references and finalizers (pure)."""

    def rest(o: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in (o.get("metadata") or {}).items() if k not in _GC_FIELDS}
        return {**{k: v for k, v in o.items() if k != "metadata"}, "metadata": meta}

    return rest(obj) == rest(old)
