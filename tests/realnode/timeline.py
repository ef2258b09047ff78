"""Where a real node's crash failover spends its time (issue 26): one run's stages, each as
seconds after the kill, from the objects' watches and the logs the node keeps.

    kill -9 -> the kubelet's PLEG notices (its relist runs every second) -> the kubelet writes
    the pod's status -> the operator decides (PodCrashed) -> the active Lease names the other
    member -> the Service's selector -> the EndpointSlice -> kube-proxy's iptables rules ->
    the new holder's agent orders its voicemail to answer -> the first call answered

Read from (all on this machine's one wall clock): watches of the member pods, the active
Lease, the Service and its EndpointSlices (arrival times); the operator's and the new
holder's agent's container logs (the CRI log's nanosecond stamp of each line, written by
containerd as the line arrives); the kubelet's log (klog's stamp, at `--v 2` its PLEG events
are logged; at 1 they are not, and that stage is then blank); kube-proxy's
`kubeproxy_sync_proxy_rules_last_timestamp_seconds` metric (read after the call was answered:
the sync that let it through, or a later one).
"""

from __future__ import annotations

import math
import re
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pairwarden_testbed.node import POD_LOGS

# One line of a container's CRI log: "<RFC 3339 nano> stdout F <text>".
CRI_LINE = re.compile(r"^(\S+) (?:stdout|stderr) [FP] (.*)$")
# klog's header: "I1207 17:45:01.123456   1234 file.go:12] text" (the year is not logged).
KLOG_LINE = re.compile(r"^[IWE](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d+)\s+\d+ [^\]]+\] (.*)$")
SYNC_METRIC = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"


def cri_stamp(text: str) -> float:
    """A CRI log line's stamp (nanoseconds, UTC) as epoch seconds."""
    head, _, fraction = text.rstrip("Z").partition(".")
    base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return base + float(f"0.{fraction or '0'}")


def klog_stamp(match: re.Match[str], year: int) -> float:
    """klog's stamp (local time, which is UTC on this machine's services) as epoch seconds."""
    month, day, hour, minute, second, micros = (int(g) for g in match.groups()[:6])
    when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return when.timestamp() + micros / 10 ** len(match.group(6))


def container_lines(namespace: str, pod: str, container: str) -> Iterable[tuple[float, str]]:
    """Every line the kubelet kept of one container of a pod (every uid and restart)."""
    for path in sorted(POD_LOGS.glob(f"{namespace}_{pod}_*/{container}/*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if (m := CRI_LINE.match(line)) is not None:
                yield cri_stamp(m.group(1)), m.group(2)


def first_line(lines: Iterable[tuple[float, str]], after: float, *needles: str) -> float:
    """When the first line at or after `after` holding every needle was written; NaN if none."""
    return min(
        (at for at, text in lines if at >= after and all(n in text for n in needles)),
        default=math.nan,
    )


def kubelet_pleg(log: Path, after: float, pod: str) -> float:
    """When the kubelet's PLEG first reported a container of `pod` died after `after`
    ("SyncLoop (PLEG): ... ContainerDied", logged at --v 2); NaN when not logged."""
    if not log.exists():
        return math.nan
    year = datetime.fromtimestamp(after, UTC).year
    found = math.nan
    for line in log.read_text(errors="replace").splitlines():
        if "SyncLoop (PLEG)" not in line or "ContainerDied" not in line or f'"{pod}' not in line:
            continue
        m = KLOG_LINE.match(line)
        if m is not None and (at := klog_stamp(m, year)) >= after:
            found = at if math.isnan(found) else min(found, at)
    return found


def proxy_synced(metrics_url: str) -> float:
    """kube-proxy's last iptables sync (epoch seconds); NaN when its metrics do not answer."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return math.nan
    for line in text.splitlines():
        if line.startswith(SYNC_METRIC + " "):
            return float(line.split()[-1])
    return math.nan


def dead_containers(pod: Any, baseline: dict[str, int]) -> bool:
    """Whether the pod's status shows every container dead since `baseline` (its restart
    counts before the kill): terminated now, or restarted since."""
    statuses = (pod.status.container_statuses if pod.status else None) or []
    if not statuses:
        return False
    return all(
        (c.state is not None and c.state.terminated is not None)
        or int(c.restart_count or 0) > baseline.get(c.name, 0)
        for c in statuses
    )


@dataclass(frozen=True)
class Stage:
    name: str
    at: float  # epoch seconds; NaN when not seen
    source: str  # where the stamp comes from


def stage_rows(kill: float, stages: list[Stage]) -> list[str]:
    """One line per stage, in the order they happened: seconds after the kill, and since the
    stage before (a stage not seen last)."""
    lines = [f"  {'stage':<38} {'after kill':>10} {'step':>7}  source"]
    before = kill
    for stage in sorted(stages, key=lambda s: math.inf if math.isnan(s.at) else s.at):
        if math.isnan(stage.at):
            lines.append(f"  {stage.name:<38} {'-':>10} {'-':>7}  {stage.source} (not seen)")
            continue
        lines.append(
            f"  {stage.name:<38} {stage.at - kill:10.3f} {stage.at - before:7.3f}  {stage.source}"
        )
        before = stage.at
    return lines


def metrics_url(node: Any) -> str:
    """kube-proxy's metrics on the node (testbed node.Node: its metricsBindAddress)."""
    return f"http://127.0.0.1:{node.state['ports']['proxy_metrics']}/metrics"


@dataclass(frozen=True)
class Run:
    """One crash as measure() made it: the pair, the member killed, when (monotonic and
    wall, taken together just before the kill), kube-proxy's last sync read after it."""

    pair: Any  # tests/realnode/pairs.Pair
    active: str
    mono: float
    wall: float
    synced: float
    notes: list[str] = field(default_factory=list)  # log lines behind the stages


def died(values: list[tuple[float, str]], pod: str, after: float) -> tuple[float, float]:
    """From the pod watch's values (measure.container_states), when the status first showed
    every container of `pod` dead after `after`, and when its agent was next seen running
    again (monotonic arrival times; NaN when not seen)."""
    baseline: dict[str, int] = {}
    dead, back = math.nan, math.nan
    for at, value in values:
        mine = {}
        for item in value.split(",") if value else []:
            name, _, state = item.partition("=")
            owner, _, container = name.partition("/")
            if owner == pod:
                restarts, _, mark = state.partition(":")
                mine[container] = (int(restarts), mark)
        if at < after:
            baseline = {c: r for c, (r, _) in mine.items()}
            continue
        if not mine:
            continue
        gone = all(m == "T" or r > baseline.get(c, r) for c, (r, m) in mine.items())
        if math.isnan(dead) and gone:
            dead = at
        agent = mine.get("agent")
        if (
            not math.isnan(dead)
            and agent is not None
            and agent[1] == "R"
            and agent[0] > (baseline.get("agent", agent[0]))
        ):
            back = at
            break
    return dead, back


def crash_stages(run: Run, watches: Any, seen: dict[str, float]) -> list[Stage]:
    """The stages of one crash (see the module's docstring); `seen` holds measure()'s
    monotonic arrivals: selector, endpoints, new port, fixed port, fresh call."""
    pair, offset = run.pair, run.wall - run.mono
    standby = "secondary" if run.active == "primary" else "primary"
    old, new = f"vm-{run.active}", f"vm-{standby}"

    def wall(mono: float) -> float:
        return mono + offset

    with watches.pods.values.cond:
        pods = list(watches.pods.values.seen)
    dead, back = died(pods, old, run.mono)
    holder = watches.holder.values.wait_for(new, run.mono, 0)
    pleg = kubelet_pleg(Path(pair.node.directory) / "logs" / "kubelet.log", run.wall, old)
    decided = first_line(
        container_lines(pair.system, "pairwarden-operator-0", "operator"), run.wall, "PodCrashed"
    )
    ordered = first_line(container_lines(pair.namespace, new, "agent"), run.wall, "answer=True")
    claimed = first_line(
        container_lines(pair.namespace, new, "agent"), run.wall, "its processes are gone"
    )
    for title, lines, since, until in (
        ("operator", container_lines(pair.system, "pairwarden-operator-0", "operator"),
         run.wall, decided),
        (f"{new}'s agent", container_lines(pair.namespace, new, "agent"), run.wall - 5, ordered),
        (f"{old}'s agent", container_lines(pair.namespace, old, "agent"), run.wall - 5, run.wall),
    ):  # fmt: skip
        run.notes.append(f"  {title}, {run.wall - since:.0f} s before the kill to its stage:")
        run.notes.extend(excerpt(lines, run.wall, until, since=since))
    return [
        Stage("kill -9 (agent, voicemail)", run.wall, "measure"),
        Stage("standby's probe: processes gone", claimed, "agent log"),
        Stage("kubelet PLEG: ContainerDied", pleg, "kubelet log (--v 2)"),
        Stage("pod status: all containers dead", wall(dead), "pod watch"),
        Stage("operator: PodCrashed decided", decided, "operator log"),
        Stage("active Lease names the other", wall(holder), "Lease watch"),
        Stage("Service selector flipped", wall(seen["selector"]), "Service watch"),
        Stage("EndpointSlice: new pod alone", wall(seen["endpoints"]), "EndpointSlice watch"),
        Stage("new holder's agent: answer=True", ordered, "agent log"),
        Stage("kube-proxy iptables synced (last)", run.synced, "kube-proxy metric"),
        Stage("fresh call answered (new caller)", wall(seen.get("fresh call", math.nan)), "caller"),
        Stage("first call answered (new port)", wall(seen.get("new port", math.nan)), "sipp"),
        Stage("first call answered (fixed port)", wall(seen.get("fixed port", math.nan)), "sipp"),
        Stage("old member's agent running again", wall(back), "pod watch"),
    ]


def excerpt(
    lines: Iterable[tuple[float, str]],
    kill: float,
    until: float,
    most: int = 12,
    since: float | None = None,
) -> list[str]:
    """The lines a container wrote from `since` (the kill) to `until`, each with its seconds
    after the kill: what a stage waited on, for the next engineer to read."""
    if math.isnan(until):
        until = kill + 10
    start = kill if since is None else since
    picked = [(at, text) for at, text in lines if start <= at <= until + 0.001]
    return [f"    {at - kill:7.3f}  {text[:150]}" for at, text in picked[-most:]]
