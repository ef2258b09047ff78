"""`pairwarden voicemail`: the reference voicemail process. Starts standby; SIGTERM exits."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from pathlib import Path

from aiohttp import web

from pairwarden.clock import SystemClock
from pairwarden.voicemail.control import make_app
from pairwarden.voicemail.core import VoicemailCore
from pairwarden.voicemail.lineproto import LineCallServer
from pairwarden.voicemail.store import DATABASE_NAME, MessageStore, prepare_data_dir

log = logging.getLogger("pairwarden.voicemail")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=os.environ.get("POD_IP") or "127.0.0.1",
        help="address to bind (default: $POD_IP or 127.0.0.1)",
    )
    parser.add_argument("--call-port", type=int, default=5070, help="TCP call port")
    parser.add_argument("--control-port", type=int, default=8081, help="control/health HTTP port")
    parser.add_argument(
        "--data-dir", type=Path, default=Path("voicemail-data"), help="files and UnityDb.sqlite"
    )
    parser.add_argument(
        "--pod", default=os.environ.get("POD_NAME") or socket.gethostname(), help="pod name"
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(serve(args))


async def serve(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    prepare_data_dir(data_dir)
    store = MessageStore(data_dir / DATABASE_NAME)
    core = VoicemailCore(args.pod, SystemClock())
    calls = LineCallServer(core, store, args.address, args.call_port)
    runner = web.AppRunner(make_app(core, store, {"callPort": args.call_port}), access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await calls.start()
        await web.TCPSite(runner, args.address, args.control_port).start()
        log.info(
            "voicemail %s standby, calls on %s:%d, control on %s:%d",
            args.pod,
            args.address,
            args.call_port,
            args.address,
            args.control_port,
        )
        await stop.wait()
        log.info("voicemail %s stopping", args.pod)
    finally:
        await calls.close()
        await runner.cleanup()
        store.close()
    return 0
