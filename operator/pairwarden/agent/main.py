"""`pairwarden agent`: the member agent sidecar (docs/protocol.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pairwarden.agent.adapters import HookError, HookVoicemail, Unusable, hook_config
from pairwarden.agent.core import accepts_replication
from pairwarden.agent.cpu import CgroupSampler, CpuSampler
from pairwarden.agent.kubeio import KubernetesIO
from pairwarden.agent.metrics import AgentMetrics
from pairwarden.agent.peer import (
    KEY_MOUNT,
    PEER_PATH,
    PEER_PORT,
    HttpTransport,
    PeerLink,
    key_reader,
)
from pairwarden.agent.runner import Agent, AgentConfig, SettingsReader
from pairwarden.agent.state import AgentState
from pairwarden.agent.voicemail_client import VoicemailClient
from pairwarden.clock import SystemClock
from pairwarden.kube import async_api_client, retry_refusals
from pairwarden.orders import ORDER_KEY_FILE, OrderSigner, new_key, write_key
from pairwarden.protocol import REPLICATED_DIRECTORIES, call_contact
from pairwarden.replication.drift import read_member_settings
from pairwarden.replication.fileapi import header_bounded_runner, make_app, start_site
from pairwarden.replication.paths import PathRefused, check_directories
from pairwarden.replication.version import fingerprint

log = logging.getLogger("pairwarden.agent")

# Two ports, two audiences: metrics and health for the scraper (and anyone: they say nothing
# secret), the file API for the pair's replication Jobs only (controller/netpol.py admits just
# them). One port could not be told apart by a NetworkPolicy.
METRICS_PORT = 8080
REPLICATION_PORT = 8082


def configure(parser: argparse.ArgumentParser) -> None:
    pod_ip = os.environ.get("POD_IP") or "127.0.0.1"
    parser.add_argument("--pair", required=True, help="FailoverPair name")
    parser.add_argument("--member", required=True, choices=["primary", "secondary"])
    parser.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE") or "default")
    parser.add_argument("--pod", default=os.environ.get("POD_NAME"), help="default: $POD_NAME")
    parser.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, else in-cluster")
    parser.add_argument(
        "--voicemail-url",
        default="http://127.0.0.1:8081",
        help="the voicemail process's control port, on the pod's loopback",
    )
    parser.add_argument(
        "--order-key-file",
        type=Path,
        default=Path(ORDER_KEY_FILE),
        help="where to write the key that signs role orders, drawn anew at each start: a"
        " volume only this container writes and the voicemail container mounts read-only",
    )
    parser.add_argument(
        "--call-contact",
        default=f"{os.environ['POD_IP']}:5060" if os.environ.get("POD_IP") else "",
        help="host:port where callers reach this member's voicemail (SIP), written to the "
        "active Lease while it is active so the other member redirects callers there "
        "(default: $POD_IP:5060; empty: none)",
    )
    hooks = parser.add_argument_group(
        "generic voicemail adapter",
        "supervise any voicemail server instead of the reference process's control port "
        "(docs/voicemail-contract.md): each is http(s)://URL, tcp://HOST:PORT, sip://HOST:PORT "
        "(SIP OPTIONS) or a command line; orders are an HTTP call or a command",
    )
    hooks.add_argument("--voicemail-health", help="the server is up (enables the adapter)")
    hooks.add_argument("--voicemail-activate", help="start answering (renewed before expiry)")
    hooks.add_argument("--voicemail-deactivate", help="stop answering, keep calls in progress")
    hooks.add_argument("--voicemail-stats", help="JSON {calls, inactiveCalls, cpuPercent}")
    hooks.add_argument("--voicemail-hook-timeout", type=float, default=2.0, help="seconds")
    parser.add_argument("--state-dir", type=Path, default=None, help="persisted licensing clock")
    parser.add_argument("--metrics-address", default=pod_ip, help="/metrics and /healthz")
    parser.add_argument("--metrics-port", type=int, default=METRICS_PORT)
    parser.add_argument(
        "--replication-address", default=pod_ip, help="the file API (with --data-dir)"
    )
    parser.add_argument(
        "--replication-port",
        type=int,
        default=REPLICATION_PORT,
        help="the file API's own port, so a NetworkPolicy can admit only replication Jobs",
    )
    parser.add_argument("--poll-interval", type=float, default=0.2, help="voicemail poll, s")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the voicemail data directory: served to replication Jobs at /replication/",
    )
    parser.add_argument(
        "--replication-token-file",
        type=Path,
        default=Path("/var/run/pairwarden/replication/token"),
        help="the pair's replication token (Secret <pair>-replication-token, read per request)",
    )
    peer = parser.add_argument_group(
        "failsafe peer link",
        "the two agents of a pair speak directly, so the holder keeps answering while the API "
        "server is away and its peer promises not to (docs/protocol.md, Failsafe)",
    )
    peer.add_argument("--peer-address", default=pod_ip, help="where the peer link listens")
    peer.add_argument("--peer-port", type=int, default=PEER_PORT)
    peer.add_argument(
        "--peer-contact",
        default=f"{os.environ['POD_IP']}:{PEER_PORT}" if os.environ.get("POD_IP") else "",
        help="host:port where the other agent reaches this one, published in the member Lease "
        "(default: $POD_IP:8083)",
    )
    peer.add_argument(
        "--peer-key-file",
        type=Path,
        default=KEY_MOUNT,
        help="the pair's peer key (Secret <pair>-peer-key); absent: no failsafe, fence as before",
    )
    parser.add_argument(
        "--cpu-source",
        choices=["voicemail", "cgroup"],
        default="voicemail",
        help="voicemail: the process reports its own CPU; cgroup: this container's cgroup",
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.pod:
        log.error("--pod or $POD_NAME is required")
        return 2
    if args.call_contact and not call_contact(args.call_contact):
        # Not fatal: the member still serves; only the other member's redirect is lost.
        log.error(
            "--call-contact %r is not host:port; callers are not redirected here", args.call_contact
        )
    return asyncio.run(serve(args))


async def serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = AgentMetrics()
    api = await async_api_client(args.kubeconfig)
    retry_refusals(api)  # a renewal is a read and a replace: a refusal of either is retried
    kube = KubernetesIO(api, args.namespace, args.pair)
    voicemail = _voicemail(args)
    cpu: CpuSampler | None = CgroupSampler() if args.cpu_source == "cgroup" else None
    config = AgentConfig(
        pair=args.pair,
        member=args.member,
        namespace=args.namespace,
        pod=args.pod,
        poll_interval=args.poll_interval,
        call_contact=args.call_contact,
        peer_contact=args.peer_contact,
    )
    directories = await _replicated_directories(kube) if args.data_dir is not None else []
    transport = HttpTransport()
    link = PeerLink(
        args.pair, args.member, args.pod, key_reader(args.peer_key_file), SystemClock(), transport
    )
    agent = Agent(
        config,
        kube,
        voicemail,
        SystemClock(),
        state=AgentState(args.state_dir),
        cpu=cpu,
        metrics=metrics,
        data_version=(lambda: fingerprint(args.data_dir, directories)) if directories else None,
        member_settings=_settings_reader(args.data_dir),
        peer=link,
    )
    runners = [header_bounded_runner(_metrics_app(agent, metrics))]
    peers = [(header_bounded_runner(_peer_app(agent)), (args.peer_address, args.peer_port))]
    if args.data_dir is not None:
        token = _token_reader(args.replication_token_file)

        def writable() -> bool:
            return accepts_replication(agent.holder, config.pod)

        files = web.Application(client_max_size=1 << 20)
        served = make_app(args.data_dir, directories, args.pair, token, writable=writable)
        files.add_subapp("/replication/", served)
        runners.append(header_bounded_runner(files))
    try:
        for runner, (host, port) in [*zip(runners, _addresses(args), strict=False), *peers]:
            await runner.setup()
            await start_site(runner, host, port)
        log.info("agent %s (%s of %s) starting", args.pod, args.member, args.pair)
        await agent.run(stop)
    finally:
        for runner in [*runners, *(r for r, _ in peers)]:
            await runner.cleanup()
        await transport.close()
        await voicemail.close()
        await kube.close()
    return 0


def _addresses(args: argparse.Namespace) -> list[tuple[str, int]]:
    return [
        (args.metrics_address, args.metrics_port),
        (args.replication_address, args.replication_port),
    ]


async def _replicated_directories(kube: KubernetesIO) -> list[str]:
    """The pair's directory list, read once at start (a change needs an agent restart)."""
    try:
        spec = await kube.get_pair_spec()
    except Exception as error:  # the API may be away; the reference's six are the default
        log.warning("could not read the pair's replication directories: %r", error)
        spec = None
    directories, problem = replicated_directories(spec)
    if problem is not None:
        log.error("replication disabled on this member: %s", problem)
    return directories


def replicated_directories(spec: object) -> tuple[list[str], str | None]:
    """The directories to replicate, or none and why: a spec the operator would refuse
    (`../..`, the reserved state directory, a NUL) must not crash-loop the agent, whose
    heartbeat keeps the pair served; replication waits for a corrected spec and a restart."""
    section = spec.get("replication") if isinstance(spec, dict) else None
    listed = section.get("directories") if isinstance(section, dict) else None
    if not listed:
        return list(REPLICATED_DIRECTORIES), None
    if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
        return [], "spec.replication.directories: not a list of strings"
    try:
        return check_directories(listed), None
    except PathRefused as error:
        return [], f"spec.replication.directories: {error}"


def _voicemail(args: argparse.Namespace) -> VoicemailClient | HookVoicemail | Unusable:
    """The reference process's control port, or the generic adapter when a health hook is
    named. Hooks that cannot be used are logged and the member reports its service down (the
    other member serves) rather than exit: a bad argument must not crash-loop the pod."""
    signer = _order_signer(args.order_key_file)
    if not args.voicemail_health:
        return VoicemailClient(args.voicemail_url, signer)
    try:
        config = hook_config(
            args.voicemail_health,
            args.voicemail_activate or "",
            args.voicemail_deactivate or "",
            args.voicemail_stats,
            args.voicemail_hook_timeout,
        )
    except HookError as error:
        log.error("generic voicemail adapter: %s; reporting the service down", error)
        return Unusable()
    return HookVoicemail(config, SystemClock(), signer)


def _order_signer(path: Path) -> OrderSigner:
    """A new key at each start, so orders signed by an earlier run of this agent are refused.
    A key that cannot be written is logged, not fatal: the voicemail then refuses the orders
    (401) and the member does not answer, which the operator sees and works around."""
    key = new_key()
    try:
        write_key(path, key)
    except OSError as error:
        log.error("cannot write the order key %s: %r; the voicemail refuses orders", path, error)
    return OrderSigner(key)


def _settings_reader(data_dir: Path | None) -> SettingsReader | None:
    """With a data directory, the member's settings are the files (and command) the pair's
    spec names; without one, the agent digests what the voicemail process reports."""
    if data_dir is None:
        return None
    return lambda files, command: read_member_settings(data_dir, files, command)


def _token_reader(path: Path) -> Callable[[], str | None]:
    def read() -> str | None:
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    return read


def _peer_app(agent: Agent) -> web.Application:
    """The failsafe peer link: one POST, authenticated per message (agent.peer)."""

    async def peer(request: web.Request) -> web.Response:
        status, body = await agent.peer_request(await request.content.read(4096))
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application(client_max_size=4096)
    app.router.add_post(PEER_PATH, peer)
    return app


def _metrics_app(agent: Agent, metrics: AgentMetrics) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "answering": agent.verdict.answer,
                "reason": agent.verdict.reason,
                "epoch": agent.epoch,
                "holder": agent.holder,
                "failsafe": agent.verdict.failsafe,
            }
        )

    async def prometheus(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    return app
