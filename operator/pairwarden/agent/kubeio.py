"""The agent's only contact with the API: get the pair spec, get/update its member Lease,
read and watch Leases. Every request has a deadline, so a partitioned agent keeps running its
own fencing clock instead of hanging in a call.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from pairwarden import GROUP, PLURAL, VERSION, watching
from pairwarden.kube import absent_as_none

log = logging.getLogger(__name__)

TRANSIENT = (ApiException, aiohttp.ClientError, TimeoutError, OSError, ValueError)


@dataclass(frozen=True)
class LeaseView:
    name: str
    holder: str = ""
    transitions: int = 0
    renew_time: str = ""
    resource_version: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> LeaseView:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        return cls(
            name=str(meta.get("name", "")),
            holder=str(spec.get("holderIdentity") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
            renew_time=str(spec.get("renewTime") or ""),
            resource_version=str(meta.get("resourceVersion") or ""),
            annotations=dict(meta.get("annotations") or {}),
        )


class LeaseMissing(Exception):
    """The member Lease does not exist (yet): the operator creates it."""


class KubeIO(Protocol):
    async def get_pair_spec(self) -> Mapping[str, Any] | None: ...

    async def get_lease(self, name: str) -> LeaseView | None: ...

    async def renew(
        self,
        name: str,
        holder: str,
        annotations: Mapping[str, str],
        duration: int,
        now: datetime,
    ) -> LeaseView: ...

    def watch_lease(self, name: str) -> AsyncIterator[LeaseView | None]: ...

    async def close(self) -> None: ...


class KubernetesIO:
    """KubeIO over kubernetes_asyncio."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        pair: str,
        timeout: float = 5.0,
        watch_timeout: int = 50,
    ) -> None:
        self._api = api
        self._leases = client.CoordinationV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._ns = namespace
        self._pair = pair
        self.timeout = timeout
        self.watch_timeout = watch_timeout  # server-side; a silent stream is redone this often
        self._cache: dict[str, Any] = {}

    def _dict(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = self._api.sanitize_for_serialization(obj)
        return out

    async def get_pair_spec(self) -> Mapping[str, Any] | None:
        obj = await absent_as_none(
            self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self._ns, PLURAL, self._pair, _request_timeout=self.timeout
            )
        )
        if obj is None:
            return None
        spec = obj.get("spec") if isinstance(obj, dict) else None
        return spec if isinstance(spec, dict) else {}

    async def get_lease(self, name: str) -> LeaseView | None:
        lease = await absent_as_none(
            self._leases.read_namespaced_lease(name, self._ns, _request_timeout=self.timeout)
        )
        if lease is None:
            return None
        return LeaseView.from_dict(self._dict(lease))

    async def renew(
        self,
        name: str,
        holder: str,
        annotations: Mapping[str, str],
        duration: int,
        now: datetime,
    ) -> LeaseView:
        """Update the member Lease (never create it); on 409 re-get and retry."""
        for _ in range(3):
            lease = self._cache.get(name)
            if lease is None:
                try:
                    lease = await self._leases.read_namespaced_lease(
                        name, self._ns, _request_timeout=self.timeout
                    )
                except ApiException as exc:
                    if exc.status == 404:
                        raise LeaseMissing(name) from exc
                    raise
            spec = lease.spec
            if holder and spec.holder_identity != holder:
                spec.acquire_time = now
            spec.holder_identity = holder or None
            spec.renew_time = now
            spec.lease_duration_seconds = duration
            lease.metadata.annotations = {**(lease.metadata.annotations or {}), **annotations}
            try:
                updated = await self._leases.replace_namespaced_lease(
                    name, self._ns, lease, _request_timeout=self.timeout
                )
            except ApiException as exc:
                self._cache.pop(name, None)
                if exc.status == 409:
                    continue
                if exc.status == 404:
                    raise LeaseMissing(name) from exc
                raise
            except BaseException:
                self._cache.pop(name, None)  # the object may have been mutated half-way
                raise
            self._cache[name] = updated
            return LeaseView.from_dict(self._dict(updated))
        raise ApiException(status=409, reason=f"lease {name}: conflict after 3 attempts")

    async def watch_lease(self, name: str) -> AsyncIterator[LeaseView | None]:
        """Yield the Lease (None when absent) now and on every change, forever."""
        lister = functools.partial(
            self._leases.list_namespaced_lease, self._ns, field_selector=f"metadata.name={name}"
        )
        async for event in watching.list_then_watch(lister, f"lease {name}", self.watch_timeout):
            if isinstance(event, watching.Listed):
                yield LeaseView.from_dict(event.items[0]) if event.items else None
            else:
                yield None if event.kind == "DELETED" else LeaseView.from_dict(event.obj)

    async def close(self) -> None:
        await self._api.close()
