"""Calls through the local kube-proxy's UDP Service port to two members, across a failover:
the selector flips, new calls reach the new active member, the call in progress finishes
on the old one, and no caller sees a dropped call."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from pairwarden.clock import SystemClock
from pairwarden_testbed import sipcaller
from pairwarden_testbed.localnode import LocalServiceProxy
from pairwarden_testbed.voicemail.core import VoicemailCore
from pairwarden_testbed.voicemail.messagestore import DirectoryMessageStore, MessageQueue
from pairwarden_testbed.voicemail.sipua import SipServer


def pod(name: str, ip: str, member: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": {"pairwarden.io/member": member}},
        "status": {"phase": "Running", "podIP": ip},
    }


def service(cluster_ip: str, member: str) -> dict[str, object]:
    return {
        "metadata": {"name": "vm-calls"},
        "spec": {"clusterIP": cluster_ip, "selector": {"pairwarden.io/member": member},
                 "ports": [{"name": "sip", "port": 5060, "targetPort": 5060, "protocol": "UDP"}]},
    }  # fmt: skip


async def test_call_load_through_the_service_across_a_flip(tmp_path: Path) -> None:
    prefix = f"127.{random.randrange(2, 255)}.{random.randrange(256)}."
    cluster_ip = f"127.1.{random.randrange(256)}.{random.randrange(2, 255)}"
    (tmp_path / "store").mkdir()
    store = DirectoryMessageStore(tmp_path / "store")  # one store, both members
    members = {}
    for name, ip in (("vm-primary", prefix + "2"), ("vm-secondary", prefix + "3")):
        core = VoicemailCore(name, SystemClock())
        server = SipServer(core, ip, 5060, queue=MessageQueue(store, tmp_path / name))
        await server.start()
        members[name] = (core, server)
    proxy = LocalServiceProxy(None, "voice")
    load = sipcaller.CallLoad((cluster_ip, 5060), interval_ms=50, duration_ms=150, timeout=1.0)
    try:
        proxy.apply_pod(pod("vm-primary", prefix + "2", "primary"))
        proxy.apply_pod(pod("vm-secondary", prefix + "3", "secondary"))
        members["vm-primary"][0].set_role(True, 1)
        await asyncio.to_thread(proxy.apply_service, service(cluster_ip, "primary"))
        load.start()
        in_progress = asyncio.create_task(
            asyncio.to_thread(sipcaller.call_through, (cluster_ip, 5060), 1000, mailbox="9000")
        )
        deadline = time.monotonic() + 10
        while sum(1 for o in load.outcomes() if o.pod == "vm-primary") < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        # A clean failover: the operator's order of writes (active Lease, then the selector).
        members["vm-primary"][0].set_role(False, 2)
        members["vm-secondary"][0].set_role(True, 2)
        await asyncio.to_thread(proxy.apply_service, service(cluster_ip, "secondary"))
        flipped = time.time()
        while sum(1 for o in load.outcomes() if o.pod == "vm-secondary") < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        long_call = await in_progress
        while store.count("9000") != 1:  # the long call's message, from the old member
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        await asyncio.to_thread(load.stop)
        await asyncio.to_thread(proxy.stop)
        for _, server in members.values():
            await server.close()
    assert long_call.answered and long_call.pod == "vm-primary"  # finished on the old member
    counts = load.counts()
    assert counts["dropped"] == 0 and counts["unanswered"] == 0, load.outcomes()
    # Between the demotion and the flip a caller may reach the old member's 503; after it,
    # new calls go to the new member.
    assert all(o.pod == "vm-secondary" for o in load.outcomes() if o.started > flipped + 0.05)
