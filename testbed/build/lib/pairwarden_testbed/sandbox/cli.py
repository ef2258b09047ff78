"""`pairwarden-testbed sandbox up`: serve the sandbox in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from .kubeconfig import write_kubeconfig
from .server import ApiServer


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verb", choices=["up"], help="up: start the API server")
    parser.add_argument("--kubeconfig", required=True, type=Path, help="kubeconfig to write")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--data-dir", type=Path, help="persist objects here (SQLite)")
    parser.add_argument(
        "--crds",
        type=Path,
        help="install the CRDs in this directory's YAML files instead of the FailoverPair CRD"
        " generated from the installed pairwarden's models",
    )


async def _serve(args: argparse.Namespace) -> int:
    server = ApiServer(data_dir=args.data_dir, crds_dir=args.crds)
    url = await server.start(port=args.port)
    write_kubeconfig(args.kubeconfig, url)
    print(f"sandbox API server listening on {url} (kubeconfig: {args.kubeconfig})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
    print("sandbox API server stopped", file=sys.stderr, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))
