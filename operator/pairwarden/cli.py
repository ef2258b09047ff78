"""The `pairwarden` command. Each subcommand lives in its own module and is imported only
when used, so `pairwarden agent` does not pay for kopf and `pairwarden crds` needs no cluster.

A subcommand module exposes `configure(parser)` to add its arguments and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "sandbox": ("pairwarden.sandbox.cli", "embedded Kubernetes API server for demos and tests"),
    "crds": ("pairwarden.api.crd", "regenerate crds/ from the API models"),
    "operator": ("pairwarden.controller.main", "run the operator (kopf)"),
    "agent": ("pairwarden.agent.main", "run the member agent sidecar"),
    "voicemail": ("pairwarden.voicemail.main", "run the reference voicemail process"),
    "replicate": ("pairwarden.replication.main", "copy changed files and the database"),
    "demo": ("pairwarden.demo", "scripted failover story on the sandbox"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog="pairwarden",
        description="Keeps an active/passive pair of voicemail servers answering calls.",
    )
    top.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND", help=_summary())
    if not argv or argv[0] not in COMMANDS:
        top.parse_args(argv[:1] or ["--help"])
        return 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"pairwarden {name}", description=COMMANDS[name][1])
    module.configure(parser)
    args = parser.parse_args(argv[1:])
    return int(module.run(args))


def _summary() -> str:
    return "; ".join(f"{name}: {text}" for name, (_, text) in sorted(COMMANDS.items()))


if __name__ == "__main__":
    sys.exit(main())
