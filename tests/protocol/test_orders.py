"""The role-order codec (pairwarden.orders): the agent signs, the voicemail verifies, with one
module for both, as protocol.MemberReport is for the member Lease."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from pairwarden.orders import (
    AUTH_HEADER,
    AUTH_SCHEME,
    KEY_BYTES,
    ORDER_FRESH_MS,
    OrderSigner,
    OrderVerifier,
    new_key,
    read_key,
    signature,
    write_key,
)

ORDER = {"active": True, "epoch": 2, "validForMs": 25_000, "holdMs": 0, "activeContact": None}


class Wall:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_signed_order_verifies_and_carries_its_fields_and_a_growing_stamp() -> None:
    wall = Wall()
    signer, verifier = OrderSigner(new_key(), wall), OrderVerifier(wall)
    stamps = []
    for _ in range(3):  # within one millisecond: still strictly growing
        body, headers = signer.sign(ORDER)
        assert headers[AUTH_HEADER].startswith(f"{AUTH_SCHEME} ")
        checked = verifier.check(signer.key, body, headers[AUTH_HEADER])
        assert checked.status == 200 and checked.order is not None
        stamps.append(checked.order.pop("issuedAtMs"))
        assert checked.order == ORDER
    assert stamps == [1_800_000_000_000, 1_800_000_000_001, 1_800_000_000_002]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, header: (body, None),  # unsigned
        lambda body, header: (body, ""),
        lambda body, header: (body, signature(new_key(), body)),  # another key
        lambda body, header: (body.replace(b'"epoch":2', b'"epoch":9'), header),  # altered
        lambda body, header: (body + b" ", header),
        lambda body, header: (body, header.replace(AUTH_SCHEME, "Bearer")),
    ],
)
def test_anything_but_the_agents_signature_over_these_bytes_is_401(tamper: object) -> None:
    signer, verifier = OrderSigner(new_key()), OrderVerifier()
    body, headers = signer.sign(ORDER)
    forged_body, forged_header = tamper(body, headers[AUTH_HEADER])  # type: ignore[operator]
    checked = verifier.check(signer.key, forged_body, forged_header)
    assert checked.status == 401 and checked.order is None and checked.reason


def test_no_key_refuses_every_order() -> None:
    signer = OrderSigner(new_key())
    body, headers = signer.sign(ORDER)
    assert OrderVerifier().check(None, body, headers[AUTH_HEADER]).status == 401


def test_a_late_or_replayed_order_is_409_and_a_new_key_starts_afresh() -> None:
    wall = Wall()
    signer, verifier = OrderSigner(new_key(), wall), OrderVerifier(wall)
    first = signer.sign(ORDER)
    second = signer.sign({**ORDER, "active": False, "epoch": 3})
    assert verifier.check(signer.key, second[0], second[1][AUTH_HEADER]).status == 200
    assert verifier.check(signer.key, first[0], first[1][AUTH_HEADER]).status == 409  # late
    assert verifier.check(signer.key, second[0], second[1][AUTH_HEADER]).status == 409  # replay
    restarted = OrderSigner(new_key(), wall)  # the agent restarted and wrote a new key
    body, headers = restarted.sign(ORDER)
    assert verifier.check(restarted.key, body, headers[AUTH_HEADER]).status == 200
    old = signer.sign(ORDER)  # the old agent's orders are now foreign
    assert verifier.check(restarted.key, old[0], old[1][AUTH_HEADER]).status == 401


def test_an_order_stamped_far_from_now_is_409_and_blocks_at_most_the_window() -> None:
    """Whoever holds the key could stamp an order in the future to keep the agent's own out:
    it is refused beyond ORDER_FRESH_MS, and within it blocks no longer than that."""
    wall, agent_wall = Wall(), Wall()
    verifier = OrderVerifier(wall)
    key = new_key()
    future = OrderSigner(key, lambda: wall.now + 3600)
    body, headers = future.sign(ORDER)
    assert verifier.check(key, body, headers[AUTH_HEADER]).status == 409
    near = OrderSigner(key, lambda: wall.now + ORDER_FRESH_MS / 1000)
    body, headers = near.sign(ORDER)
    assert verifier.check(key, body, headers[AUTH_HEADER]).status == 200
    agent = OrderSigner(key, agent_wall)
    body, headers = agent.sign(ORDER)
    assert verifier.check(key, body, headers[AUTH_HEADER]).status == 409
    wall.now += ORDER_FRESH_MS / 1000
    agent_wall.now = wall.now + 0.001
    body, headers = agent.sign(ORDER)
    assert verifier.check(key, body, headers[AUTH_HEADER]).status == 200
    stale = OrderSigner(key, lambda: wall.now - 60)  # replayed bytes from a minute ago
    body, headers = stale.sign(ORDER)
    assert verifier.check(key, body, headers[AUTH_HEADER]).status == 409


def test_a_clock_stepped_back_does_not_lock_the_agent_out() -> None:
    wall = Wall()
    signer, verifier = OrderSigner(new_key(), wall), OrderVerifier(wall)
    body, headers = signer.sign(ORDER)
    assert verifier.check(signer.key, body, headers[AUTH_HEADER]).status == 200
    wall.now -= 3600  # NTP stepped the host's clock back an hour
    restarted = OrderSigner(signer.key, wall)  # stamps from the clock again
    body, headers = restarted.sign(ORDER)
    assert verifier.check(signer.key, body, headers[AUTH_HEADER]).status == 200


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"active":true}', b'{"issuedAtMs":true}'])
def test_an_authentic_body_without_an_integer_seq_is_400(body: bytes) -> None:
    key = new_key()
    checked = OrderVerifier().check(key, body, signature(key, body))
    assert checked.status == 400 and checked.order is None


def test_the_key_file_round_trips_and_is_not_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "key"
    key = new_key()
    write_key(path, key)
    assert read_key(path) == key and len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0
    (tmp_path / ".key.tmp").write_text("half")  # a run killed between write and rename
    (tmp_path / ".key.tmp").chmod(0o440)
    replaced = new_key()
    write_key(path, replaced)  # a restarted agent: replaced whole, never half written
    assert read_key(path) == replaced
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


@pytest.mark.parametrize("content", [None, "", "zz", "ab" * (KEY_BYTES - 1)])
def test_a_missing_or_malformed_key_file_is_no_key(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)
    assert read_key(path) is None


def test_the_signature_is_hmac_sha256_of_the_body_for_third_party_servers() -> None:
    """docs/voicemail-contract.md tells a third-party server how to check an order with the
    standard library alone: this is that recipe."""
    import hashlib
    import hmac

    key = bytes(range(KEY_BYTES))
    body = json.dumps({"active": False, "epoch": 1, "validForMs": 0, "issuedAtMs": 1}).encode()
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    assert signature(key, body) == f"Pairwarden-HMAC-SHA256 {expected}"
