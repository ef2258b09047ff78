"""A real SIP peer, sipp (Debian package sip-tester, installed by `make tools`), calls the
voicemail member: PCMU RTP streamed by sipp becomes a WAV of the right length in the store,
a standby refuses with 503, and a demotion lets sipp's call in progress finish."""

from __future__ import annotations

import asyncio
import shutil
import wave
from pathlib import Path

import pytest

from pairwarden_testbed.voicemail import sip
from pairwarden_testbed.voicemail.rtp import tone

from .conftest import Member, MwiListener

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP = shutil.which("sipp")
pytestmark = pytest.mark.skipif(
    SIPP is None,
    reason="sipp is not installed: `make tools` as root installs it (Debian package sip-tester)",
)


async def sipp(member: Member, tmp_path: Path, scenario: str, mailbox: str = "1000",
               audio_ms: int = 1000, pause_ms: int = 1200) -> tuple[int, str]:  # fmt: skip
    """Run one sipp call; (exit code, stderr). sipp exits 0 only if the call went as written."""
    audio = tmp_path / f"tone-{audio_ms}.ulaw"
    audio.write_bytes(tone(audio_ms))
    xml = (SCENARIOS / scenario).read_text()
    xml = xml.replace("@AUDIO@", str(audio)).replace("@PAUSE_MS@", str(pause_ms))
    path = tmp_path / scenario
    path.write_text(xml)
    assert SIPP is not None
    proc = await asyncio.create_subprocess_exec(
        SIPP, "-sf", str(path), "-s", mailbox, "-i", "127.0.0.1", "-p", "0", "-mp", "0",
        "-m", "1", "-nostdin", "-timeout", "15s", "-timeout_error",
        f"{member.address[0]}:{member.address[1]}",
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode(errors="replace")


def frames(path: Path) -> int:
    with wave.open(str(path)) as w:
        return w.getnframes()


async def test_sipp_call_leaves_a_wav_message_and_mwi(
    member: Member, mwi: MwiListener, tmp_path: Path
) -> None:
    member.core.set_role(True, 1)
    code, err = await sipp(member, tmp_path, "uac_pcmu.xml", mailbox="5000", audio_ms=1000)
    assert code == 0, err
    await member.wait_for("the message", lambda: member.store.count("5000") == 1)
    assert frames(member.store.messages("5000")[0]) == 8000  # 1 s of 8 kHz, every sample
    notify = (await mwi.wait(1))[0]
    assert sip.parse_message_summary(notify.body) == (True, 1, 0)
    status = await member.status()
    assert status["answeredCalls"] == 1 and status["callsInProgress"] == 0


async def test_sipp_standby_gets_503(member: Member, tmp_path: Path) -> None:
    code, err = await sipp(member, tmp_path, "uac_refused.xml")
    assert code == 0, err
    assert (await member.status())["inactiveCalls"] == 1
    # The answering scenario fails against a standby: sipp says the call did not go as written.
    code, _ = await sipp(member, tmp_path, "uac_pcmu.xml", pause_ms=100)
    assert code != 0


async def test_sipp_call_in_progress_survives_a_demotion(member: Member, tmp_path: Path) -> None:
    member.core.set_role(True, 1)
    in_progress = asyncio.create_task(
        sipp(member, tmp_path, "uac_pcmu.xml", mailbox="6000", audio_ms=800, pause_ms=1500)
    )
    await member.wait_for("sipp's call", lambda: member.core.calls_in_progress == 1, within=10)
    assert (await member.post("/role", {"active": False, "epoch": 2, "validForMs": 60_000}))[
        0
    ] == 200
    (tmp_path / "second").mkdir()
    code, err = await sipp(member, tmp_path / "second", "uac_refused.xml")
    assert code == 0, err
    code, err = await in_progress
    assert code == 0, err
    await member.wait_for("the message", lambda: member.store.count("6000") == 1)
    assert frames(member.store.messages("6000")[0]) == 6400
    status = await member.status()
    assert status["callsInProgress"] == 0 and status["inactiveCalls"] == 1
