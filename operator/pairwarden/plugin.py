"""`kubectl pairwarden`: the Failover Monitor in a terminal.

status [PAIR]      each member's role, heartbeat, service, CPU, calls, licensing; transitions
history PAIR       the pair's role changes (the transitions kept in its status), oldest first
failover PAIR      ask for a manual failover and wait for it (reports how long it took)
failback PAIR      the same, back to the primary
pause|resume PAIR  the reference's manual mode: no automatic failover, no replication
events PAIR        the pair's Events, oldest first
doctor PAIR        every misconfiguration found (missing pods or Service, a namespace no
                   operator watches, a failback waiting for its window), each with its fix
version            the plugin's version and the Kubernetes versions supported

kubectl's connection flags (-n/--namespace, -A/--all-namespaces, --context, --kubeconfig)
work anywhere on the line, as they do for kubectl; `-o json|yaml` prints status and history
for scripts. Shell completion comes through kubectl (the `kubectl_complete-pairwarden`
command this distribution installs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pydantic.alias_generators import to_camel

from pairwarden import GROUP, MIN_KUBERNETES, PLURAL, VERSION, __version__, doctor
from pairwarden.protocol import (
    ANNOTATION_REQUEST,
    ANNOTATION_REQUEST_ID,
    MEMBERS,
    MemberReport,
    member_lease_name,
    parse_time,
)

PROG = "kubectl pairwarden"
OUTPUTS = ("text", "json", "yaml")
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class PluginError(Exception):
    """A message for the user; the command exits 1 with it."""


@dataclass(frozen=True)
class Target:
    """Where a command acts: the API client, and the namespace (None: all namespaces). The
    flags that chose it go into hints, so a suggested command reaches the same pair."""

    api: client.ApiClient
    namespace: str | None
    flags: tuple[str, ...] = ()

    def hint(self, *words: str) -> str:
        return " ".join([PROG, *words, *self.flags])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verb == "version":
        print(version_line())
        return 0
    try:
        target = connect(args)
        handler: Callable[[Target, argparse.Namespace], int] = args.handler
        return int(handler(target, args))
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `kubectl pairwarden status | head`: the reader left; end quietly as kubectl does
        # (stdout is pointed at /dev/null so the interpreter's final flush cannot fail too).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer cut off by a pipe


def version_line() -> str:
    """What `kubectl pairwarden version` prints: `pairwarden --version`'s line and the
    Kubernetes versions supported (the chart's kubeVersion says the same)."""
    return f"pairwarden {__version__} (Kubernetes {MIN_KUBERNETES} and later)"


def _connection_flags(suppress: bool) -> argparse.ArgumentParser:
    """kubectl's connection flags. Declared on the top parser and again on every verb, with
    SUPPRESS defaults on the verbs so a flag given before the verb is not reset after it."""
    flags = argparse.ArgumentParser(add_help=False)
    default: Any = argparse.SUPPRESS if suppress else None
    group = flags.add_argument_group("connection (kubectl's flags, anywhere on the line)")
    group.add_argument("-n", "--namespace", default=default, help="the pairs' namespace")
    group.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="status: pairs in every namespace",
    )
    group.add_argument("--context", default=default, help="kubeconfig context to use")
    group.add_argument("--kubeconfig", default=default, help="kubeconfig file to use")
    return flags


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_connection_flags(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=version_line())
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    common = [_connection_flags(suppress=True)]

    def verb(name: str, text: str, handler: Any, pair: str = "one") -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=text, description=text, parents=common)
        if pair == "one":
            sub.add_argument("pair", metavar="PAIR", help="the FailoverPair's name")
        elif pair == "optional":
            sub.add_argument("pair", metavar="PAIR", nargs="?", help="default: every pair")
        sub.set_defaults(handler=handler)
        return sub

    for sub in (
        verb("status", "show one pair, or all pairs in the namespace", _status, "optional"),
        verb("history", "the pair's role changes, oldest first", _history),
    ):
        sub.add_argument("-o", "--output", choices=OUTPUTS, default="text")
    for name, handler in (("failover", _failover), ("failback", _failback)):
        sub = verb(name, f"manual {name}, then wait for it", handler)
        sub.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
        sub.add_argument("--no-wait", action="store_true", help="return once requested")
    verb("pause", "manual mode on: no automatic failover, no replication", _pauser(True))
    verb("resume", "manual mode off", _pauser(False))
    verb("events", "the pair's Events, oldest first", _events)
    sub = verb("doctor", "every misconfiguration found, each with its fix", _doctor)
    sub.add_argument(
        "--peering",
        default=doctor.DEFAULT_PEERING,
        help="the operator's kopf peering name (the chart's operator.peering.name)",
    )
    verb("version", "print the version", None, pair="none")
    return parser


# ------------------------------------------------------------------------------ connection


def kubeconfig_path(flag: str | None, env: dict[str, str] | os._Environ[str]) -> str | None:
    """The kubeconfig kubectl would read: --kubeconfig, else $KUBECONFIG (a list of files),
    else ~/.kube/config. Not `pairwarden.kube`'s order on purpose: a person's kubectl plugin
    follows kubectl (a kubeconfig before any pod identity, --context and its namespace, a
    clear error for a file that is missing), where the operator and the agent prefer their
    own pod's identity. None when none of them exists."""
    if flag:
        if not Path(flag).is_file():
            raise PluginError(f"kubeconfig {flag} (--kubeconfig) does not exist")
        return flag
    listed = env.get("KUBECONFIG", "")
    if listed:
        paths = [p for p in listed.split(os.pathsep) if p]
        if not any(Path(p).is_file() for p in paths):
            raise PluginError(f"no file of $KUBECONFIG ({listed}) exists")
        return listed
    home = Path(env.get("HOME") or Path.home()) / ".kube" / "config"
    return str(home) if home.is_file() else None


def context_namespace(
    contexts: Sequence[dict[str, Any]], active: dict[str, Any] | None, name: str | None
) -> str:
    """The namespace of the chosen context (--context, else the current one), as kubectl
    takes it; an unknown context name is an error, as it is for kubectl."""
    if name is None:
        chosen = active
    else:
        chosen = next((c for c in contexts if c.get("name") == name), None)
        if chosen is None:
            known = ", ".join(sorted(str(c.get("name")) for c in contexts)) or "none"
            raise PluginError(f'context "{name}" is not in the kubeconfig (contexts: {known})')
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def connect(args: argparse.Namespace) -> Target:
    """The API client and namespace that kubectl would use with the same flags."""
    kubeconfig, context = args.kubeconfig, args.context
    flags: list[str] = []
    for flag, value in (("--kubeconfig", kubeconfig), ("--context", context)):
        if value:
            flags += [flag, value]
    path = kubeconfig_path(kubeconfig, os.environ)
    if path is None:
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise PluginError(
                "no kubeconfig: --kubeconfig is not given, $KUBECONFIG is not set and "
                "~/.kube/config does not exist (and this is not a pod in a cluster)"
            )
        config.load_incluster_config()
        api = client.ApiClient()
        default_ns = IN_CLUSTER_NAMESPACE.read_text().strip() or "default"
    else:
        try:
            contexts, active = config.list_kube_config_contexts(config_file=path)
            default_ns = context_namespace(contexts, active, context)
            api = config.new_client_from_config(config_file=path, context=context)
        except config.ConfigException as error:
            raise PluginError(f"kubeconfig {path}: {error}") from error
    if args.all_namespaces and args.verb == "status":
        return Target(api, None, tuple(flags))
    namespace = args.namespace or default_ns
    return Target(api, namespace, (*flags, "-n", namespace))


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
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        patch,
    )


# ------------------------------------------------------------------------------ status


def _status(target: Target, args: argparse.Namespace) -> int:
    api, namespace = target.api, target.namespace
    custom = client.CustomObjectsApi(api)
    if args.pair and namespace is not None:
        pairs = [_get_pair(api, namespace, args.pair)]
    else:
        where = f"in {namespace}" if namespace else "in any namespace"
        if namespace is None:
            listed = _call(
                f"FailoverPairs {where}", custom.list_cluster_custom_object, GROUP, VERSION, PLURAL
            )
        else:
            listed = _call(
                f"FailoverPairs {where}",
                custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
            )
        pairs = [
            p
            for p in listed.get("items", [])
            if not args.pair or p["metadata"]["name"] == args.pair
        ]
        if not pairs and args.output == "text":
            print(f"No FailoverPairs {where}.")
            return 0
    now = datetime.now(UTC)
    shown = [(pair, _member_leases(api, pair)) for pair in pairs]
    if args.output != "text":
        docs = [status_document(pair, leases) for pair, leases in shown]
        _dump(docs[0] if args.pair and len(docs) == 1 else docs, args.output)
        return 0
    for index, (pair, leases) in enumerate(shown):
        if index:
            print()
        print(render_status(pair, leases, now))
        if not (pair.get("status") or {}).get("conditions"):  # nobody reconciles it (yet)
            where = str(pair["metadata"]["namespace"])
            covered = doctor.read_watched(api, where, doctor.DEFAULT_PEERING, now)
            print(doctor.render(pair, doctor.findings(pair, covered, now)))
    return 0


def _doctor(target: Target, args: argparse.Namespace) -> int:
    """Every finding with its fix; exit 0 with or without findings (it is a report)."""
    assert target.namespace is not None
    pair = _get_pair(target.api, target.namespace, args.pair)
    now = datetime.now(UTC)
    covered = doctor.read_watched(target.api, target.namespace, args.peering, now)
    print(doctor.render(pair, doctor.findings(pair, covered, now)))
    return 0


def _dump(data: Any, output: str) -> None:
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    else:
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())


def status_document(pair: dict[str, Any], leases: dict[str, Any]) -> dict[str, Any]:
    """What `status -o json|yaml` prints: the pair's status and each member's last report
    (the fields of its Lease's annotations) with its renewal time; pure, for tests. Every key
    is camelCase, as in the status beside it, so one document reads as one API."""
    meta = pair["metadata"]
    members: dict[str, Any] = {}
    for member in MEMBERS:
        lease = leases.get(member) or {}
        report = MemberReport.from_annotations((lease.get("metadata") or {}).get("annotations"))
        members[member] = {
            "renewTime": (lease.get("spec") or {}).get("renewTime"),
            "holder": (lease.get("spec") or {}).get("holderIdentity"),
            "report": {
                to_camel(key): value.isoformat() if isinstance(value, datetime) else value
                for key, value in vars(report).items()
            },
        }
    return {
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "paused": bool((pair.get("spec") or {}).get("paused")),
        "status": pair.get("status") or {},
        "members": members,
    }


def _member_leases(api: client.ApiClient, pair: dict[str, Any]) -> dict[str, Any]:
    leases: dict[str, Any] = {}
    coordination = client.CoordinationV1Api(api)
    meta = pair["metadata"]
    for member in MEMBERS:
        try:
            lease = coordination.read_namespaced_lease(
                member_lease_name(meta["name"], member), meta["namespace"]
            )
            leases[member] = api.sanitize_for_serialization(lease)
        except ApiException:
            continue
    return leases


def _ago(then: datetime | None, now: datetime) -> str:
    """How long ago `then` was. The renewal time comes from the agent's clock, which may be a
    little ahead of this one (or written a moment after the listing began): never negative."""
    if then is None:
        return "never"
    seconds = max(0.0, (now - then).total_seconds())
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


# ------------------------------------------------------------------------------ history


def render_history(pair: dict[str, Any]) -> str:
    """The transitions kept in the pair's status as a table, oldest first; pure."""
    transitions = (pair.get("status") or {}).get("transitions") or []
    meta = pair["metadata"]
    if not transitions:
        return f"No role changes recorded for {meta['namespace']}/{meta['name']}."
    lines = [f"{'TIME':<28} {'FROM':<10} {'TO':<10} {'EPOCH':>5}  {'TOOK':>7}  CAUSE"]
    for t in transitions:
        took = t.get("durationSeconds")
        lines.append(
            f"{t.get('time', '')!s:<28} {t.get('from', '')!s:<10} "
            f"{t.get('to', '')!s:<10} {t.get('epoch', 0):>5}  "
            f"{f'{took:.2f}s' if isinstance(took, int | float) else '-':>7}  {t.get('cause', '')}"
        )
    return "\n".join(lines)


def _history(target: Target, args: argparse.Namespace) -> int:
    assert target.namespace is not None
    pair = _get_pair(target.api, target.namespace, args.pair)
    if args.output == "text":
        print(render_history(pair))
    else:
        _dump((pair.get("status") or {}).get("transitions") or [], args.output)
    return 0


# ----------------------------------------------------------------------------- requests


def _failover(target: Target, args: argparse.Namespace) -> int:
    return _request(target, args, "failover", "secondary")


def _failback(target: Target, args: argparse.Namespace) -> int:
    return _request(target, args, "failback", "primary")


def _request(where: Target, args: argparse.Namespace, action: str, target: str) -> int:
    api, namespace = where.api, where.namespace
    assert namespace is not None
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
        f"'{where.hint('doctor', args.pair)}' and '{where.hint('events', args.pair)}'"
    )


def _pauser(paused: bool) -> Any:
    def handler(target: Target, args: argparse.Namespace) -> int:
        assert target.namespace is not None
        _patch_pair(target.api, target.namespace, args.pair, {"spec": {"paused": paused}})
        print(f"{args.pair}: {'paused (manual mode)' if paused else 'resumed (automatic)'}")
        return 0

    return handler


def _events(target: Target, args: argparse.Namespace) -> int:
    api, namespace = target.api, target.namespace
    assert namespace is not None
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


# --------------------------------------------------------------------------- completion

# cobra's directives, which kubectl reads from the last line of a completion helper's output
NO_FILE_COMPLETION, FILE_COMPLETION = 4, 0
VALUE_FLAGS = ("-n", "--namespace", "--context", "--kubeconfig", "-o", "--output", "--timeout")


@dataclass(frozen=True)
class Completion:
    """Candidates for the word being typed, and whether the shell may offer file names."""

    words: tuple[str, ...]
    files: bool = False

    def render(self) -> str:
        directive = FILE_COMPLETION if self.files else NO_FILE_COMPLETION
        return "".join(f"{w}\n" for w in self.words) + f":{directive}\n"


def complete(
    words: Sequence[str], lookup: Callable[[str, argparse.Namespace], list[str]]
) -> Completion:
    """Completion of the last word of `kubectl pairwarden WORDS...` (pure but for `lookup`,
    which lists what lives in the cluster: "namespaces", "contexts" or "pairs")."""
    *done, partial = list(words) or [""]
    parser = _parser()
    verbs = _verbs(parser)
    previous = done[-1] if done else ""
    if previous in ("-o", "--output"):
        return Completion(_prefixed(OUTPUTS, partial))
    if previous == "--kubeconfig":
        return Completion((), files=True)
    if previous in ("-n", "--namespace", "--context"):
        kind = "contexts" if previous == "--context" else "namespaces"
        return Completion(_prefixed(lookup(kind, _known_flags(done)), partial))
    positional = _positionals(done)
    verb = positional[0] if positional and positional[0] in verbs else None
    if partial.startswith("-"):
        sub = verbs.get(verb or "", parser)
        flags = sorted({o for a in sub._actions for o in a.option_strings if o.startswith("--")})
        return Completion(_prefixed(flags, partial))
    if verb is None:
        return Completion(_prefixed(sorted(verbs), partial))
    if len(positional) == 1 and verb not in ("version",):
        return Completion(_prefixed(lookup("pairs", _known_flags(done)), partial))
    return Completion(())


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _prefixed(candidates: Sequence[str], partial: str) -> tuple[str, ...]:
    return tuple(c for c in candidates if c.startswith(partial))


def _positionals(words: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in VALUE_FLAGS:
            skip = True
        elif not word.startswith("-"):
            out.append(word)
    return out


def _known_flags(words: Sequence[str]) -> argparse.Namespace:
    """The connection flags typed so far, for looking things up where the command will act."""
    found = argparse.Namespace(namespace=None, kubeconfig=None, context=None, all_namespaces=False)
    for flag, value in zip(words, [*words[1:], ""], strict=True):
        if flag in ("-n", "--namespace"):
            found.namespace = value
        elif flag in ("--kubeconfig", "--context"):
            setattr(found, flag[2:], value)
    return found


def _cluster_lookup(kind: str, flags: argparse.Namespace) -> list[str]:
    """Names for completion from the cluster; any failure completes nothing."""
    try:
        if kind == "contexts":
            path = kubeconfig_path(flags.kubeconfig, os.environ)
            contexts, _ = config.list_kube_config_contexts(config_file=path)
            return sorted(str(c["name"]) for c in contexts)
        flags.verb = "complete"
        target = connect(flags)
        if kind == "namespaces":
            listed = client.CoreV1Api(target.api).list_namespace(_request_timeout=5)
            return sorted(ns.metadata.name for ns in listed.items)
        assert target.namespace is not None
        pairs = client.CustomObjectsApi(target.api).list_namespaced_custom_object(
            GROUP, VERSION, target.namespace, PLURAL, _request_timeout=5
        )
        return sorted(p["metadata"]["name"] for p in pairs.get("items", []))
    except Exception:  # completion must never print a traceback into the shell
        return []


def complete_main(argv: list[str] | None = None) -> int:
    """`kubectl_complete-pairwarden`: kubectl (1.26+) runs it to complete plugin arguments."""
    words = list(sys.argv[1:] if argv is None else argv)
    sys.stdout.write(complete(words, _cluster_lookup).render())
    return 0
