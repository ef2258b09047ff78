"""The protobuf bodies kubectl's typed commands send, read field by field; bodies the sandbox
cannot read are a 415 that says what it reads and what to send instead."""

from __future__ import annotations

import pytest

from pairwarden_testbed.sandbox import protobuf
from pairwarden_testbed.sandbox.errors import ApiError


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([byte])
        out += bytes([byte | 0x80])


def _field(number: int, value: bytes | int | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _entry(key: str, value: str | bytes) -> bytes:
    return _field(1, key) + _field(2, value)


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version) + _field(2, kind)
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, raw) + _field(4, "")


def test_secret_as_go_writes_it() -> None:
    """Go writes every non-pointer field, empty or not: the zero values are left out."""
    meta = (
        _field(1, "s")
        + _field(2, "")
        + _field(3, "voice")
        + _field(7, 0)
        + _field(8, b"")  # the zero creationTimestamp
        + _field(11, _entry("app", "vm"))
        + _field(14, "example.com/keep")
    )
    raw = _field(1, meta) + _field(2, _entry("token", b"\x00\xff")) + _field(3, "Opaque")
    assert protobuf.decode(_envelope("v1", "Secret", raw)) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "s",
            "namespace": "voice",
            "labels": {"app": "vm"},
            "finalizers": ["example.com/keep"],
        },
        "data": {"token": "AP8="},
        "type": "Opaque",
    }


def test_unknown_fields_are_skipped_and_pointer_bools_kept() -> None:
    raw = _field(1, _field(1, "robot")) + _field(4, 0) + _field(99, "future")
    body = protobuf.decode(_envelope("v1", "ServiceAccount", raw))
    assert body["automountServiceAccountToken"] is False
    assert body["metadata"] == {"name": "robot"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"kind": "Namespace"}', "magic number"),
        (_envelope("apps/v1", "Deployment", b""), "got apps/v1 Deployment"),
        (protobuf.MAGIC + b"\x0a\x50", "malformed envelope"),
        (_envelope("v1", "ConfigMap", b"\x0a\x05ab"), "malformed ConfigMap"),
        (_envelope("v1", "ConfigMap", b"\x0b"), "malformed ConfigMap"),
    ],
)
def test_unreadable_body_is_415_naming_the_way_out(body: bytes, detail: str) -> None:
    with pytest.raises(ApiError) as caught:
        protobuf.decode(body)
    assert caught.value.code == 415
    assert detail in caught.value.message
    assert "DeleteOptions, Namespace, ConfigMap, Secret, ServiceAccount" in caught.value.message
    assert "send JSON or YAML" in caught.value.message


def test_delete_options_keep_a_zero_grace_period() -> None:
    """Pointer fields are written only when set: a zero grace period means "now"."""
    raw = _field(1, 0) + _field(4, "Background") + _field(2, _field(2, "42"))
    assert protobuf.decode(_envelope("v1", "DeleteOptions", raw)) == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Background",
        "preconditions": {"resourceVersion": "42"},
    }
