"""bench/peers.py's figures: calls dropped between a fault and the other member's first
answer, samples with two answering, the ratio printed per fault."""

from __future__ import annotations

import math
import threading

import pytest
from bench.peers import (
    Call,
    Caller,
    Figures,
    Settings,
    TwoAnswering,
    parse,
    plain_pods,
    print_ratios,
)
from tests.realnode.pairs import ROOT, members_from_example


def test_dropped_calls_are_those_placed_after_the_fault_and_not_answered() -> None:
    caller = Caller.__new__(Caller)  # its record alone: no thread, no network
    caller.lock = threading.Lock()
    caller.calls = [
        Call(9.0, 9.1, "vm-primary"),  # before the fault
        Call(10.1, 11.1, None),  # refused: dropped
        Call(11.2, 12.2, None),  # timed out: dropped
        Call(12.3, 12.4, "vm-secondary"),  # the other member's first answer
        Call(12.5, 12.6, None),  # after it: not counted
    ]
    assert caller.dropped(10.0, 12.4) == 2
    assert caller.held(10.0, 12.4) == 0  # none placed before the first answer came after it
    assert caller.first_answer("vm-secondary", 10.0, 0.1) == 12.4
    assert math.isnan(caller.first_answer("vm-secondary", 12.45, 0.05))  # none after 12.45
    assert caller.last_answer() == "vm-secondary"


def test_two_answering_counts_the_samples_in_the_window() -> None:
    sampler = TwoAnswering.__new__(TwoAnswering)
    sampler.samples = [(9.9, 2), (10.0, 1), (10.05, 2), (10.1, 1), (10.2, 2)]
    assert sampler.between(10.0, 10.2) == (1, 3)


def test_the_ratio_is_printed_per_fault_against_each_peer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [
        Figures("pairwarden", "crash", answered=[0.5, 0.7, 0.6]),
        Figures("kamailio", "crash", answered=[2.0, 2.1, 2.2]),
        Figures("kamailio", "hang", answered=[2.0]),  # no pairwarden row: no ratio
    ]
    print_ratios(rows)
    out = capsys.readouterr().out
    assert "vs kamailio  crash            0.29" in out
    assert "hang" not in out


def test_the_command_line_names_backend_arms_faults_and_runs() -> None:
    settings = parse(["--backend", "node", "--arms", "kamailio", "--faults", "crash,hang"])
    assert settings == Settings("node", ["kamailio"], ["crash", "hang"], 3, None)
    assert parse(["--short"]).runs == 1
    assert parse(["--short", "--runs", "5"]).runs == 5
    assert parse([]).backend == "sandbox"  # the node only when asked (make bench: all)


@pytest.mark.parametrize(
    "argv",
    [
        ["--backend", "cloud"],
        ["--arms", "pairwarden,opensips"],
        ["--faults", "crash,reboot"],
        ["--runs", "0"],
    ],
)
def test_a_bad_command_line_is_a_clear_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert any(word in err for word in ("cloud", "opensips", "reboot", "at least 1"))


def test_the_peers_pods_are_the_examples_voicemail_without_the_agent() -> None:
    example = members_from_example(ROOT / "examples" / "voicemail-pair.yaml")
    pods = plain_pods(example)
    assert [p["metadata"]["name"] for p in pods] == ["vm-primary", "vm-secondary"]
    originals = {p["metadata"]["name"]: p for p in example if p["kind"] == "Pod"}
    for pod in pods:
        spec = pod["spec"]
        original = originals[pod["metadata"]["name"]]["spec"]
        voicemail, orderer = spec["containers"]
        (theirs,) = [c for c in original["containers"] if c["name"] == "voicemail"]
        # the same image, arguments (plus any address, for keepalived's) and restrictions
        assert voicemail["image"] == theirs["image"] == orderer["image"]
        assert voicemail["args"][: len(theirs["args"])] == theirs["args"]
        assert voicemail["args"][len(theirs["args"]) :] == [
            "--address", "0.0.0.0", "--sip-contact", "$(POD_IP)",
        ]  # fmt: skip
        assert voicemail["securityContext"] == theirs["securityContext"]
        assert spec["securityContext"] == original["securityContext"]
        # no agent, no API identity, no pair secrets; the order key written by the sidecar
        assert "serviceAccountName" not in spec
        assert spec["automountServiceAccountToken"] is False
        assert {v["name"] for v in spec["volumes"]} == {"data", "tmp", "message-store", "order-key"}
        (mount,) = orderer["volumeMounts"]
        assert mount == {"name": "order-key", "mountPath": "/var/run/pairwarden/order"}
        assert "write_key" in orderer["command"][-1] and "validForMs" in orderer["command"][-1]
    assert "agent" in {c["name"] for c in originals["vm-primary"]["spec"]["containers"]}


def test_calls_held_are_those_placed_before_the_first_answer_and_answered_after_it() -> None:
    """Calls end out of order: one dialled into the dead member is answered once its INVITE,
    sent again, finds the path back, after a later call was already answered."""
    caller = Caller.__new__(Caller)
    caller.lock = threading.Lock()
    caller.calls = [
        Call(10.1, 12.6, "vm-secondary"),  # rang 2.5 s: held
        Call(10.2, 12.2, None),  # gave up: dropped
        Call(11.9, 12.0, "vm-secondary"),  # the first answer
        Call(11.95, 12.3, "vm-secondary"),  # placed before it, answered after: held
    ]
    assert caller.first_answer("vm-secondary", 10.0, 0.5) == 12.0
    assert caller.held(10.0, 12.0) == 2
    assert caller.dropped(10.0, 12.0) == 1
    assert caller.last_answer() == "vm-secondary"
