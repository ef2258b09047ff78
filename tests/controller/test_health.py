"""The probes' meaning: live while the watch tasks run, ready once start-up is done."""

from __future__ import annotations

import asyncio

import pytest

from pairwarden.controller import health


async def _forever() -> None:
    await asyncio.Event().wait()


async def _fails() -> None:
    raise ConnectionError("API server gone")


async def test_live_while_the_watches_run_and_not_after_one_ends() -> None:
    running = asyncio.create_task(_forever(), name="leases in voice")
    failed = asyncio.create_task(_fails(), name="jobs in voice")
    await asyncio.sleep(0)
    try:
        assert health.watches_alive(None) == {"watches": 0}
        assert health.watches_alive([running]) == {"watches": 1}
        with pytest.raises(health.WatchEnded, match=r"1 of 2 .*jobs in voice: ConnectionError"):
            health.watches_alive([running, failed])
    finally:
        running.cancel()
        await asyncio.gather(running, failed, return_exceptions=True)


async def test_ready_once_started_with_running_watches() -> None:
    running = asyncio.create_task(_forever(), name="leases in all")
    try:
        assert health.not_ready(False, None) is not None
        assert health.not_ready(True, [running]) is None
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        reason = health.not_ready(True, [running])
        assert reason is not None and "leases in all" in reason
    finally:
        running.cancel()
