"""Named points in the product's crash-sensitive sequences: each step of a replication
commit (`commit:before-journal`, `commit:after-journal`, `commit:after-rename:<n>`) and each
upload of the replicate client (`replicate:after-upload:<n>`).

The product does nothing at them. A test rig may listen (`pairwarden_testbed.faults` kills
the process at a named point) to prove that a kill -9 at each point leaves the member's tree
exactly as before or exactly as after. Nothing in the product listens.
"""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str], None]

_listeners: list[Listener] = []


def listen(listener: Listener) -> None:
    """Call `listener` with the name of every checkpoint this process reaches."""
    _listeners.append(listener)


def reached(point: str) -> None:
    for listener in _listeners:
        listener(point)
