"""The `pairwarden-testbed` command: the rig's processes (the sandbox API server, the demo and
the reference voicemail process), dispatched like the product's `pairwarden` command."""

from __future__ import annotations

import sys

from pairwarden.cli import Program, dispatch

COMMANDS: dict[str, tuple[str, str]] = {
    "sandbox": ("pairwarden_testbed.sandbox.cli", "embedded Kubernetes API server"),
    "voicemail": ("pairwarden_testbed.voicemail.main", "run the reference voicemail process"),
    "demo": ("pairwarden_testbed.demo", "scripted failover story on the sandbox"),
}

DESCRIPTION = "pairwarden's test rig: sandbox API server, demo, reference voicemail process."


def main(argv: list[str] | None = None) -> int:
    return dispatch(Program("pairwarden-testbed", DESCRIPTION, COMMANDS), argv)


if __name__ == "__main__":
    sys.exit(main())
