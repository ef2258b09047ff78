"""The sandbox: an embedded Kubernetes API server for demos and tests (docs/design.md, "The
sandbox"). `Sandbox` runs it in a background thread, `AsyncSandbox` in a running loop,
`pairwarden-testbed sandbox up` in the foreground."""

from .runner import AsyncSandbox, Sandbox
from .server import Settings

__all__ = ["AsyncSandbox", "Sandbox", "Settings"]
