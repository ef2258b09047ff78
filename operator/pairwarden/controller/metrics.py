"""Prometheus metrics and the /healthz probe, served on one port beside kopf."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

PAIR = ("namespace", "pair")

FAILOVERS = Counter(
    "pairwarden_role_changes_total",
    "Changes of the active member, by cause (failover, failback, demotion).",
    [*PAIR, "cause", "to"],
)
WARNINGS = Counter(
    "pairwarden_warnings_total", "Warnings recorded as Events, by reason.", [*PAIR, "reason"]
)
HEARTBEAT_AGE = Gauge(
    "pairwarden_heartbeat_age_seconds",
    "Seconds since the operator last observed a member renew its Lease.",
    [*PAIR, "member"],
)
ACTIVE = Gauge(
    "pairwarden_active_member", "1 for the member that may answer calls.", [*PAIR, "member"]
)
EPOCH = Gauge("pairwarden_epoch", "Fencing epoch of the active Lease.", PAIR)
REACTION = Histogram(
    "pairwarden_reaction_seconds",
    "From observing a cause to the Service pointing at the new active member.",
    ["cause"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LICENSE_LEFT = Gauge(
    "pairwarden_licensing_seconds_left",
    "Seconds until the secondary's licensing clock runs out (absent when not running).",
    PAIR,
)
CONDITION = Gauge(
    "pairwarden_condition", "Status conditions of each pair (1 true, 0 false).", [*PAIR, "type"]
)
REPLICATION_LAG = Gauge(
    "pairwarden_replication_lag_seconds",
    "Seconds since the standby last received a complete replication.",
    PAIR,
)


def forget_pair(namespace: str, pair: str) -> None:
    """Drop a deleted pair's series so dashboards do not show ghosts."""
    for metric in (HEARTBEAT_AGE, ACTIVE, EPOCH, LICENSE_LEFT, CONDITION, REPLICATION_LAG):
        for labels in list(metric._metrics):  # prometheus-client has no public lister
            if labels[:2] == (namespace, pair):
                metric.remove(*labels)


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(host: str, port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
