"""The `pairwarden` command: what ships in the images. Each subcommand lives in its own
module and is imported only when used, so `pairwarden agent` does not pay for kopf and
`pairwarden crds` needs no cluster. The test rig (sandbox, demo, reference voicemail process)
has its own command, `pairwarden-testbed`, in the `pairwarden-testbed` distribution.

A subcommand module exposes `configure(parser)` to add its arguments and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from pairwarden import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "crds": ("pairwarden.api.crd", "regenerate crds/ from the API models"),
    "operator": ("pairwarden.controller.main", "run the operator (kopf)"),
    "agent": ("pairwarden.agent.main", "run the member agent sidecar"),
    "replicate": ("pairwarden.replication.main", "copy changed files and the database"),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(Program("pairwarden", DESCRIPTION, COMMANDS), argv)


DESCRIPTION = "Keeps an active/passive pair of voicemail servers answering calls."


@dataclass(frozen=True)
class Program:
    """A command whose subcommands are modules: name -> (module, one-line summary)."""

    name: str
    description: str
    commands: Mapping[str, tuple[str, str]]

    def summary(self) -> str:
        return "; ".join(f"{name}: {text}" for name, (_, text) in sorted(self.commands.items()))


def dispatch(program: Program, argv: list[str] | None = None) -> int:
    """Parse the subcommand, import its module and run it; `--version` prints the version."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(prog=program.name, description=program.description)
    top.add_argument("--version", action="version", version=f"{program.name} {__version__}")
    top.add_argument(
        "command", choices=sorted(program.commands), metavar="COMMAND", help=program.summary()
    )
    if not argv or argv[0] not in program.commands:
        top.parse_args(argv[:1] or ["--help"])
        return 2
    name = argv[0]
    module_name, text = program.commands[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"{program.name} {name}", description=text)
    module.configure(parser)
    args = parser.parse_args(argv[1:])
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
