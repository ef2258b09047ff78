"""`python -m pairwarden.replication.serve`: a file API on its own, for tests, the benchmark
and debugging (in a pod the agent serves it). Prints `port <n>` once listening."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from pairwarden.protocol import REPLICATED_DIRECTORIES as DATA_DIRECTORIES
from pairwarden.replication.fileapi import DEFAULT_MAX_BODY, HEADER_TIMEOUT, make_app, serve
from pairwarden.replication.paths import PathRefused


async def _main(args: argparse.Namespace) -> int:
    token = args.token_file.read_text().strip()
    app = make_app(args.root, args.directories, args.pair, token, args.max_body)
    runner, port = await serve(app, args.host, args.port, header_timeout=args.header_timeout)
    print(f"port {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pairwarden.replication.serve")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--pair", required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--directories", nargs="+", default=list(DATA_DIRECTORIES))
    parser.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY)
    parser.add_argument(
        "--header-timeout", type=float, default=HEADER_TIMEOUT, help="s to send headers"
    )
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except PathRefused as exc:
        print(f"bad configuration: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
