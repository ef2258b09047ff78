"""`pairwarden-testbed sandbox up`: serve the sandbox in the foreground until SIGINT or SIGTERM;
with `--with-node`, also the local kubelet, kube-proxy and Job runner, so pods applied with
kubectl run (as local processes) and Services answer."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path

from .server import ApiServer


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verb", choices=["up"], help="up: start the API server")
    parser.add_argument("--kubeconfig", required=True, type=Path, help="kubeconfig to write")
    parser.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="USER",
        help="also write USER.kubeconfig beside --kubeconfig: another superuser token, told"
        " apart in /sandbox/stats (repeatable)",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--data-dir", type=Path, help="persist objects here (SQLite)")
    parser.add_argument(
        "--crds",
        type=Path,
        help="install the CRDs in this directory's YAML files instead of the FailoverPair CRD"
        " generated from the installed pairwarden's models",
    )
    parser.add_argument(
        "--no-crds",
        action="store_true",
        help="serve no CRD at start: a bare cluster, for `helm install` of the chart (which"
        " installs its CRDs and cannot adopt ones it did not create)",
    )
    parser.add_argument(
        "--with-node",
        action="store_true",
        help="also run the local node (kubelet, kube-proxy, Job runner) for --node-namespace",
    )
    parser.add_argument(
        "--node-namespace",
        action="append",
        metavar="NS",
        help="a namespace whose pods the local node runs (repeatable; default: voice)",
    )
    parser.add_argument("--node-dir", type=Path, help="the node's work dir (default: a temp dir)")


async def _serve(args: argparse.Namespace) -> int:
    # a directory that does not exist installs nothing (ApiServer.install_crds)
    crds = Path(os.devnull) / "none" if args.no_crds else args.crds
    server = ApiServer(data_dir=args.data_dir, crds_dir=crds)
    url = await server.start(port=args.port)
    server.write_kubeconfig(args.kubeconfig)
    for user in args.identity:
        server.write_kubeconfig(args.kubeconfig.with_name(f"{user}.kubeconfig"), user)
    print(
        f"sandbox API server listening on {url} and {server.client_url} (kubeconfig: "
        f"{args.kubeconfig})",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.ExitStack() as stack:
        if args.with_node:
            # the node's clients call this server synchronously: start it off the loop
            node = await asyncio.to_thread(_start_node, args, stack)
            print(f"local node running pods of namespaces {', '.join(node)}", flush=True)
        await stop.wait()
        await asyncio.to_thread(stack.close)
    await server.stop()
    print("sandbox API server stopped", file=sys.stderr, flush=True)
    return 0


def _start_node(args: argparse.Namespace, stack: contextlib.ExitStack) -> list[str]:
    from pairwarden_testbed.localnode.node import LocalNode

    workdir = args.node_dir
    if workdir is None:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pw-node-")))
    namespaces = args.node_namespace or ["voice"]
    stack.enter_context(LocalNode(args.kubeconfig, namespaces, workdir))
    return list(namespaces)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))
