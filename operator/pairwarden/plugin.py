"""`kubectl pairwarden`: the Failover Monitor in a terminal.

status [PAIR]      each member's role, heartbeat, service, CPU, calls, licensing; transitions
failover PAIR      ask for a manual failover and wait for it (reports how long it took)
failback PAIR      the same, back to the primary
pause|resume PAIR  the reference's manual mode: no automatic failover, no replication
events PAIR        the pair's Events, oldest first
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from pairwarden import GROUP, PLURAL, VERSION
from pairwarden.protocol import (
    ANNOTATION_REQUEST,
    ANNOTATION_REQUEST_ID,
    MEMBERS,
    MemberReport,
    member_lease_name,
    parse_time,
)


class PluginError(Exception):
    """A message for the user; the command exits 1 with it."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        api = _connect(args.kubeconfig, args.context)
        namespace = args.namespace or _current_namespace(args.kubeconfig, args.context)
        return int(args.handler(api, namespace, args))
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl pairwarden",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-n", "--namespace")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--context")
    verbs = parser.add_subparsers(dest="verb", required=True)
    status = verbs.add_parser("status", help="show one pair, or all pairs in the namespace")
    status.add_argument("pair", nargs="?")
    status.set_defaults(handler=_status)
    for verb, handler in (("failover", _failover), ("failback", _failback)):
        sub = verbs.add_parser(verb, help=f"manual {verb}, then wait for it")
        sub.add_argument("pair")
        sub.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
        sub.add_argument("--no-wait", action="store_true")
        sub.set_defaults(handler=handler)
    for verb, paused in (("pause", True), ("resume", False)):
        sub = verbs.add_parser(verb, help="manual mode on" if paused else "manual mode off")
        sub.add_argument("pair")
        sub.set_defaults(handler=_pauser(paused))
    events = verbs.add_parser("events", help="the pair's Events")
    events.add_argument("pair")
    events.set_defaults(handler=_events)
    return parser


def _connect(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    try:
        config.load_kube_config(config_file=kubeconfig, context=context)
    except (config.ConfigException, FileNotFoundError):
        try:
            config.load_incluster_config()
        except config.ConfigException as error:
            raise PluginError(f"no usable kubeconfig: {error}") from error
    return client.ApiClient()


def _current_namespace(kubeconfig: str | None, context: str | None) -> str:
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context is None:
            return str(active["context"].get("namespace") or "default")
    except (config.ConfigException, FileNotFoundError, KeyError, TypeError):
        pass
    return "default"


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Turn API errors into sentences: a missing pair, a missing permission, the rest."""
    try:
        return fn(*args, **kwargs)
    except ApiException as error:
        if error.status == 404:
            raise PluginError(f"{what}: not found") from error
        if error.status in (401, 403):
            raise PluginError(f"{what}: no permission (check your RBAC role)") from error
        raise PluginError(f"{what}: {error.status} {error.reason}") from error


def _get_pair(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    pair: dict[str, Any] = _call(
        f"FailoverPair {namespace}/{name}",
        client.CustomObjectsApi(api).get_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
    )
    return pair


def _patch_pair(api: client.ApiClient, namespace: str, name: str, patch: dict[str, Any]) -> None:
    _call(
        f"FailoverPair {namespace}/{name}",
        client.CustomObjectsApi(api).patch_namespaced_custom_object,
        GROUP, VERSION, namespace, PLURAL, name, patch,
    )  # fmt: skip


# ------------------------------------------------------------------------------ status


def _status(api: client.ApiClient, namespace: str, args: argparse.Namespace) -> int:
    if args.pair:
        pairs = [_get_pair(api, namespace, args.pair)]
    else:
        listed = _call(
            f"FailoverPairs in {namespace}",
            client.CustomObjectsApi(api).list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
        )
        pairs = listed.get("items", [])
        if not pairs:
            print(f"No FailoverPairs in namespace {namespace}.")
            return 0
    now = datetime.now(UTC)
    for index, pair in enumerate(pairs):
        if index:
            print()
        print(render_status(pair, _member_leases(api, namespace, pair), now))
    return 0


def _member_leases(api: client.ApiClient, namespace: str, pair: dict[str, Any]) -> dict[str, Any]:
    leases: dict[str, Any] = {}
    coordination = client.CoordinationV1Api(api)
    for member in MEMBERS:
        try:
            lease = coordination.read_namespaced_lease(
                member_lease_name(pair["metadata"]["name"], member), namespace
            )
            leases[member] = api.sanitize_for_serialization(lease)
        except ApiException:
            continue
    return leases


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = (now - then).total_seconds()
    if seconds < 120:
        return f"{seconds:.1f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def render_status(pair: dict[str, Any], leases: dict[str, Any], now: datetime) -> str:
    """The Failover Monitor as text; pure so it is tested without a cluster."""
    meta, spec, status = pair["metadata"], pair.get("spec") or {}, pair.get("status") or {}
    active = status.get("activeMember", "none")
    lines = [
        f"FailoverPair {meta['namespace']}/{meta['name']}   phase {status.get('phase', 'Pending')}"
        f"   active {active}   epoch {status.get('epoch', 0)}"
        f"   {'PAUSED (manual mode)' if spec.get('paused') else 'automatic'}",
        "",
        f"{'MEMBER':<10} {'POD':<22} {'ROLE':<8} {'HEARTBEAT':<12} {'SERVICE':<8} "
        f"{'CPU':>5} {'CALLS':>5}  {'ANSWERING':<9}  LICENSING",
    ]
    members = status.get("members") or {}
    licensing = status.get("licensing") or {}
    for member in MEMBERS:
        lease = leases.get(member) or {}
        report = MemberReport.from_annotations((lease.get("metadata") or {}).get("annotations"))
        renewed = parse_time(str((lease.get("spec") or {}).get("renewTime") or ""))
        pod = (
            (members.get(member) or {}).get("podName")
            or (lease.get("spec") or {}).get("holderIdentity")
            or "-"
        )
        role = "active" if member == active else "standby"
        service = "up" if report.service_up else "down"
        if not report.agent_running:
            service = "stopped"
        clock = "-"
        if member == "secondary":
            deadline = parse_time(licensing.get("secondaryDeadline"))
            clock = f"until {deadline:%Y-%m-%d %H:%M}Z" if deadline else "no deadline"
            if licensing.get("reason"):
                clock += f" ({licensing['reason']})"
        lines.append(
            f"{member:<10} {pod:<22} {role:<8} {_ago(renewed, now):<12} {service:<8} "
            f"{report.cpu_percent:>4}% {report.calls_in_progress:>5}  "
            f"{'yes' if report.answering else 'no':<9}  {clock}"
        )
    lines.append("")
    last = status.get("lastTransition")
    if last:
        took = last.get("durationSeconds")
        lines.append(
            f"Last transition  {last.get('time')}  {last.get('from')} -> {last.get('to')}  "
            f"{last.get('cause')}" + (f"  ({took:.1f}s)" if isinstance(took, int | float) else "")
        )
    else:
        lines.append("Last transition  none")
    replication = status.get("replication") or {}
    if replication:
        lines.append(
            f"Replication      last success {replication.get('lastSuccess', 'never')}, "
            f"{replication.get('files', 0)} files, {replication.get('bytes', 0)} bytes"
            + (f", lag {replication['lagSeconds']:.0f}s" if replication.get("lagSeconds") else "")
        )
    request = status.get("lastRequest")
    if request:
        lines.append(
            f"Last request     {request.get('action')} {request.get('id')}: "
            f"{request.get('outcome')} {request.get('message') or ''}".rstrip()
        )
    for condition in status.get("conditions") or []:
        lines.append(
            f"Condition        {condition.get('type')}={condition.get('status')} "
            f"{condition.get('reason')}: {condition.get('message', '')}".rstrip(": ")
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- requests


def _failover(api: client.ApiClient, namespace: str, args: argparse.Namespace) -> int:
    return _request(api, namespace, args, "failover", target="secondary")


def _failback(api: client.ApiClient, namespace: str, args: argparse.Namespace) -> int:
    return _request(api, namespace, args, "failback", target="primary")


def _request(
    api: client.ApiClient, namespace: str, args: argparse.Namespace, action: str, target: str
) -> int:
    _get_pair(api, namespace, args.pair)
    request_id = uuid.uuid4().hex[:12]
    started = time.monotonic()
    patch = {
        "metadata": {"annotations": {ANNOTATION_REQUEST: action, ANNOTATION_REQUEST_ID: request_id}}
    }
    _patch_pair(api, namespace, args.pair, patch)
    print(f"{action} requested ({request_id})")
    if args.no_wait:
        return 0
    deadline = started + args.timeout
    while time.monotonic() < deadline:
        status = _get_pair(api, namespace, args.pair).get("status") or {}
        answer = status.get("lastRequest") or {}
        if answer.get("id") == request_id:
            outcome = answer.get("outcome")
            if outcome == "Refused":
                raise PluginError(f"{action} refused: {answer.get('message')}")
            if status.get("activeMember") == target:
                took = time.monotonic() - started
                print(
                    f"{target} is active (epoch {status.get('epoch')}) after {took:.2f}s: "
                    f"{outcome} {answer.get('message') or ''}".rstrip()
                )
                return 0
        time.sleep(0.1)
    raise PluginError(
        f"{action} not completed within {args.timeout:.0f}s; see "
        f"'kubectl pairwarden events {args.pair}'"
    )


def _pauser(paused: bool) -> Any:
    def handler(api: client.ApiClient, namespace: str, args: argparse.Namespace) -> int:
        _patch_pair(api, namespace, args.pair, {"spec": {"paused": paused}})
        print(f"{args.pair}: {'paused (manual mode)' if paused else 'resumed (automatic)'}")
        return 0

    return handler


def _events(api: client.ApiClient, namespace: str, args: argparse.Namespace) -> int:
    _get_pair(api, namespace, args.pair)
    listed = _call(
        "Events",
        client.CoreV1Api(api).list_namespaced_event,
        namespace,
        field_selector=f"involvedObject.name={args.pair},involvedObject.kind=FailoverPair",
    )

    def when(event: Any) -> str:
        stamp = event.last_timestamp or event.event_time or event.first_timestamp
        return stamp.isoformat() if stamp else ""

    items = sorted(listed.items, key=when)
    if not items:
        print(f"No Events for {args.pair}.")
    for event in items:
        print(f"{when(event):<32} {event.type:<8} {event.reason:<22} {event.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
