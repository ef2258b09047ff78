"""The standby's probe of the holder's sockets (docs/protocol.md, "Proof of death from the
kernel"): one TCP connect to the holder agent's peer port and one SIP OPTIONS over a connected
UDP socket to its voicemail's SIP port, each told apart as refused (by the kernel: RST, ICMP
port unreachable), open (a process answered) or silent (nothing came back in time). The
judgement of the rounds is agent.core's (`probe_step`, `proves_gone`); this module only asks.
"""

from __future__ import annotations

import asyncio
import contextlib

from pairwarden.agent.adapters import sip_options
from pairwarden.agent.core import PROBE_PERIOD, PortAnswer, ProbeTarget


async def tcp_answer(host: str, port: int, budget: float) -> PortAnswer:
    """A connection accepted is open (closed at once, nothing sent), a refusal is refused,
    anything else (a timeout, an unreachable host or network) is silent."""
    try:
        async with asyncio.timeout(budget):
            _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return "refused"
    except (OSError, TimeoutError):
        return "silent"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return "open"


async def sip_answer(host: str, port: int, budget: float) -> PortAnswer:
    """Any SIP response is open, an ICMP port unreachable (ECONNREFUSED on the connected
    socket) is refused, anything else is silent. Resent every probe period while unanswered:
    an OPTIONS in flight when the server died is never answered, and a round that waited it
    out (0.5 s) came back silent and broke the row of refusals (on the real node the claim
    came 0.6-0.9 s after the kill, not 0.2 s)."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        async with asyncio.timeout(budget):
            await sip_options(target, resend=PROBE_PERIOD)
    except ConnectionRefusedError:
        return "refused"
    except (OSError, TimeoutError):
        return "silent"
    return "open"


async def probe_ports(target: ProbeTarget, budget: float) -> tuple[PortAnswer, PortAnswer]:
    """One round: both ports at once, (peer port, SIP port)."""
    peer, sip = await asyncio.gather(
        tcp_answer(target.address, target.peer_port, budget),
        sip_answer(target.address, target.sip_port, budget),
    )
    return peer, sip
