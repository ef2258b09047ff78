"""The agent sidecar runs in every voicemail pod: it loads the asynchronous client only, not
the models (pydantic), the synchronous client, kopf or the test rig."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pydantic", "kubernetes", "kopf", "pairwarden_testbed", "pairwarden.api")


def test_the_agent_loads_no_heavy_module() -> None:
    probe = (
        "import sys, pairwarden.agent.main; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
