"""One `helm install|upgrade|uninstall` line of the README, run through helm-sdkpy (Helm's own
library) in a process of its own: argv is the kubeconfig then the helm command's words; prints the
release as JSON. Releases are kept the way helm keeps them (Secrets), so install and uninstall
may run in different processes, as two `helm` commands do."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import helm_sdkpy


def scalar(raw: str) -> Any:
    """A `--set` value as helm types it: true/false, an integer, else the string."""
    if raw in ("true", "false"):
        return raw == "true"
    return int(raw) if raw.lstrip("-").isdigit() else raw


def set_value(values: dict[str, Any], assignment: str) -> None:
    """`--set a.b=v` with helm's list form `{x,y}` and its typed scalars; enough for the
    README's values and the tests' upgrades."""
    key, _, raw = assignment.partition("=")
    value: Any = scalar(raw)
    if raw.startswith("{") and raw.endswith("}"):
        value = [scalar(v) for v in raw[1:-1].split(",") if v]
    *parents, leaf = key.split(".")
    for part in parents:
        values = values.setdefault(part, {})
    values[leaf] = value


def main(argv: list[str]) -> int:
    kubeconfig, verb, *rest = argv
    namespace, values, positional, create = "default", {}, [], False
    words = iter(rest)
    for word in words:
        if word in ("--namespace", "-n"):
            namespace = next(words)
        elif word == "--create-namespace":
            create = True
        elif word == "--set":
            set_value(values, next(words))
        else:
            positional.append(word)
    config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=kubeconfig)
    if verb == "install":
        release, chart = positional
        action = helm_sdkpy.Install(config).run(
            release, chart, values=values or None, create_namespace=create, wait=False, timeout=60
        )
    elif verb == "upgrade":
        release, chart = positional
        action = helm_sdkpy.Upgrade(config).run(
            release, chart, values=values or None, wait=False, timeout=60
        )
    elif verb == "uninstall":
        (release,) = positional
        action = helm_sdkpy.Uninstall(config).run(release, wait=False, timeout=60)
    else:
        print(f"helm {verb}: not a README step", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(action)
    except helm_sdkpy.HelmError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
