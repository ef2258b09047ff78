"""`pairwarden operator`: runs kopf with pairwarden's handlers, serves /metrics and /readyz, and
kopf's liveness endpoint (/healthz on --health-port)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import kopf
from aiohttp import web
from kubernetes_asyncio.client import ApiClient

from pairwarden.controller import alerts, health, metrics, peering
from pairwarden.controller.netpol import PolicySettings
from pairwarden.controller.replication import ReplicationSettings
from pairwarden.kube import async_api_client


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, $KUBECONFIG)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="serve this namespace (an exact name, not a pattern: kopf's namespace scanning"
        " is off, controller/discovery.py); repeat for several",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all namespaces")
    parser.add_argument("--peering", default="pairwarden", help="kopf peering name")
    parser.add_argument("--standalone", action="store_true", help="no peering: single replica")
    parser.add_argument(
        "--priority",
        type=peering.priority_of,
        default=0,
        help="peering priority: a number, or a StatefulSet pod name (its ordinal)",
    )
    parser.add_argument("--metrics-address", default=os.environ.get("POD_IP", "0.0.0.0"))
    parser.add_argument("--metrics-port", type=int, default=8080, help="/metrics and /readyz")
    parser.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="serve kopf's liveness endpoint, /healthz, on this port (fails when a watch task"
        " has ended; default: off, as several operators may share a host in tests)",
    )
    parser.add_argument(
        "--replication-image",
        default=os.environ.get("PAIRWARDEN_REPLICATION_IMAGE", "pairwarden/agent:dev"),
        help="image of replication Jobs (it runs `pairwarden replicate`)",
    )
    parser.add_argument(
        "--replication-service-account",
        default=os.environ.get("PAIRWARDEN_REPLICATION_SERVICE_ACCOUNT"),
        help="ServiceAccount of replication Jobs",
    )
    parser.add_argument(
        "--agent-replication-port",
        "--agent-port",
        dest="agent_port",
        type=int,
        default=ReplicationSettings.agent_port,
        help="the agents' file API port (replication Jobs' URLs; the NetworkPolicy)",
    )
    parser.add_argument(
        "--agent-metrics-port",
        type=int,
        default=PolicySettings.metrics_port,
        help="the agents' /metrics port (the NetworkPolicy admits it)",
    )
    parser.add_argument(
        "--agent-peer-port",
        type=int,
        default=PolicySettings.peer_port,
        help="the agents' failsafe peer link port (the NetworkPolicy admits it from the pair's "
        "members only)",
    )
    parser.add_argument(
        "--network-policies",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per pair, a NetworkPolicy admitting the file API from the pair's replication"
        " Jobs only (controller/netpol.py)",
    )
    parser.add_argument(
        "--network-policy-metrics-from",
        type=_peers,
        default=(),
        metavar="JSON",
        help="NetworkPolicyPeers (a JSON list) admitted to the agents' metrics port;"
        " default: every source",
    )
    parser.add_argument(
        "--alertmanager-port",
        type=int,
        default=None,
        help="serve an Alertmanager webhook receiver at POST /alertmanager (default: off)",
    )
    parser.add_argument(
        "--alertmanager-token-file",
        default=os.environ.get("PAIRWARDEN_ALERTMANAGER_TOKEN_FILE"),
        help="file holding the bearer token the receiver requires (a mounted Secret)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.alertmanager_port is not None and not args.alertmanager_token_file:
        print("--alertmanager-port needs --alertmanager-token-file: the receiver is never open")
        return 2
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf logs in through the kubernetes client
    kopf.configure(verbose=args.verbose)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if not args.verbose:  # kopf logs every handled watch event at INFO: thousands per minute
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = args.namespace or ([] if args.all_namespaces else [_own_namespace()])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, namespaces))
    # kopf has stopped every daemon and watch by now. The interpreter's own teardown would
    # then run the cycle collector over every object left (the client libraries' model
    # classes, every pair's state): 5-12 s of a starved core after SIGTERM, measured on a
    # loaded machine, against a pod's grace period. Frozen objects are skipped by it.
    gc.freeze()
    return 0


def _peers(text: str) -> tuple[dict[str, Any], ...]:
    """A JSON list of NetworkPolicyPeer objects; anything else is refused at start."""
    try:
        peers = json.loads(text or "[]")
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(peers, list) or not all(isinstance(p, dict) and p for p in peers):
        raise argparse.ArgumentTypeError("expected a JSON list of NetworkPolicyPeer objects")
    return tuple(peers)


def _own_namespace() -> str:
    return os.environ.get("POD_NAMESPACE", "default")


async def _serve(args: argparse.Namespace, namespaces: list[str]) -> None:
    from pairwarden.controller import handlers  # registers the handlers with kopf

    # No stop flag of our own: kopf handles SIGINT and SIGTERM in the main thread, and a flag
    # nobody raises would leave kopf's waiter on it hung for 5 s at every stop.
    memo = handlers.new_memo(
        args.kubeconfig,
        [] if args.all_namespaces else namespaces,
        ReplicationSettings(
            image=args.replication_image,
            service_account=args.replication_service_account,
            agent_port=args.agent_port,
        ),
        PolicySettings(
            args.agent_port,
            args.agent_metrics_port,
            args.network_policy_metrics_from,
            peer_port=args.agent_peer_port,
        )
        if args.network_policies
        else None,
    )

    # In a pod (the chart sets POD_NAME): a peering identity naming the pod, so this process
    # removes its predecessors' entries at start (controller/peering.py) and acts at once.
    pod = os.environ.get("POD_NAME", "")
    identity = peering.new_identity(pod, datetime.now(UTC)) if pod and not args.standalone else None
    memo.peer = handlers.PeerIdentity(identity, pod) if identity else None

    def not_ready() -> str | None:
        return health.not_ready("runtime" in memo, memo.get("lease_watches"))

    runner = await metrics.serve(args.metrics_address, args.metrics_port, not_ready)
    receiver = await _alertmanager(args, namespaces)
    try:
        await kopf.operator(
            clusterwide=args.all_namespaces,
            namespaces=namespaces,
            standalone=args.standalone,
            peering_name=None if args.standalone else args.peering,
            priority=args.priority,
            identity=cast(Any, identity),  # kopf's private NewType of str
            memo=memo,
            liveness_endpoint=(
                f"http://{args.metrics_address}:{args.health_port}/healthz"
                if args.health_port
                else None
            ),
        )
    finally:
        if receiver is not None:
            await receiver[0].cleanup()
            await receiver[1].close()
        await runner.cleanup()


async def _alertmanager(
    args: argparse.Namespace, namespaces: list[str]
) -> tuple[web.AppRunner, ApiClient] | None:
    """The Alertmanager receiver, when asked for; its own API client (kopf's is private)."""
    if args.alertmanager_port is None:
        return None
    api = await async_api_client(args.kubeconfig)
    watched = set(namespaces)
    receiver = alerts.Receiver(
        api=api,
        token_file=Path(args.alertmanager_token_file),
        default_namespace=_own_namespace(),
        allowed=lambda ns: args.all_namespaces or ns in watched,
    )
    return await alerts.serve(receiver, args.metrics_address, args.alertmanager_port), api
