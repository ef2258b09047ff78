"""RTP (RFC 3550) packets, G.711 mu-law and WAV encoding: pure functions, no sockets.

A voicemail message is the caller's PCMU audio put back in sequence order (UDP may reorder
or duplicate), decoded to 16-bit PCM and written as an 8 kHz mono WAV, which any player and
the `wave` module read.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from dataclasses import dataclass, field

SAMPLE_RATE = 8000
PCMU = 0
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
_HEADER = struct.Struct("!BBHII")


class RtpError(ValueError):
    """Not an RTP packet we accept."""


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def encode(self) -> bytes:
        first = 0x80  # version 2, no padding, no extension, no CSRC
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        head = _HEADER.pack(first, second, self.seq & 0xFFFF, self.timestamp & 0xFFFFFFFF,
                            self.ssrc & 0xFFFFFFFF)  # fmt: skip
        return head + self.payload


def parse_rtp(data: bytes) -> RtpPacket:
    if len(data) < _HEADER.size:
        raise RtpError("shorter than an RTP header")
    first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise RtpError("not RTP version 2")
    offset = _HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if len(data) < offset + 4:
            raise RtpError("truncated extension")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20:  # padding: the last byte counts the padding bytes
        end -= data[-1]
    if offset > end:
        raise RtpError("truncated packet")
    return RtpPacket(second & 0x7F, seq, ts, ssrc, data[offset:end], bool(second & 0x80))


# ---- G.711 mu-law ------------------------------------------------------------------------

_BIAS = 0x84
_CLIP = 32635


def ulaw_encode_sample(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, _CLIP) + _BIAS
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _decode(byte: int) -> int:
    u = ~byte & 0xFF
    magnitude = ((((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)) - _BIAS
    return -magnitude if u & 0x80 else magnitude


_DECODE = tuple(_decode(b) for b in range(256))


def ulaw_decode(data: bytes) -> list[int]:
    return [_DECODE[b] for b in data]


def ulaw_encode(samples: list[int]) -> bytes:
    return bytes(ulaw_encode_sample(s) for s in samples)


def tone(duration_ms: int, frequency: float = 440.0, amplitude: int = 8000) -> bytes:
    """A sine tone as PCMU bytes (what the built-in caller 'says')."""
    n = SAMPLE_RATE * duration_ms // 1000
    return ulaw_encode(
        [round(amplitude * math.sin(2 * math.pi * frequency * i / SAMPLE_RATE)) for i in range(n)]
    )


def wav_bytes(samples: list[int]) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buf.getvalue()


# ---- a recording -------------------------------------------------------------------------


@dataclass
class Recording:
    """PCMU packets of one call from one source, kept by extended sequence number.

    Duplicates are dropped, reordering is undone, other payload types are ignored (comfort
    noise, DTMF). `max_samples` bounds memory for a caller who never hangs up.
    """

    max_samples: int = SAMPLE_RATE * 300
    packets: dict[int, bytes] = field(default_factory=dict)
    samples: int = 0
    ignored: int = 0
    _ssrc: int | None = None
    _last_ext: int | None = None

    def add(self, pkt: RtpPacket) -> bool:
        if pkt.payload_type != PCMU:
            self.ignored += 1
            return False
        if self._ssrc is None:
            self._ssrc = pkt.ssrc
        elif pkt.ssrc != self._ssrc:
            self.ignored += 1  # a second source mid-call: keep the first one only
            return False
        ext = self._extend(pkt.seq)
        if ext in self.packets or self.samples + len(pkt.payload) > self.max_samples:
            return False
        self.packets[ext] = pkt.payload
        self.samples += len(pkt.payload)
        return True

    def _extend(self, seq: int) -> int:
        """Sequence number extended past 16-bit wraparound, nearest to the last one seen."""
        last = self._last_ext
        if last is None:
            self._last_ext = seq
            return seq
        base = last & ~0xFFFF
        candidates = (base - 0x10000 + seq, base + seq, base + 0x10000 + seq)
        ext = min(candidates, key=lambda c: abs(c - last))
        self._last_ext = max(last, ext)
        return ext

    def pcm(self) -> list[int]:
        out: list[int] = []
        for ext in sorted(self.packets):
            out.extend(ulaw_decode(self.packets[ext]))
        return out

    @property
    def duration_ms(self) -> int:
        return self.samples * 1000 // SAMPLE_RATE

    def wav(self) -> bytes:
        return wav_bytes(self.pcm())
