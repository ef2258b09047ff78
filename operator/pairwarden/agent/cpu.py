"""CPU samplers. Pluggable so tests inject values; in a pod the voicemail process reports
its own CPU (the agent's container cannot see the other container's processes), and the
cgroup sampler serves when the agent shares the workload's cgroup."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class CpuSampler(Protocol):
    def sample(self) -> float | None:
        """CPU in percent of one core since the previous sample, None if unknown."""
        ...


class FunctionSampler:
    """Wraps a function: the voicemail status reader, or a test's scripted values."""

    def __init__(self, read: Callable[[], float | None]) -> None:
        self._read = read

    def sample(self) -> float | None:
        return self._read()


class CgroupSampler:
    """cgroup v2 `cpu.stat` usage_usec, differenced over monotonic time."""

    def __init__(self, path: Path = Path("/sys/fs/cgroup/cpu.stat")) -> None:
        self._path = path
        self._last: tuple[float, float] | None = None

    def _usage_seconds(self) -> float | None:
        try:
            for line in self._path.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
        except (OSError, ValueError):
            return None
        return None

    def sample(self) -> float | None:
        usage, now = self._usage_seconds(), time.monotonic()
        if usage is None:
            return None
        last, self._last = self._last, (now, usage)
        if last is None or now <= last[0]:
            return None
        return max(0.0, (usage - last[1]) / (now - last[0]) * 100.0)
