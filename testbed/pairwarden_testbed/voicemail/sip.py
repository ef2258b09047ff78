"""SIP messages as pure data: parse, check and build (RFC 3261 basics, no sockets).

Small and strict on purpose: a request must carry Via, From, To, Call-ID, CSeq (and Max-Forwards
is tolerated missing); Content-Length, when present, must match the body (over UDP a
mismatch means a truncated datagram, which RFC 3261 18.3 says to discard). Compact header
forms are accepted and expanded. Anything we cannot read is a `SipError`, so the transport
can answer 400 when it has enough to address a reply, or drop the datagram when it has not.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

SIP_VERSION = "SIP/2.0"
CRLF = "\r\n"
# RFC 3261 7.3.3 compact forms.
COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "s": "Subject",
    "k": "Supported",
    "o": "Event",
}
CANONICAL = {
    name.lower(): name
    for name in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Allow",
        "Accept",
        "Event",
        "Subscription-State",
        "Retry-After",
        "Server",
        "User-Agent",
        "Supported",
        "Subject",
        "Message-Account",
        "Record-Route",
        "Route",
    )
}
REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
MAGIC_COOKIE = "z9hG4bK"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"


class SipError(ValueError):
    """The datagram is not a SIP message we accept."""


def canonical(name: str) -> str:
    key = name.strip()
    key = COMPACT.get(key, key) if len(key) == 1 else key
    return CANONICAL.get(key.lower(), key)


@dataclass
class SipMessage:
    """A request (`method`, `uri`) or a response (`status`, `reason`); headers keep order."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str) -> str | None:
        want = canonical(name)
        return next((v for k, v in self.headers if k == want), None)

    def get_all(self, name: str) -> list[str]:
        want = canonical(name)
        return [v for k, v in self.headers if k == want]

    def header(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise SipError(f"missing {canonical(name)}")
        return value

    def set(self, name: str, value: str) -> None:
        want = canonical(name)
        for i, (k, _) in enumerate(self.headers):
            if k == want:
                self.headers[i] = (k, value)
                return
        self.headers.append((want, value))

    @property
    def call_id(self) -> str:
        return self.header("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.header("CSeq").partition(" ")
        if not number.isdigit() or not method.strip():
            raise SipError(f"bad CSeq {self.header('CSeq')!r}")
        return int(number), method.strip()

    @property
    def branch(self) -> str:
        return param(self.get_all("Via")[0] if self.get_all("Via") else "", "branch") or ""

    @property
    def from_tag(self) -> str:
        return param(self.header("From"), "tag") or ""

    @property
    def to_tag(self) -> str:
        return param(self.header("To"), "tag") or ""

    def encode(self) -> bytes:
        start = (
            f"{self.method} {self.uri} {SIP_VERSION}"
            if self.is_request
            else f"{SIP_VERSION} {self.status} {self.reason}"
        )
        headers = [(k, v) for k, v in self.headers if k != "Content-Length"]
        headers.append(("Content-Length", str(len(self.body))))
        lines = [start, *(f"{k}: {v}" for k, v in headers)]
        return (CRLF.join(lines) + CRLF + CRLF).encode() + self.body


_REQUEST_LINE = re.compile(r"^([A-Z]+) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6]\d\d) ?(.*)$")


def parse(data: bytes) -> SipMessage:
    """One SIP message from one datagram; `SipError` if it is not acceptable."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipError("no end of headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError("headers are not UTF-8") from exc
    lines = text.split(CRLF)
    while lines and not lines[0]:
        lines.pop(0)  # RFC 3261 7.5: ignore leading CRLFs (keep-alives)
    if not lines:
        raise SipError("empty message")
    msg = SipMessage()
    if m := _REQUEST_LINE.match(lines[0]):
        msg.method, msg.uri = m.group(1), m.group(2)
    elif m := _STATUS_LINE.match(lines[0]):
        msg.status, msg.reason = int(m.group(1)), m.group(2)
    else:
        raise SipError(f"bad start line {lines[0][:80]!r}")
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # folded continuation line
            if not msg.headers:
                raise SipError("continuation before any header")
            k, v = msg.headers[-1]
            msg.headers[-1] = (k, v + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            raise SipError(f"bad header line {line[:80]!r}")
        key = canonical(name)
        # Via may be comma-separated; split so the top Via is the first entry.
        values = _split_commas(value) if key == "Via" else [value.strip()]
        msg.headers.extend((key, v) for v in values)
    for name in REQUIRED:
        msg.header(name)
    msg.cseq  # noqa: B018 - validates
    if msg.is_request and msg.cseq[1] != msg.method:
        raise SipError("CSeq method does not match the request")
    length = msg.get("Content-Length")
    if length is not None:
        if not length.strip().isdigit():
            raise SipError(f"bad Content-Length {length!r}")
        n = int(length)
        if n > len(body):
            raise SipError("truncated body")
        body = body[:n]
    msg.body = body
    return msg


def _split_commas(value: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    depth, quoted = 0, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            depth += 1
        elif ch == ">" and not quoted:
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [v for v in out if v]


def param(value: str, name: str) -> str | None:
    """A `;name=value` header parameter (outside any <...> URI); "" for a bare flag."""
    tail = value[value.rindex(">") + 1 :] if ">" in value else value
    for part in tail.split(";")[1:]:
        k, eq, v = part.strip().partition("=")
        if k.lower() == name.lower():
            return v.strip() if eq else ""
    return None


def uri_of(value: str) -> str:
    """The URI in a From/To/Contact value: `"Bob" <sip:bob@h>;tag=1` -> `sip:bob@h`."""
    if "<" in value:
        start = value.index("<") + 1
        end = value.index(">", start)
        return value[start:end]
    return value.split(";", 1)[0].strip()


@dataclass(frozen=True)
class SipUri:
    user: str
    host: str
    port: int | None

    @property
    def hostport(self) -> tuple[str, int]:
        return self.host, self.port or 5060


def parse_uri(uri: str) -> SipUri:
    if not uri.startswith("sip:"):
        raise SipError(f"not a sip: URI {uri!r}")
    rest = uri[4:].split(";", 1)[0].split("?", 1)[0]
    user, at, hostport = rest.rpartition("@")
    if not at:
        user, hostport = "", rest
    user = user.split(":", 1)[0]  # drop any password
    if hostport.startswith("["):
        host, _, after = hostport[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise SipError(f"no host in {uri!r}")
    if port_text and not port_text.isdigit():
        raise SipError(f"bad port in {uri!r}")
    return SipUri(user, host, int(port_text) if port_text else None)


def new_tag() -> str:
    return secrets.token_hex(4)


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(8)


def response(
    request: SipMessage,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    received: tuple[str, int] | None = None,
) -> SipMessage:
    """A response copying Via/From/To/Call-ID/CSeq (RFC 3261 8.2.6.2); adds a To tag when
    given and absent, and `received`/`rport` to the top Via so replies find NATed callers."""
    vias = request.get_all("Via")
    if received is not None and vias:
        top = vias[0]
        if ";rport" in top and param(top, "rport") == "":
            top = top.replace(";rport", f";rport={received[1]}", 1)
        vias = [f"{top};received={received[0]}", *vias[1:]]
    to = request.header("To")
    if to_tag and param(to, "tag") is None:
        to = f"{to};tag={to_tag}"
    msg = SipMessage(status=status, reason=reason)
    msg.headers = [("Via", v) for v in vias]
    msg.headers += [
        ("From", request.header("From")),
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", request.header("CSeq")),
    ]
    msg.headers += headers or []
    if body:
        msg.headers.append(("Content-Type", content_type or "application/sdp"))
    msg.body = body
    return msg


def request(
    method: str,
    uri: str,
    *,
    via_host: str,
    via_port: int,
    from_: str,
    to: str,
    call_id: str,
    cseq: int,
    branch: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> SipMessage:
    msg = SipMessage(method=method, uri=uri)
    msg.headers = [
        ("Via", f"SIP/2.0/UDP {via_host}:{via_port};branch={branch or new_branch()};rport"),
        ("Max-Forwards", "70"),
        ("From", from_),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
    ]
    msg.headers += headers or []
    if body:
        msg.headers.append(("Content-Type", content_type or "application/sdp"))
    msg.body = body
    return msg


# ---- SDP (RFC 4566), only what an audio call with PCMU needs --------------------------------

PCMU = 0


@dataclass(frozen=True)
class MediaOffer:
    host: str
    port: int
    payload_types: tuple[int, ...]


def parse_sdp(body: bytes) -> MediaOffer:
    """The first audio stream's address and payload types; session-level c= as fallback."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError("SDP is not UTF-8") from exc
    session_host: str | None = None
    media: tuple[int, tuple[int, ...]] | None = None
    media_host: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("c="):
            parts = line[2:].split()
            if len(parts) != 3 or parts[0] != "IN":
                raise SipError(f"bad SDP connection line {line!r}")
            if media is None:
                session_host = parts[2].split("/")[0]
            elif media_host is None:
                media_host = parts[2].split("/")[0]
        elif line.startswith("m=") and media is None:
            parts = line[2:].split()
            if len(parts) < 4 or parts[0] != "audio" or not parts[1].isdigit():
                continue
            if not all(p.isdigit() for p in parts[3:]):
                raise SipError(f"bad SDP media line {line!r}")
            media = (int(parts[1]), tuple(int(p) for p in parts[3:]))
        elif line.startswith("m=") and media is not None:
            break
    host = media_host or session_host
    if media is None or host is None:
        raise SipError("SDP has no audio stream with an address")
    return MediaOffer(host, media[0], media[1])


def build_sdp(host: str, port: int, session_id: int, *, payload_types: tuple[int, ...] = (PCMU,),
              direction: str = "sendrecv") -> bytes:  # fmt: skip
    ip = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=pairwarden {session_id} {session_id} IN {ip} {host}",
        "s=voicemail",
        f"c=IN {ip} {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(p) for p in payload_types)}",
        *(["a=rtpmap:0 PCMU/8000"] if PCMU in payload_types else []),
        "a=ptime:20",
        f"a={direction}",
    ]
    return (CRLF.join(lines) + CRLF).encode()


# ---- MWI (RFC 3842) -----------------------------------------------------------------------


def message_summary(new: int, old: int = 0, account: str | None = None) -> bytes:
    lines = [f"Messages-Waiting: {'yes' if new else 'no'}"]
    if account:
        lines.append(f"Message-Account: {account}")
    lines.append(f"Voice-Message: {new}/{old}")
    return (CRLF.join(lines) + CRLF).encode()


def parse_message_summary(body: bytes) -> tuple[bool, int, int]:
    """(waiting, new, old) from an application/simple-message-summary body."""
    waiting, new, old = False, 0, 0
    for line in body.decode("utf-8", errors="replace").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "messages-waiting":
            waiting = value.strip().lower() == "yes"
        elif name.strip().lower() == "voice-message":
            counts = value.strip().split()[0].split("/")
            if len(counts) == 2 and all(c.isdigit() for c in counts):
                new, old = int(counts[0]), int(counts[1])
    return waiting, new, old
