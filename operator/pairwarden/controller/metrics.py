"""Prometheus metrics and the readiness probe, served on one port beside kopf."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Protocol

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pairwarden import __version__

PAIR = ("namespace", "pair")
BUILD = Info("pairwarden_build", "The running pairwarden's version.")
BUILD.info({"version": __version__, "component": "operator"})

FAILOVERS = Counter(
    "pairwarden_role_changes_total",
    "Changes of the active member, by cause (failover, failback, demotion).",
    [*PAIR, "cause", "to"],
)
WARNINGS = Counter(
    "pairwarden_warnings_total", "Warnings recorded as Events, by reason.", [*PAIR, "reason"]
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
CONDITION = Gauge(
    "pairwarden_condition", "Status conditions of each pair (1 true, 0 false).", [*PAIR, "type"]
)
REPLICATION_LAG = Gauge(
    "pairwarden_replication_lag_seconds",
    "Seconds since the standby last received a complete replication.",
    PAIR,
)


class Clocks(Protocol):
    """What the time-valued series are computed from, at scrape time."""

    def heartbeat_ages(self) -> Iterable[tuple[str, str, str, float]]: ...

    def licence_left(self) -> Iterable[tuple[str, str, float]]: ...


class _ClockCollector(Collector):
    """Heartbeat ages and licence time left change every second: computing them when Prometheus
    scrapes costs nothing per renewal, where setting gauges did on every reconcile."""

    source: Clocks | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ages = GaugeMetricFamily(
            "pairwarden_heartbeat_age_seconds",
            "Seconds since the operator last observed a member renew its Lease.",
            labels=[*PAIR, "member"],
        )
        left = GaugeMetricFamily(
            "pairwarden_licensing_seconds_left",
            "Seconds until the secondary's licensing clock runs out.",
            labels=list(PAIR),
        )
        if self.source is not None:
            for namespace, pair, member, age in self.source.heartbeat_ages():
                ages.add_metric([namespace, pair, member], age)
            for namespace, pair, seconds in self.source.licence_left():
                left.add_metric([namespace, pair], seconds)
        yield ages
        yield left


CLOCKS = _ClockCollector()
REGISTRY.register(CLOCKS)


def forget_pair(namespace: str, pair: str) -> None:
    """Drop a deleted pair's series so dashboards do not show ghosts."""
    for metric in (ACTIVE, EPOCH, CONDITION, REPLICATION_LAG):
        for labels in list(metric._metrics):  # prometheus-client has no public lister
            if labels[:2] == (namespace, pair):
                metric.remove(*labels)


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _readiness(
    reason: Callable[[], str | None],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(_: web.Request) -> web.Response:
        why = reason()
        return web.Response(text=why or "ok", status=503 if why else 200)

    return readyz


async def serve(host: str, port: int, not_ready: Callable[[], str | None]) -> web.AppRunner:
    """/metrics and /readyz (200 when the operator can act, else 503 with the reason); liveness
    is kopf's own endpoint (`--health-port`). /healthz answers as /readyz for old probes."""
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/readyz", _readiness(not_ready))
    app.router.add_get("/healthz", _readiness(not_ready))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
