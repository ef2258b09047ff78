"""`with Service(...) as service:` for the rig's background services (the sandbox, the node
stand-ins, the SIP load): each says only how it starts and stops, and this one base says
what a `with` block means, so the stand-ins cannot drift apart in it (one returned the
result of `start()`, another `self`; one took the exception triple, others `*_`)."""

from __future__ import annotations

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
