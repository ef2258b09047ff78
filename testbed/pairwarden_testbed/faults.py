"""kill -9 at a named checkpoint of the product (pairwarden.checkpoints).

    python -m pairwarden_testbed.faults POINT MODULE [ARG ...]
    python -m pairwarden_testbed.faults POINT -c CODE [ARG ...]

runs MODULE as `python -m MODULE ARG ...` (or CODE as `python -c CODE ARG ...`) in this
process, which SIGKILLs itself when it reaches POINT: the rig's way to prove that a crash at
each step of a commit or a copy leaves a consistent state. The product only names its points.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

from pairwarden import checkpoints


def kill_at(point: str) -> checkpoints.Listener:
    def listener(reached: str) -> None:
        if reached == point:
            os.kill(os.getpid(), signal.SIGKILL)

    return listener


def command(point: str, *argv: str) -> list[str]:
    """The argv that runs `python ARGV...` (`-m MODULE ...` or `-c CODE ...`), killed at `point`."""
    target = list(argv)
    if target and target[0] == "-m":
        target = target[1:]
    return [sys.executable, "-m", "pairwarden_testbed.faults", point, *target]


def main() -> None:
    point, target, *rest = sys.argv[1:]
    checkpoints.listen(kill_at(point))
    if target == "-c":
        code, *args = rest
        sys.argv = ["-c", *args]
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
        return
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
