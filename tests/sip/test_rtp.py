"""RTP packets, G.711 mu-law and the recording of one call: pure functions."""

from __future__ import annotations

import io
import wave

import pytest

from pairwarden_testbed.voicemail.rtp import (
    PCMU,
    Recording,
    RtpError,
    RtpPacket,
    parse_rtp,
    tone,
    ulaw_decode,
    ulaw_encode,
)


def test_rtp_round_trip_and_rejects() -> None:
    pkt = RtpPacket(PCMU, 65535, 123456, 0xDEADBEEF, b"\xff" * 160, marker=True)
    assert parse_rtp(pkt.encode()) == pkt
    with pytest.raises(RtpError):
        parse_rtp(b"\x80\x00")
    with pytest.raises(RtpError):
        parse_rtp(b"\x40" + bytes(20))  # version 1


def test_rtp_with_csrc_extension_and_padding() -> None:
    head = bytes([0x80 | 0x20 | 0x10 | 0x01, 0]) + bytes(10)  # padding, extension, 1 CSRC
    data = head + bytes(4) + b"\x00\x00\x00\x01" + bytes(4) + b"abc" + b"\x00\x02"
    assert parse_rtp(data).payload == b"abc"


def test_ulaw_round_trip_error_is_small() -> None:
    samples = [0, 1, -1, 100, -100, 1000, -1000, 8000, -8000, 32000, -32000]
    for s, back in zip(samples, ulaw_decode(ulaw_encode(samples)), strict=True):
        assert abs(back - s) <= max(8, abs(s) // 16), (s, back)
    assert ulaw_encode([0]) == b"\xff"


def test_recording_reorders_drops_duplicates_and_crosses_wraparound() -> None:
    rec = Recording()
    chunks = {seq: bytes([seq % 256]) * 160 for seq in (65534, 65535, 0, 1)}
    for seq in (65534, 0, 65535, 0, 1):  # out of order, one duplicate, across the wrap
        rec.add(RtpPacket(PCMU, seq, 0, 7, chunks[seq]))
    assert not rec.add(RtpPacket(8, 2, 0, 7, b"x" * 160))  # PCMA: ignored
    assert not rec.add(RtpPacket(PCMU, 2, 0, 99, b"x" * 160))  # another source: ignored
    assert rec.samples == 640 and rec.duration_ms == 80
    ordered = [rec.packets[k][0] for k in sorted(rec.packets)]
    assert ordered == [65534 % 256, 65535 % 256, 0, 1]


def test_recording_is_a_wav_of_the_right_length() -> None:
    rec = Recording(max_samples=8000)
    audio = tone(1500)
    for i in range(0, len(audio), 160):
        rec.add(RtpPacket(PCMU, i // 160, i, 1, audio[i : i + 160]))
    assert rec.samples == 8000  # capped at max_samples
    with wave.open(io.BytesIO(rec.wav())) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() == 8000
