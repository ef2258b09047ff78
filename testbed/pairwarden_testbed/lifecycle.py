"""`with Service(...) as service:` for the rig's background services (the sandbox, the node
stand-ins, the SIP load): each says only how it starts and stops, and this one base says
what a `with` block means, so the stand-ins cannot drift apart in it (one returned the
result of `start()`, another `self`; one took the exception triple, others `*_`)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Self


class Service:
    """A background service: `start()` brings it up, `stop()` takes it down again (and is
    safe to call after a failed start); `with` runs it for the block and stops it on any
    exit, an exception included."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Within the block, SIGTERM raises SystemExit as Ctrl-C raises KeyboardInterrupt, so the
    `with` blocks around it stop what they started. Python's default SIGTERM ends the process
    where it stands: a chaos or demo run stopped by `kill` (or a CI timeout) left its operator,
    agents and voicemail processes running. A handler someone else installed is kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def unwind(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
