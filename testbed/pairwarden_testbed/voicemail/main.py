"""`pairwarden-testbed voicemail`: the reference voicemail process. Starts standby. SIGTERM:
no new calls (its status says `stopping`, so the agent reports it down and the other member
takes over), calls in progress finish within `--stop-grace`, then it exits.

Calls arrive on two front ends sharing one core: the TCP line protocol (`--call-port`) and
SIP over UDP (`--sip-port`, 5060 unless `--no-sip`). Voice messages go to the message store
(`--message-store`, a directory both members mount) or, while it is offline, wait in the
replicated `UnityMTA` directory until the active member drains them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import socket
from pathlib import Path

from aiohttp import web

from pairwarden.clock import SystemClock
from pairwarden.orders import ORDER_KEY_FILE, read_key
from pairwarden.protocol import DATABASE_NAME, REPLICATED_DIRECTORIES
from pairwarden.replication.storage import Batches
from pairwarden_testbed.voicemail.control import make_app
from pairwarden_testbed.voicemail.core import VoicemailCore
from pairwarden_testbed.voicemail.lineproto import CallFrontend, LineCallServer
from pairwarden_testbed.voicemail.messagestore import DirectoryMessageStore, MessageQueue
from pairwarden_testbed.voicemail.sipua import SipServer
from pairwarden_testbed.voicemail.store import MessageDatabase, prepare_data_dir

log = logging.getLogger("pairwarden_testbed.voicemail")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=os.environ.get("POD_IP") or "127.0.0.1",
        help="address to bind (default: $POD_IP or 127.0.0.1)",
    )
    parser.add_argument("--call-port", type=int, default=5070, help="TCP call port")
    parser.add_argument("--control-port", type=int, default=8081, help="control/health HTTP port")
    parser.add_argument(
        "--control-address",
        default="127.0.0.1",
        help="address of the control port (default 127.0.0.1: only the agent in the same pod"
        " can order a role)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("voicemail-data"), help="files and UnityDb.sqlite"
    )
    parser.add_argument(
        "--order-key-file",
        type=Path,
        default=Path(ORDER_KEY_FILE),
        help="the agent's order key (a volume the agent writes and this container mounts"
        " read-only): a role order not signed with it is refused (401)",
    )
    parser.add_argument(
        "--pod", default=os.environ.get("POD_NAME") or socket.gethostname(), help="pod name"
    )
    parser.add_argument("--sip-port", type=int, default=5060, help="SIP UDP port (0: any free)")
    parser.add_argument("--no-sip", action="store_true", help="no SIP front end")
    parser.add_argument(
        "--sip-contact", default=None, help="address put in Contact and SDP (default: --address)"
    )
    parser.add_argument(
        "--message-store",
        type=Path,
        default=None,
        help="message store directory, shared by both members; never created here (missing"
        " = offline); without it messages wait in UnityMTA",
    )
    parser.add_argument(
        "--store-offline", action="store_true", help="start with the message store offline"
    )
    parser.add_argument(
        "--mwi-target",
        type=_hostport,
        default=None,
        help="host:port every MWI NOTIFY goes to (default: the caller's From URI)",
    )
    parser.add_argument(
        "--answer-delay-ms", type=int, default=0, help="ring this long before answering"
    )
    parser.add_argument(
        "--drain-interval", type=float, default=2.0, help="seconds between UnityMTA drains"
    )
    parser.add_argument(
        "--recovery-wait",
        type=float,
        default=30.0,
        help="at start, how long to wait for the agent's file API to finish a replication "
        "commit a kill left half done, before finishing it here",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=25.0,
        help="on SIGTERM, how long calls in progress may take to finish (keep it under the "
        "pod's terminationGracePeriodSeconds)",
    )


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host, int(port)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(serve(args))


async def serve(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    await committed_tree(data_dir, args.recovery_wait)
    prepare_data_dir(data_dir)
    store = MessageDatabase(data_dir / DATABASE_NAME)
    core = VoicemailCore(args.pod, SystemClock())
    message_store = DirectoryMessageStore(args.message_store or data_dir / "no-message-store")
    message_store.forced_offline = args.store_offline or args.message_store is None
    queue = MessageQueue(message_store, data_dir / "UnityMTA")
    frontends: list[CallFrontend] = [LineCallServer(core, store, args.address, args.call_port)]
    sip_server: SipServer | None = None
    if not args.no_sip:
        sip_server = SipServer(
            core,
            args.address,
            args.sip_port,
            queue=queue,
            contact_host=args.sip_contact,
            mwi_target=args.mwi_target,
            answer_delay=args.answer_delay_ms / 1000.0,
        )
        frontends.append(sip_server)
    settings = {"callPort": args.call_port, "sipPort": None if args.no_sip else args.sip_port}
    app = make_app(
        core,
        store,
        settings,
        queue=queue,
        extra_status=sip_server.status if sip_server is not None else None,
        order_key=lambda: read_key(args.order_key_file),
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    drainer: asyncio.Task[None] | None = None
    try:
        for frontend in frontends:
            await frontend.start()
        await web.TCPSite(runner, args.control_address, args.control_port).start()
        drainer = asyncio.create_task(_drain(core, queue, args.drain_interval))
        log.info(
            "voicemail %s standby, calls on %s:%d, sip %s, control on %s:%d, store %s",
            args.pod,
            args.address,
            args.call_port,
            "off" if sip_server is None else f"udp {args.address}:{sip_server.port}",
            args.control_address,
            args.control_port,
            args.message_store,
        )
        await stop.wait()
        await finish_calls(core, args.stop_grace)
        log.info("voicemail %s stopping", args.pod)
    finally:
        if drainer is not None:
            drainer.cancel()
        for frontend in frontends:
            await frontend.close()
        await runner.cleanup()
        store.close()
    return 0


async def committed_tree(root: Path, wait: float, poll: float = 0.05) -> list[str]:
    """Never start on a half-committed tree: a standby killed in the middle of a replication
    commit restarts with some files new and the rest old, until the file API (in the agent,
    which recovers at its start) rolls the commit forward. Wait for that; if the agent does
    not do it within `wait` seconds (no agent, no data dir for it), recover here. Returns the
    batches found half committed."""
    batches = Batches(root, list(REPLICATED_DIRECTORIES))
    pending = batches.committing()
    if not pending:
        return []
    log.info("voicemail: waiting for the file API to finish commit(s) %s", ", ".join(pending))
    for _ in range(math.ceil(wait / poll)):  # polled: the agent's process does the work
        if not batches.committing():
            return pending
        await asyncio.sleep(poll)
    log.warning("voicemail: no file API recovered %s; recovering here", ", ".join(pending))
    await asyncio.to_thread(batches.recover)
    return pending


async def finish_calls(core: VoicemailCore, grace: float, poll: float = 0.05) -> int:
    """A clean stop: take no new call from now on (the agent's release has the other member
    take over), and let the calls in progress end on their own within `grace` seconds, as
    docs/protocol.md promises. Returns how many were still going when time ran out."""
    core.drain()
    if core.calls_in_progress:
        log.info(
            "voicemail %s: %d call(s) in progress may finish", core.pod, core.calls_in_progress
        )
    for _ in range(math.ceil(grace / poll)):  # polled: the core has no hang-up hook
        if not core.calls_in_progress:
            break
        await asyncio.sleep(poll)
    return core.calls_in_progress


async def _drain(core: VoicemailCore, queue: MessageQueue, interval: float) -> None:
    """The active member moves queued messages to the store once it is back (the reference's
    UMR). The standby leaves them: its copy of UnityMTA is a replica, and delivery is
    idempotent by message id anyway."""
    while True:
        await asyncio.sleep(interval)
        if core.answering() and queue.queued():
            try:
                sent = await asyncio.to_thread(queue.drain)
            except OSError as exc:
                log.warning("draining UnityMTA failed: %s", exc)
                continue
            if sent:
                log.info("delivered %d queued message(s) to the message store", sent)
