"""kopf registrations: thin, each one observing and handing over to `reconcile`.

- member Leases, member pods and replication Jobs are watched directly (controller.leasewatch,
  controller.podwatch, controller.jobs.watch), not through kopf: heartbeats are the hottest
  input and each event needs only a stamp in the observation book; a member pod's containers
  dying wakes its pair at once; Jobs are plentiful and need only an index;
- each FailoverPair gets one daemon that sleeps until a report wakes it or a member's window
  could expire (never a per-pair timer ticking every second);
- peering (kopf's own) makes sure only one replica runs the daemons.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import kopf
import kubernetes

from pairwarden import GROUP, PLURAL, VERSION, watching
from pairwarden.clock import SystemClock
from pairwarden.controller import discovery, health, jobs, leasewatch, metrics, peering, podwatch
from pairwarden.controller.client import report_waits
from pairwarden.controller.netpol import Policies, PolicySettings
from pairwarden.controller.observations import ObservationBook, unheard
from pairwarden.controller.reconcile import PairMemory, Runtime, idle_for, step
from pairwarden.controller.replication import ReplicationSettings
from pairwarden.kube import (
    async_api_client,
    drop_managed_fields,
    kubeconfig_path,
    retry_refusals,
)

# A step that failed is retried after 1 s, doubling to 5 s, jittered (the one backoff,
# watching.Backoff): 2,000 pairs whose steps all failed in an outage do not come back in one
# instant. A report or a Lease event still wakes the pair at once.
STEP_RETRY = watching.Backoff(first=1.0, cap=5.0)
# On a stop, kopf raises each daemon's flag, waits `instant_exit_timeout` (1 s), then this long
# again before it cancels a daemon that has not returned: a step in flight gets to finish the
# writes it decided (a flip half-written is repaired by the next leader, but a whole one needs
# no repair). 1 s was not enough on a loaded machine: 22 of 100 daemons were cancelled on the
# real control plane at load 30. With kopf's 5 s cancellation wait after it, the worst case
# (1 + 10 + 5 s) stays within the chart's 30 s terminationGracePeriodSeconds; an idle daemon
# returns at once (_wake_when_stopped), so a normal stop does not wait for any of it.
STOP_GRACE = 10.0
# kopf's retries of its own API requests. Its default gives up after 8 retries (54 s), and
# on the re-list it does whenever a watch stream restarts, giving up stops the operator: at
# 500 pairs on a starved 1.20 that list timed out (504 after 60 s) nine times and the
# operator exited. Pauses of 1 s doubling to 30 s, for as long as the server needs.
KOPF_RETRY = watching.Backoff(first=1.0, cap=30.0)
# A TLS connection to the API server costs the operator about 300 KiB (asyncio's 256 KiB read
# buffer per TLS connection, OpenSSL's state) and kube-apiserver a handshake and a goroutine.
# kopf's own session has no limit (aiohttp's `limit=0`): one connection per concurrent request,
# which at start is a finalizer patch for every pair at once (2,000 TLS connections for 2,000
# pairs, ~600 MB). Its session here holds its watches' connections (each for the watch's life)
# and KOPF_REQUEST_CONNECTIONS for its few requests (finalizers, Events), queued beyond that.
# The operator's own client keeps kubernetes_asyncio's 100: bounded to 16+3 it queued a start
# of 300 pairs at load 19 so long (44 s to the first decision, a minute per reaction) that a
# request's wait in the pool counted as the server stalling (Hearing.waited).
KOPF_REQUEST_CONNECTIONS = 16
KOPF_WATCHES = 2  # per scope: FailoverPairs, and kopf's peering
Logger = logging.Logger | logging.LoggerAdapter[Any]


def new_memo(
    kubeconfig: str | None,
    namespaces: list[str],
    replication: ReplicationSettings,
    policies: PolicySettings | None = None,
) -> kopf.Memo:
    """`namespaces` empty: every namespace. `policies` None: no NetworkPolicies are made."""
    return kopf.Memo(
        kubeconfig=kubeconfig,
        namespaces=namespaces,
        book=ObservationBook(),
        clock=SystemClock(),
        replication=replication,
        policies=policies,
    )


@kopf.on.login()
async def login(memo: kopf.Memo, logger: Logger, **kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's connection, found as the operator's own clients find theirs
    (`kube.kubeconfig_path`): kopf's fallback login reads $KUBECONFIG as it was when
    `kubernetes` was imported, before `--kubeconfig` is known, so the file is loaded here;
    in-cluster credentials go through kopf's own login. Either way in a session of a bounded
    number of connections (`bounded_session`)."""
    info = connection_info(memo, logger, **kwargs)
    if info is None:
        return None
    return bounded_session(info, kopf_connections(memo.get("namespaces")))


def connection_info(memo: kopf.Memo, logger: Logger, **kwargs: Any) -> kopf.ConnectionInfo | None:
    path = kubeconfig_path(memo.kubeconfig)
    if path is None:
        return kopf.login_via_client(logger=logger, **kwargs)
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=path, client_configuration=configuration)
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme or ("Bearer" if token else None),
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def kopf_connections(namespaces: list[str] | None) -> int:
    """The connections kopf's session may open: one per watch it keeps open (each holds its
    connection for the watch's life), KOPF_WATCHES in each namespace served (or once for all
    of them), and KOPF_REQUEST_CONNECTIONS for its requests."""
    return KOPF_WATCHES * max(1, len(namespaces or [])) + KOPF_REQUEST_CONNECTIONS


def bounded_session(info: kopf.ConnectionInfo, limit: int) -> kopf.AiohttpSession:
    """kopf's session as kopf would make it from `info`, but with at most `limit` connections.
    kopf's own has no limit (aiohttp's `limit=0`): 2,000 pairs getting their finalizer at
    start were up to 2,000 TLS connections opened at once (their cost: KOPF_WATCHES' note)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        priority=info.priority,
        aiohttp_session=session,
    )


@dataclass(frozen=True)
class PeerIdentity:
    """This process's kopf peering identity and the pod it runs in (controller/peering.py)."""

    identity: str
    pod: str


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Logger, **_: Any
) -> None:
    settings.posting.reporting_component = "pairwarden"
    settings.posting.level = logging.WARNING  # Events are posted on purpose, not from logs
    settings.persistence.finalizer = "pairwarden.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="pairwarden.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="pairwarden.io", key="last-handled-configuration"
    )
    settings.watching.server_timeout = 300  # long watches: fewer re-lists at scale
    settings.networking.error_backoffs = watching.Endless(KOPF_RETRY)
    settings.background.cancellation_polling = 1
    # On a stop (SIGTERM, lost peering, a deleted pair) a daemon returns once its wait wakes
    # (_wake_when_stopped), or once its step in flight has written what it decided: 1 s here
    # (not kopf's default of ten loop iterations), then STOP_GRACE more before kopf cancels it.
    settings.background.instant_exit_timeout = 1.0
    # No namespace or CRD observation: the operator serves exact namespaces (or all of them)
    # and one CRD it knows, and holds no cluster-scoped read for kopf (controller/discovery.py).
    settings.scanning.disabled = True
    scopes: list[str | None] = list(memo.namespaces) or [None]
    api = await async_api_client(memo.kubeconfig)
    report_waits(api, memo.clock, memo.book.listening)  # a stall is deafness (Hearing.waited)
    retry_refusals(api)  # a refused read or patch is sent again; each attempt's wait reported
    if not await discovery.serves_failoverpairs(api):
        await api.close()
        raise kopf.TemporaryError(f"{PLURAL}.{GROUP}/{VERSION} is not served yet", delay=2.0)
    memo.book.bind_clock(memo.clock)
    index = jobs.JobIndex()

    def job_finished(namespace: str, pair: str) -> None:
        """A replication Job that finished wakes its pair to read the result: no polling."""
        memo.book.pair(namespace, pair).nudge(memo.clock.monotonic())

    memo.lease_watches = (
        [
            asyncio.create_task(
                leasewatch.watch(api, ns, memo.book, memo.clock), name=f"leases in {ns or 'all'}"
            )
            for ns in scopes
        ]
        + [
            asyncio.create_task(
                jobs.watch(api, ns, index, job_finished), name=f"jobs in {ns or 'all'}"
            )
            for ns in scopes
        ]
        + [
            asyncio.create_task(
                podwatch.watch(api, ns, memo.book, memo.clock), name=f"member pods in {ns or 'all'}"
            )
            for ns in scopes
        ]
    )
    metrics.CLOCKS.source = memo.book
    memo.runtime = Runtime(
        api=api,
        book=memo.book,
        clock=memo.clock,
        replication=memo.replication,
        jobs=index,
        policies=Policies(memo.policies, memo.clock) if memo.get("policies") else None,
    )
    if not settings.peering.standalone and settings.peering.mandatory:
        namespaces = [ns for ns in (memo.get("namespaces") or []) if isinstance(ns, str)]
        await peering.ensure(
            memo.runtime.api, settings.peering.name, namespaces, settings.peering.clusterwide
        )
        peer: PeerIdentity | None = memo.get("peer")
        if peer is not None:
            gone = await peering.forget_predecessors(
                memo.runtime.api,
                settings.peering.name,
                namespaces,
                settings.peering.clusterwide,
                peer.identity,
                peer.pod,
                settings.peering.priority,
                settings.peering.lifetime,
                memo.clock.wall(),
            )
            if gone:
                logger.info(f"removed the peering entries of this pod's earlier processes: {gone}")


@kopf.on.probe(id="watches", errors=kopf.ErrorsMode.PERMANENT)
def watches_probe(memo: kopf.Memo, **_: Any) -> dict[str, int]:
    """Liveness through kopf's endpoint: fails (HTTP 500) once a watch task has ended."""
    try:
        return health.watches_alive(memo.get("lease_watches"))
    except health.WatchEnded as error:
        raise kopf.PermanentError(str(error)) from error


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.get("lease_watches") or []:
        task.cancel()
    if "runtime" in memo:
        await memo.runtime.api.close()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def pair_changed(
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    type: str,
    event: kopf.RawEvent,
    **_: Any,
) -> None:
    """Wake the pair's reconciler. First, drop the object's managedFields: kopf keeps the
    latest body of each pair for its daemon (the very dict of this event: event handlers run
    before daemons are spawned or refreshed), 38 KiB parsed on kube-apiserver 1.20, 22 KiB of
    them managedFields that nothing here reads."""
    drop_managed_fields(cast(dict[str, Any], event["object"]))  # kopf's TypedDict: a dict
    namespace = namespace or ""
    memo.book.pair(namespace, name).nudge(memo.clock.monotonic())
    if type == "DELETED":
        memo.book.forget(namespace, name)
        if "runtime" in memo:
            memo.runtime.jobs.forget(namespace, name)
        metrics.forget_pair(namespace, name)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_backoff=STOP_GRACE, cancellation_timeout=5.0)
async def guard(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    logger: Logger,
    **_: Any,
) -> None:
    """The pair's reconciler: runs while this replica leads, wakes on reports or deadlines."""
    runtime: Runtime = memo.runtime
    namespace = namespace or ""
    memory = PairMemory()  # fresh on every (re)start: another replica may have led meanwhile
    nudged, failures = True, 0
    waker = asyncio.create_task(_wake_when_stopped(stopped, runtime, namespace, name))
    try:
        while not stopped:
            pair = runtime.book.pair(namespace, name)
            pair.wake.clear()
            quiet = None if nudged else idle_for(memory, pair, runtime.clock.monotonic())
            if quiet is None and pair.woken_at is None:  # a deadline passed: the cause is now
                pair.woken_at = runtime.clock.monotonic()
            try:
                if quiet is not None:
                    wait = quiet
                else:
                    wait = await step(runtime, body, memory)
                    runtime.book.listening.heard(runtime.clock.monotonic())
                    failures = 0
            except Exception as error:  # keep guarding: the next look retries from fresh reads
                # The memory stays: after a Lease write it holds that move's record (its
                # transition, its handoff), which the stored status may not have yet.
                if unheard(error):  # the operator's deafness, never a member's silence
                    runtime.book.listening.missed(runtime.clock.monotonic())
                logger.exception(f"reconcile failed, retrying: {error}")
                failures += 1
                wait = STEP_RETRY.pause(failures, random.random())
            pair.woken_at = None
            try:
                await asyncio.wait_for(pair.wake.wait(), timeout=wait)
                nudged = True
            except TimeoutError:
                nudged = False
    finally:
        waker.cancel()


async def _wake_when_stopped(
    stopped: kopf.DaemonStopped, runtime: Runtime, namespace: str, name: str
) -> None:
    """kopf only raises the flag, then cancels daemons that do not return at once (with a
    warning per pair, 2,000 lines at every operator stop or peering pause): wake the pair's
    wait, so an idle daemon returns on its own."""
    await stopped.wait()
    runtime.book.pair(namespace, name).wake.set()
