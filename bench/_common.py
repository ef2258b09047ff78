"""Helpers shared by the benchmarks: percentiles, PASS/FAIL, the machine, /proc readings.

Benchmarks import this as a sibling module (`python bench/x.py` puts bench/ on sys.path).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pairwarden.atomicfile import write_atomically

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RESULTS = Path(__file__).resolve().parent / "results"  # each run's JSON, unless --json PATH


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values. With fewer than 100 samples
    the p99 is the maximum, which is what a small sample can honestly say."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def seconds(value: float) -> str:
    return "    n/a" if math.isnan(value) else f"{value:7.3f}"


def machine() -> str:
    """One line: cores, CPU model, memory, Python."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = math.nan
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), {mem_gb:.1f} GiB RAM, "
        f"Python {platform.python_version()}, Linux {platform.release()}"
    )


@dataclass(frozen=True)
class CpuSample:
    cpu_seconds: float  # utime + stime of the process
    rss_mb: float


def sample_process(pid: int) -> CpuSample:
    """utime+stime from /proc/<pid>/stat and VmRSS from /proc/<pid>/status (no psutil)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
            break
    return CpuSample((utime + stime) / CLOCK_TICKS, rss_kb / 1024)


def open_sockets(pid: int) -> int:
    """The process's open sockets (its connections, watches included), from /proc/<pid>/fd;
    -1 when they cannot be read."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return -1
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(fd).startswith("socket:")
    return count


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """p50, p99, max."""
    return percentile(values, 50), percentile(values, 99), max(values, default=math.nan)


def jsonable(value: Any) -> Any:
    """A row as JSON takes it: dataclasses as objects, NaN and infinities as null (strict
    JSON has no NaN: a reader's json.loads would take it, jq and browsers would not)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLog:
    """The run as JSON, written whole again (atomically) after every row, so a run stopped
    during its largest count, by a signal or a crash, keeps the figures of every row it
    finished. `path` None: bench/results/<name>-<UTC time>.json."""

    def __init__(self, name: str, path: str | None = None) -> None:
        started = datetime.now(UTC)
        self.path = Path(path) if path else RESULTS / f"{name}-{started:%Y%m%dT%H%M%SZ}.json"
        self.doc: dict[str, Any] = {
            "benchmark": name,
            "argv": sys.argv[1:],
            "machine": machine(),
            "started": started.isoformat(),
            "finished": None,
            "rows": [],
        }
        self._write()
        print(f"JSON of this run, rewritten after each row: {self.path}", flush=True)

    def add(self, kind: str, row: Any, **extra: Any) -> None:
        """One finished row (`kind` says which table: a backend, a fault, a section)."""
        self.doc["rows"].append({"kind": kind, **jsonable(extra), "row": jsonable(row)})
        self._write()

    def finish(self) -> None:
        self.doc["finished"] = datetime.now(UTC).isoformat()
        self._write()

    def _write(self) -> None:
        data = json.dumps(self.doc, indent=1, allow_nan=False) + "\n"
        write_atomically(self.path, data.encode())
