"""Per-kind behaviour of built-in resources that clients observe: Service cluster IPs and
port defaults, Pod phase, Namespace phase, name rules. Everything else is stored as sent."""

from __future__ import annotations

import copy
import ipaddress
import random
import re
from typing import Any

from .errors import Cause

Obj = dict[str, Any]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kinds whose names must be DNS labels rather than subdomains.
LABEL_NAMED = frozenset({"Namespace", "Service"})
# Kinds whose names need only be a path segment (ValidateRBACName): `system:discovery`.
PATH_SEGMENT_NAMED = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
CLUSTER_IP_NET = ipaddress.ip_network("127.1.0.0/16")


def name_errors(kind: str, name: str) -> list[Cause]:
    if kind in PATH_SEGMENT_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return [
                Cause(
                    "metadata.name",
                    "FieldValueInvalid",
                    f"Invalid value: \"{name}\": may not contain '/' or '%' and may not "
                    "be '.' or '..'",
                )
            ]
        return []
    if kind in LABEL_NAMED:
        if len(name) > 63 or not _LABEL.match(name):
            return [
                Cause(
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower '
                    "case alphanumeric characters or '-', and must start and end with an "
                    "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                    f"validation is '{_LABEL.pattern[1:-1]}')",
                )
            ]
        return []
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        return [
            Cause(
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                f"'{_SUBDOMAIN.pattern[1:-1]}')",
            )
        ]
    return []


class IpAllocator:
    """Cluster IPs from 127.1.0.0/16: loopback, so a local proxy can listen on them. Each
    sandbox starts at a random offset, so sandboxes running side by side on one machine
    (parallel test runs) do not hand out the same address to two proxies."""

    def __init__(self) -> None:
        self._used: set[str] = set()
        self._next = random.randrange(1, CLUSTER_IP_NET.num_addresses - 2)

    def reserve(self, ip: str) -> None:
        self._used.add(ip)

    def release(self, ip: str) -> None:
        self._used.discard(ip)

    def allocate(self) -> str:
        size = CLUSTER_IP_NET.num_addresses
        for _ in range(size):
            candidate = str(CLUSTER_IP_NET.network_address + self._next)
            self._next = self._next % (size - 2) + 1
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate
        raise RuntimeError("cluster IP range 127.1.0.0/16 is exhausted")

    def in_use(self, ip: str) -> bool:
        return ip in self._used


def default_service(obj: Obj, old: Obj | None, ips: IpAllocator) -> list[Cause]:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if "targetPort" not in port and "port" in port:
            port["targetPort"] = port["port"]
    old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
    ip = spec.get("clusterIP")
    if old_ip:
        if ip and ip != old_ip:
            return [
                Cause(
                    "spec.clusterIPs[0]",
                    "FieldValueInvalid",
                    f'Invalid value: []string{{"{ip}"}}: may not change once set',
                )
            ]
        spec["clusterIP"] = old_ip
    elif ip and ip != "None":
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return [Cause("spec.clusterIP", "FieldValueInvalid", f'Invalid value: "{ip}"')]
        if ips.in_use(ip):
            return [
                Cause(
                    "spec.clusterIPs",
                    "FieldValueInvalid",
                    f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: '
                    "provided IP is already allocated",
                )
            ]
        ips.reserve(ip)
    elif not ip:
        spec["clusterIP"] = ips.allocate()
    spec["clusterIPs"] = [spec["clusterIP"]]
    if old is None:
        obj.setdefault("status", {"loadBalancer": {}})
    return []


# metav1.MicroTime as the API server decodes it: six fractional digits, then Z or an offset.
_MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


def micro_time_error(kind: str, obj: Obj) -> str | None:
    """Why an events.k8s.io Event's `eventTime` cannot be decoded (a real server answers 400:
    "2026-01-01T00:00:00Z" lacks the microseconds a MicroTime must carry), or None."""
    value = obj.get("eventTime")
    if kind != "Event" or value is None or _MICRO_TIME.match(str(value)):
        return None
    return (
        f'Event in version "v1" cannot be handled as a Event: parsing time "{value}" as '
        '"2006-01-02T15:04:05.000000Z07:00": cannot parse it as a MicroTime'
    )


POD_UPDATE_FORBIDDEN = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` "
    "(only additions to existing tolerations)"
)


def _pod_spec_fixed_part(spec: Obj) -> Obj:
    """The part of a pod's spec no update may change (pure)."""
    fixed = copy.deepcopy(spec)
    for key in ("containers", "initContainers"):
        for container in fixed.get(key) or []:
            container.pop("image", None)
    fixed.pop("activeDeadlineSeconds", None)
    fixed.pop("tolerations", None)
    return fixed


def pod_update_errors(obj: Obj, old: Obj) -> list[Cause]:
    """A real API server refuses any pod update that changes more than the container
    images, activeDeadlineSeconds or adds tolerations (a pod is not edited, it is
    replaced): the same 422 here."""
    spec, before = obj.get("spec") or {}, old.get("spec") or {}
    kept = before.get("tolerations") or []
    added_only = (spec.get("tolerations") or [])[: len(kept)] == kept
    if _pod_spec_fixed_part(spec) != _pod_spec_fixed_part(before) or not added_only:
        return [Cause("spec", "FieldValueForbidden", POD_UPDATE_FORBIDDEN)]
    return []


def default_builtin(kind: str, obj: Obj, old: Obj | None, ips: IpAllocator) -> list[Cause]:
    """Apply the defaults of built-in kinds; returns field errors."""
    if kind == "Service":
        return default_service(obj, old, ips)
    if kind == "Pod":
        for container in (obj.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                port.setdefault("protocol", "TCP")
    if kind == "Pod" and old is None:
        obj["status"] = {"phase": "Pending"}
    if kind == "Pod" and old is not None:
        return pod_update_errors(obj, old)
    if kind == "Secret" and not obj.get("type"):
        obj["type"] = "Opaque"
    if kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        if old is None:
            obj["status"] = {"phase": "Active"}
    if kind == "Pod" and not (obj.get("spec") or {}).get("containers"):
        return [Cause("spec.containers", "FieldValueRequired", "Required value")]
    return []
