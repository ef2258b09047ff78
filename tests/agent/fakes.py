"""In-memory stand-ins for the API and the voicemail process, sharing one ManualClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from pairwarden.agent.core import StandbyCalls, VoicemailView
from pairwarden.agent.kubeio import LeaseMissing, LeaseView
from pairwarden_testbed.voicemail.core import StaleEpoch, VoicemailCore


class FakeKube:
    def __init__(self) -> None:
        self.leases: dict[str, LeaseView] = {}
        self.spec: Mapping[str, Any] | None = None
        self.partitioned = False
        self.writes: list[tuple[str, str, dict[str, str]]] = []
        self._rv = 0

    def put(self, name: str, holder: str = "", transitions: int = 0, renew: str = "") -> None:
        self._rv += 1
        old = self.leases.get(name, LeaseView(name=name))
        self.leases[name] = replace(
            old, holder=holder, transitions=transitions, renew_time=renew,
            resource_version=str(self._rv),
        )  # fmt: skip

    def _check(self) -> None:
        if self.partitioned:
            raise ConnectionError("partitioned")

    async def get_pair_spec(self) -> Mapping[str, Any] | None:
        self._check()
        return self.spec

    async def get_lease(self, name: str) -> LeaseView | None:
        self._check()
        return self.leases.get(name)

    async def renew(
        self, name: str, holder: str, annotations: Mapping[str, str], duration: int, now: datetime
    ) -> LeaseView:
        self._check()
        if name not in self.leases:
            raise LeaseMissing(name)
        self._rv += 1
        old = self.leases[name]
        self.leases[name] = replace(
            old, holder=holder, renew_time=now.isoformat(), resource_version=str(self._rv),
            annotations={**old.annotations, **annotations},
        )  # fmt: skip
        self.writes.append((name, holder, dict(annotations)))
        return self.leases[name]

    async def watch_lease(self, name: str) -> AsyncIterator[LeaseView | None]:
        await asyncio.Event().wait()  # tests deliver events by calling the agent's handlers
        yield None

    async def close(self) -> None:
        pass


NO_HOLD = StandbyCalls()


class FakeVoicemail:
    """The real voicemail rules (VoicemailCore) behind the agent's client interface."""

    def __init__(self, core: VoicemailCore) -> None:
        self.core = core
        self.up = True
        self.cpu: float | None = 5.0
        self.orders: list[tuple[bool, int, float]] = []
        self.standby: list[StandbyCalls] = []  # what each order said about calls on standby

    async def status(self) -> VoicemailView:
        if not self.up:
            return VoicemailView(up=False)
        s = self.core.status()
        return VoicemailView(
            up=True, answering=s["answering"], calls=s["callsInProgress"],
            inactive_calls=s["inactiveCalls"], cpu_percent=self.cpu, epoch=s["epoch"],
            settings={"callPort": 5070},
        )  # fmt: skip

    async def order(
        self, active: bool, epoch: int, valid_for: float = 0.0, standby: StandbyCalls = NO_HOLD
    ) -> int | None:
        if not self.up:
            return None
        self.orders.append((active, epoch, valid_for))
        self.standby.append(standby)
        try:
            self.core.set_role(active, epoch, valid_for)
        except StaleEpoch:
            return 409
        self.core.redirect, self.core.hold_for = standby.redirect or None, standby.hold_for
        return 200
