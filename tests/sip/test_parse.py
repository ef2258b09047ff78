"""SIP, SDP and message-summary parsing and building: pure functions, no sockets."""

from __future__ import annotations

import pytest

from pairwarden_testbed.voicemail import sip

INVITE = (
    "INVITE sip:1000@10.0.0.5:5060 SIP/2.0\r\n"
    "v: SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bKabc;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\n"
    "Max-Forwards: 70\r\n"
    'f: "Alice" <sip:alice@10.0.0.9:5062>;tag=a1\r\n'
    "t: <sip:1000@10.0.0.5>\r\n"
    "i: call-1@10.0.0.9\r\n"
    "CSeq: 1 INVITE\r\n"
    "m: <sip:alice@10.0.0.9:5062>\r\n"
    "Subject: a folded\r\n header\r\n"
    "c: application/sdp\r\n"
    "l: {length}\r\n"
    "\r\n"
    "{body}"
)
SDP = (
    "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:0 PCMU/8000\r\nm=video 4002 RTP/AVP 96\r\n"
)


def invite(body: str = SDP, length: int | None = None) -> bytes:
    n = len(body.encode()) if length is None else length
    return INVITE.format(length=n, body=body).encode()


def test_parse_expands_compact_headers_splits_vias_and_unfolds() -> None:
    msg = sip.parse(invite())
    assert (msg.method, msg.uri) == ("INVITE", "sip:1000@10.0.0.5:5060")
    assert msg.get_all("Via") == [
        "SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bKabc;rport",
        "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp",
    ]
    assert msg.branch == "z9hG4bKabc" and msg.from_tag == "a1" and msg.to_tag == ""
    assert msg.call_id == "call-1@10.0.0.9" and msg.cseq == (1, "INVITE")
    assert msg.get("Subject") == "a folded header"
    assert sip.uri_of(msg.header("From")) == "sip:alice@10.0.0.9:5062"
    assert msg.body == SDP.encode()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (invite().replace(b"i: call-1@10.0.0.9\r\n", b""), "missing Call-ID"),
        (invite(length=9999), "truncated body"),
        (invite().replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"), "CSeq method"),
        (invite().replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE"), "bad CSeq"),
        (b"HELLO world\r\n\r\n", "bad start line"),
        (invite().replace(b"\r\n\r\n", b"\r\n"), "no end of headers"),
        (invite().replace(b"Max-Forwards: 70", b"Max Forwards: 70"), "bad header line"),
    ],
)
def test_parse_rejects(data: bytes, why: str) -> None:
    with pytest.raises(sip.SipError, match=why):
        sip.parse(data)


def test_content_length_cuts_trailing_bytes() -> None:
    msg = sip.parse(invite() + b"garbage")
    assert msg.body == SDP.encode()


def test_response_copies_dialog_headers_adds_tag_and_received() -> None:
    req = sip.parse(invite())
    resp = sip.response(req, 200, "OK", to_tag="srv1", received=("192.0.2.7", 40000),
                        headers=[("Contact", "<sip:vm@10.0.0.5>")], body=b"v=0\r\n")  # fmt: skip
    again = sip.parse(resp.encode())
    assert (again.status, again.reason) == (200, "OK")
    assert again.get_all("Via")[0] == (
        "SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bKabc;rport=40000;received=192.0.2.7"
    )
    assert len(again.get_all("Via")) == 2
    assert again.to_tag == "srv1" and again.from_tag == "a1"
    assert again.cseq == (1, "INVITE") and again.get("Content-Type") == "application/sdp"
    assert again.get("Content-Length") == "5"


def test_request_round_trips() -> None:
    msg = sip.request(
        "BYE", "sip:vm@10.0.0.5:5060", via_host="10.0.0.9", via_port=5062,
        from_="<sip:a@h>;tag=1", to="<sip:b@h>;tag=2", call_id="c", cseq=2,
    )  # fmt: skip
    again = sip.parse(msg.encode())
    assert again.cseq == (2, "BYE") and again.branch.startswith(sip.MAGIC_COOKIE)
    assert again.to_tag == "2" and again.get("Max-Forwards") == "70"


def test_uri_and_params() -> None:
    assert sip.parse_uri("sip:alice:pw@[::1]:5070;transport=udp") == sip.SipUri(
        "alice", "::1", 5070
    )
    assert sip.parse_uri("sip:10.0.0.1").hostport == ("10.0.0.1", 5060)
    with pytest.raises(sip.SipError):
        sip.parse_uri("tel:+123")
    with pytest.raises(sip.SipError):
        sip.parse_uri("sip:a@h:port")
    assert sip.param("<sip:a@h;x=1>;tag=9", "tag") == "9"
    assert sip.param("<sip:a@h;tag=1>", "tag") is None  # URI parameters are not header ones
    assert sip.param("SIP/2.0/UDP h;rport;branch=b", "rport") == ""


def test_sdp_first_audio_stream_and_answer() -> None:
    offer = sip.parse_sdp(SDP.encode())
    assert offer == sip.MediaOffer("10.0.0.9", 4000, (8, 0, 101))
    answer = sip.parse_sdp(sip.build_sdp("10.0.0.5", 30000, 7))
    assert answer == sip.MediaOffer("10.0.0.5", 30000, (0,))
    with pytest.raises(sip.SipError):
        sip.parse_sdp(b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n")  # no address anywhere


def test_message_summary_round_trip() -> None:
    body = sip.message_summary(3, 0, "sip:1000@vm")
    assert (
        body == b"Messages-Waiting: yes\r\nMessage-Account: sip:1000@vm\r\nVoice-Message: 3/0\r\n"
    )
    assert sip.parse_message_summary(body) == (True, 3, 0)
    assert sip.parse_message_summary(sip.message_summary(0)) == (False, 0, 0)
