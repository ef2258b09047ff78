"""Run `helm install` jobs through helm-sdkpy in a process of its own.

Helm's Go runtime reads the environment of the process as it started, so HELM_DRIVER=memory
(keep the release record in memory: the Secret driver speaks protobuf, which the sandbox does
not decode) must be in the environment before Python starts. The chart tests therefore run
installs here: stdin is a JSON object {"kubeconfig": path, "chart": path, "jobs": [{"release",
"namespace", "values"}]}; stdout is a JSON list with, per job, {"result": ...} or {"error": ...}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import helm_sdkpy


def _install(kubeconfig: str, chart: str, job: dict[str, Any]) -> dict[str, Any]:
    config = helm_sdkpy.Configuration(namespace=job["namespace"], kubeconfig=kubeconfig)
    action = helm_sdkpy.Install(config)
    try:
        result = asyncio.run(
            action.run(job["release"], chart, values=job["values"] or None, wait=False, timeout=60)
        )
    except helm_sdkpy.HelmError as error:
        return {"error": str(error)}
    return {"result": result}


def main() -> int:
    request = json.load(sys.stdin)
    out = [_install(request["kubeconfig"], request["chart"], job) for job in request["jobs"]]
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
