"""The shipped examples through the real kubectl and the real CRD (from crds/, which the
sandbox installs): the full example is accepted, each invalid one is refused naming its field."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from pairwarden.api import SpecError, parse_spec

from .helpers import skip_without_cel

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def test_the_full_example_is_accepted(kubectl: Kubectl, namespace: str) -> None:
    out = kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "failoverpair.yaml"))
    assert "failoverpair.pairwarden.io/vm created" in out.stdout
    table = kubectl("get", "fp", "-n", namespace).stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "ACTIVE", "PHASE", "EPOCH"]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_each_invalid_example_is_refused_naming_its_field(
    kubectl: Kubectl, api_client: client.ApiClient, namespace: str, path: Path
) -> None:
    expect = path.read_text().split("# expect:")[1].splitlines()[0].strip()
    field = expect.partition(": ")[0]  # "spec.a.b: what the rule says"
    done = kubectl("apply", "-n", namespace, "-f", str(path), check=False)
    if done.returncode == 0:  # only a CEL rule refuses it, and this server may have none
        with pytest.raises(SpecError) as caught:  # the operator refuses it: SpecValid=False
            parse_spec(yaml.safe_load(path.read_text())["spec"])
        assert expect in str(caught.value)
        skip_without_cel(api_client)
    assert done.returncode != 0, f"{path.name} was accepted"
    parent, _, leaf = field.rpartition(".")
    refused_by_server = "is invalid" in done.stderr and f"{field}:" in done.stderr
    # kubectl checks a missing required field itself against the server's OpenAPI v2 (1.20)
    refused_by_kubectl = f'missing required field "{leaf}"' in done.stderr and parent in done.stderr
    assert refused_by_server or refused_by_kubectl, done.stderr


def test_an_unknown_time_zone_is_refused_at_its_field_with_the_rules_message(
    kubectl: Kubectl, api_client: client.ApiClient, namespace: str
) -> None:
    """CEL cannot turn the unknown zone's evaluation error into false; the server then words
    the refusal at the node that carries the rule (timeZone itself) and names the rule by its
    message: `<field>: Invalid value: ...: <error> evaluating rule: <message>`."""
    skip_without_cel(api_client)
    path = ROOT / "examples" / "invalid" / "bad-time-zone.yaml"
    done = kubectl("apply", "-n", namespace, "-f", str(path), check=False)
    assert done.returncode != 0
    assert "spec.failback.window.timeZone: Invalid value:" in done.stderr, done.stderr
    assert "evaluating rule: timeZone must be an IANA time zone name" in done.stderr, done.stderr
