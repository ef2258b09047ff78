"""Per pair, a NetworkPolicy `<pair>-members` over its member pods, owned by the pair (deleted
with it), as Strimzi does per Kafka cluster for the ports it owns:

- the agent's file API (replication port): only from the pair's replication Job pods, which
  carry `pairwarden.io/pair=<pair>` and `pairwarden.io/replication=true` (the operator itself
  never calls it);
- the agent's metrics and health port: from the peers the operator is given (the monitoring
  namespace), else from anywhere;
- the callers' ports, the target ports of the pair's Service: from anywhere;
- the agents' failsafe peer link (peer port): only from the pair's member pods (each
  message is authenticated with the pair's peer key besides).

Any NetworkPolicy that selects a pod isolates it on every port, so the callers' ports must be
listed: they are read from the Service. Any other port of a member pod (an admin UI) needs a
NetworkPolicy of the user's own; policies add up. The voicemail's control port listens on the
pod's loopback and needs none.

The policy selects pods by the labels the operator gives members (pods.labels_for), so it
applies once a pod is a labelled member. The Service and the policy are read again every
RECHECK_SECONDS, so a port added to the Service is admitted within that time; the policy is
written only when it differs. Refused (an operator installed without these rights) or any API
error, or a missing Service (the pair applied before it): logged, tried again within
RETRY_SECONDS. The pair is served meanwhile, for
the policy guards a token-protected API and is not on the call path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from pairwarden.clock import Clock
from pairwarden.controller.client import MERGE_PATCH, status_of
from pairwarden.controller.jobs import LABEL_REPLICATION
from pairwarden.protocol import LABEL_MEMBER, LABEL_PAIR, MEMBERS

log = logging.getLogger("pairwarden.controller")
RECHECK_SECONDS = 300.0
# A pair may be created before its Service (its pods and Service applied after it), and a
# write may fail: the members would then run without their policy for a whole
# RECHECK_SECONDS. Tried again soon instead (the reconciler wakes for it: `due_in`).
RETRY_SECONDS = 5.0
REFUSED = "refused (the operator needs networkpolicies get/create/patch and services get)"


@dataclass(frozen=True)
class PolicySettings:
    """From the operator's command line (the chart's `networkPolicy` values)."""

    replication_port: int = 8082
    metrics_port: int = 8080
    # NetworkPolicyPeers admitted to the metrics port; empty: every source.
    metrics_from: tuple[dict[str, Any], ...] = ()
    peer_port: int = 8083  # the agents' failsafe peer link (agent.peer.PEER_PORT)


def policy_name(pair: str) -> str:
    return f"{pair}-members"


def caller_ports(service: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The Service's target ports as NetworkPolicy ports (a named targetPort stays a name:
    a policy matches named container ports too). None: no Service yet."""
    spec = (service or {}).get("spec") or {}
    ports = []
    for port in spec.get("ports") or []:
        target = port.get("targetPort") or port.get("port")
        entry = {"protocol": port.get("protocol") or "TCP", "port": target}
        if target is not None and entry not in ports:
            ports.append(entry)
    return ports


def policy_spec(
    pair: str, callers: list[dict[str, Any]], settings: PolicySettings
) -> dict[str, Any]:
    """The wanted spec (pure), complete as the API server stores it (explicit protocols and
    policyTypes), so an unchanged policy compares equal and is not written."""
    jobs = {"podSelector": {"matchLabels": {LABEL_PAIR: pair, LABEL_REPLICATION: "true"}}}
    metrics: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": settings.metrics_port}]}
    if settings.metrics_from:
        metrics["from"] = [dict(peer) for peer in settings.metrics_from]
    members = {"key": LABEL_MEMBER, "operator": "In", "values": list(MEMBERS)}
    selector = {"matchLabels": {LABEL_PAIR: pair}, "matchExpressions": [members]}
    pair_members = {"podSelector": {**selector}}
    ingress = [
        {"from": [jobs], "ports": [{"protocol": "TCP", "port": settings.replication_port}]},
        metrics,
        {"from": [pair_members], "ports": [{"protocol": "TCP", "port": settings.peer_port}]},
    ]
    if callers:
        ingress.append({"ports": callers})
    return {
        "podSelector": selector,
        "policyTypes": ["Ingress"],
        "ingress": ingress,
    }


def policy_body(
    pair: str, callers: list[dict[str, Any]], settings: PolicySettings, owner: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(pair),
            "labels": {LABEL_PAIR: pair},
            "ownerReferences": [owner],
        },
        "spec": policy_spec(pair, callers, settings),
    }


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    """A user's policy of the same name is never overwritten."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner.get("uid") for ref in refs)


@dataclass
class Policies:
    """Keeps each pair's policy; `ensure` is cheap to call at every reconcile (it acts at most
    once per RECHECK_SECONDS per pair)."""

    settings: PolicySettings
    clock: Clock
    _next: dict[tuple[str, str], float] = field(default_factory=dict)

    async def ensure(
        self, api: client.ApiClient, namespace: str, pair: str, service: str, owner: dict[str, Any]
    ) -> None:
        key = (namespace, pair)
        now = self.clock.monotonic()
        if now < self._next.get(key, now):
            return
        self._next[key] = now + RETRY_SECONDS
        try:
            if await self._write(api, namespace, pair, service, owner):
                self._next[key] = now + RECHECK_SECONDS
        except client.ApiException as exc:
            why = REFUSED if status_of(exc) == 403 else "not written, will try again"
            log.warning("%s/%s: NetworkPolicy %s: %s", namespace, pair, why, exc.reason)

    def due_in(self, namespace: str, pair: str) -> float | None:
        """Seconds until `ensure` acts again for this pair (None: never called), so the
        reconciler of a quiet pair wakes for a retry instead of at its next resync."""
        at = self._next.get((namespace, pair))
        return None if at is None else at - self.clock.monotonic()

    async def _write(
        self, api: client.ApiClient, namespace: str, pair: str, service: str, owner: dict[str, Any]
    ) -> bool:
        """Write the policy if it differs; False when there is no Service to take ports from."""
        core, net = client.CoreV1Api(api), client.NetworkingV1Api(api)
        found = await _read(core.read_namespaced_service(service, namespace), api)
        if found is None:
            log.info("%s/%s: no Service %s yet: no NetworkPolicy", namespace, pair, service)
            return False
        body = policy_body(pair, caller_ports(found), self.settings, owner)
        name = policy_name(pair)
        existing = await _read(net.read_namespaced_network_policy(name, namespace), api)
        if existing is None:
            await net.create_namespaced_network_policy(namespace, body)
        elif not owned_by(existing, owner):
            log.warning("%s/%s: %s is not this pair's: left alone", namespace, pair, body["kind"])
        elif existing.get("spec") != body["spec"]:
            # A merge patch replaces each list whole: the spec becomes exactly ours.
            await net.patch_namespaced_network_policy(
                name, namespace, {"spec": body["spec"]}, _content_type=MERGE_PATCH
            )
        return True


async def _read(call: Any, api: client.ApiClient) -> dict[str, Any] | None:
    """The object as plain JSON (camelCase), or None on 404."""
    try:
        obj = await call
    except client.ApiException as exc:
        if status_of(exc) == 404:
            return None
        raise
    result: dict[str, Any] = api.sanitize_for_serialization(obj)
    return result
