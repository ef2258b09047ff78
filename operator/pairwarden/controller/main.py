"""`pairwarden operator`: runs kopf with pairwarden's handlers and serves /metrics and /healthz."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os

import kopf

from pairwarden.controller import metrics
from pairwarden.controller.replication import ReplicationSettings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, $KUBECONFIG)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch namespace")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all namespaces")
    parser.add_argument("--peering", default="pairwarden", help="kopf peering name")
    parser.add_argument("--standalone", action="store_true", help="no peering: single replica")
    parser.add_argument("--priority", type=int, default=0, help="peering priority")
    parser.add_argument("--metrics-address", default=os.environ.get("POD_IP", "0.0.0.0"))
    parser.add_argument("--metrics-port", type=int, default=8080, help="/metrics and /healthz")
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
    parser.add_argument("--agent-port", type=int, default=8080, help="agents' HTTP port")
    parser.add_argument("-v", "--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf logs in through the kubernetes client
    kopf.configure(verbose=args.verbose)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if not args.verbose:  # kopf logs every handled watch event at INFO: thousands per minute
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = args.namespace or ([] if args.all_namespaces else [_own_namespace()])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args, namespaces))
    return 0


def _own_namespace() -> str:
    return os.environ.get("POD_NAMESPACE", "default")


async def _serve(args: argparse.Namespace, namespaces: list[str]) -> None:
    from pairwarden.controller import handlers  # registers the handlers with kopf

    # No stop flag of our own: kopf handles SIGINT and SIGTERM in the main thread, and a flag
    # nobody raises would leave kopf's waiter on it hung for 5 s at every stop.
    runner = await metrics.serve(args.metrics_address, args.metrics_port)
    try:
        await kopf.operator(
            clusterwide=args.all_namespaces,
            namespaces=namespaces,
            standalone=args.standalone,
            peering_name=None if args.standalone else args.peering,
            priority=args.priority,
            memo=handlers.new_memo(
                args.kubeconfig,
                [] if args.all_namespaces else namespaces,
                ReplicationSettings(
                    image=args.replication_image,
                    service_account=args.replication_service_account,
                    agent_port=args.agent_port,
                ),
            ),
        )
    finally:
        await runner.cleanup()
