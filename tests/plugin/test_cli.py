"""`kubectl pairwarden` as kubectl users type it: connection flags anywhere on the line, the
namespace of `--context`, `-o json|yaml`, history, version, errors that say what is missing,
hints that reach the same pair, completion through kubectl's plugin helper protocol."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from pairwarden import GROUP, PLURAL, VERSION, plugin
from pairwarden import cli as pairwarden_cli

BIN = Path(sys.executable).parent
TRANSITIONS = [
    {"time": "2026-11-25T12:00:00Z", "from": "none", "to": "primary", "cause": "FirstToStart",
     "epoch": 1},
    {"time": "2026-11-25T12:59:00Z", "from": "primary", "to": "secondary",
     "cause": "HeartbeatLost", "epoch": 2, "durationSeconds": 30.4},
]  # fmt: skip


@pytest.fixture
def pair(api_client: client.ApiClient, namespace: str) -> str:
    """A FailoverPair with a status as the operator writes it (no operator runs here)."""
    custom = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FailoverPair",
        "metadata": {"name": "vm"},
        "spec": {
            "members": {"primary": {"podName": "vm-primary"}, "secondary": {"podName": "vm-2"}},
            "service": "vm-calls",
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    status = {"activeMember": "secondary", "epoch": 2, "transitions": TRANSITIONS}
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "vm", {"status": status}
    )
    return "vm"


@pytest.fixture
def kubeconfig(sandbox: Any, namespace: str, tmp_path: Path) -> Path:
    """The sandbox's kubeconfig with a second context whose namespace is the test's."""
    data = yaml.safe_load(Path(sandbox.kubeconfig_path).read_text())
    first = data["contexts"][0]
    data["contexts"].append(
        {"name": "voice", "context": {**first["context"], "namespace": namespace}}
    )
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Done]:
    """The plugin's main in this process (fast on a loaded machine), with a clean env."""

    def call(*args: str, kubeconfig: Path | None = None, **env: str) -> Done:
        monkeypatch.setenv("HOME", "/nonexistent")
        monkeypatch.delenv("KUBECONFIG", raising=False)
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        if kubeconfig is not None:
            monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        code = plugin.main(list(args))
        out, err = capsys.readouterr()
        return Done(code, out, err)

    return call


def test_flags_after_the_verb_and_yaml_output(
    run: Callable[..., Done], kubeconfig: Path, namespace: str, pair: str
) -> None:
    done = run("status", pair, "-n", namespace, "-o", "yaml", kubeconfig=kubeconfig)
    assert done.returncode == 0, done.stderr
    doc = yaml.safe_load(done.stdout)
    assert (doc["name"], doc["namespace"]) == ("vm", namespace)
    assert doc["status"]["activeMember"] == "secondary"
    assert set(doc["members"]) == {"primary", "secondary"}
    before = run("-n", namespace, "status", pair, kubeconfig=kubeconfig)
    assert before.returncode == 0 and f"FailoverPair {namespace}/vm" in before.stdout


def test_context_brings_its_namespace_and_all_namespaces_lists_every_pair(
    run: Callable[..., Done], kubeconfig: Path, namespace: str, pair: str
) -> None:
    by_context = run("status", "--context", "voice", "-o", "json", kubeconfig=kubeconfig)
    assert by_context.returncode == 0, by_context.stderr
    assert [d["namespace"] for d in json.loads(by_context.stdout)] == [namespace]
    everywhere = run("status", "-A", "-o", "json", f"--kubeconfig={kubeconfig}")
    assert everywhere.returncode == 0, everywhere.stderr
    assert (namespace, "vm") in {(d["namespace"], d["name"]) for d in json.loads(everywhere.stdout)}


def test_history_text_and_json(
    run: Callable[..., Done], kubeconfig: Path, namespace: str, pair: str
) -> None:
    text = run("history", pair, "--namespace", namespace, kubeconfig=kubeconfig)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split()[:4] == ["TIME", "FROM", "TO", "EPOCH"]
    assert lines[2].split()[1:6] == ["primary", "secondary", "2", "30.40s", "HeartbeatLost"]
    as_json = run("history", pair, "-n", namespace, "-o", "json", kubeconfig=kubeconfig)
    assert [t["cause"] for t in json.loads(as_json.stdout)] == ["FirstToStart", "HeartbeatLost"]


def test_hint_after_a_timeout_keeps_the_connection_flags(
    run: Callable[..., Done], kubeconfig: Path, namespace: str, pair: str
) -> None:
    done = run("failover", pair, "--timeout", "0.3", "-n", namespace, kubeconfig=kubeconfig)
    assert done.returncode == 1
    assert f"'kubectl pairwarden events vm -n {namespace}'" in done.stderr
    assert f"'kubectl pairwarden doctor vm -n {namespace}'" in done.stderr
    events = run("events", pair, "-n", namespace, kubeconfig=kubeconfig)
    assert events.returncode == 0 and "No Events for vm." in events.stdout


def test_doctor_on_the_sandbox_reads_the_pair_and_the_peerings(
    run: Callable[..., Done], kubeconfig: Path, namespace: str, pair: str
) -> None:
    """A pair just created, with no conditions: the doctor answers (exit 0) and says so; a
    failover that times out points at it."""
    done = run("doctor", pair, "-n", namespace, kubeconfig=kubeconfig)
    assert done.returncode == 0, done.stderr
    assert f"FailoverPair {namespace}/vm: 1 finding" in done.stdout
    assert "no status yet" in done.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["status", "--kubeconfig", "/nonexistent/k"], {}, "kubeconfig /nonexistent/k"),
        (["status"], {"KUBECONFIG": "/nonexistent/a:/nonexistent/b"}, "no file of $KUBECONFIG"),
        (["status"], {}, "no kubeconfig: --kubeconfig is not given"),
    ],
)
def test_missing_kubeconfig_says_so(
    run: Callable[..., Done], args: list[str], env: dict[str, str], message: str
) -> None:
    done = run(*args, **env)
    assert done.returncode == 1 and message in done.stderr
    assert "Service host/port" not in done.stderr


def test_unknown_context_names_the_known_ones(run: Callable[..., Done], kubeconfig: Path) -> None:
    done = run("status", "--context", "nope", kubeconfig=kubeconfig)
    assert done.returncode == 1
    assert 'context "nope" is not in the kubeconfig' in done.stderr and "voice" in done.stderr


def test_version_is_the_same_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin.main(["version"]) == 0
    from_plugin = capsys.readouterr().out.strip()
    with pytest.raises(SystemExit):
        pairwarden_cli.main(["--version"])
    from_cli = capsys.readouterr().out.strip()
    assert from_cli == f"pairwarden {pairwarden_cli.__version__}"
    assert from_plugin == f"{from_cli} (Kubernetes 1.20 and later)", "plus the supported range"


def lookup(kind: str, flags: argparse.Namespace) -> list[str]:
    return {"pairs": [f"vm-in-{flags.namespace}"], "namespaces": ["voice", "default"]}[kind]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["st"], ("status",)),
        (["-n", "voice", "h"], ("history",)),
        (["status", "-n", "voice", ""], ("vm-in-voice",)),
        (["history", "-n", "v"], ("voice",)),
        (["status", "-o", ""], ("text", "json", "yaml")),
        (["failover", "vm", "--no"], ("--no-wait",)),
        (["version", ""], ()),
    ],
)
def test_completion(words: list[str], expected: tuple[str, ...]) -> None:
    assert plugin.complete(words, lookup).words == expected


def test_completion_helper_speaks_kubectls_protocol(
    kubeconfig: Path, namespace: str, pair: str
) -> None:
    helper = BIN / "kubectl_complete-pairwarden"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    done = subprocess.run(
        [str(helper), "status", "-n", namespace, ""], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.stdout.splitlines() == ["vm", ":4"]
    files = subprocess.run(
        [str(helper), "--kubeconfig", ""], env=env, capture_output=True, text=True, timeout=60
    )
    assert files.stdout == ":0\n"


def test_kubectl_finds_the_plugin_and_its_completion(kubeconfig: Path) -> None:
    """kubectl runs `kubectl-pairwarden` for `kubectl pairwarden` and asks
    `kubectl_complete-pairwarden` when the shell completes its arguments."""
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    kubectl = str(BIN / "kubectl")
    done = subprocess.run(
        [kubectl, "pairwarden", "version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == plugin.version_line()
    completed = subprocess.run(
        [kubectl, "__complete", "pairwarden", "hist"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.stdout.splitlines() == ["history", ":4"]


def test_a_reader_that_leaves_early_ends_the_plugin_quietly(
    kubeconfig: Path, namespace: str, pair: str
) -> None:
    """`kubectl pairwarden status | head`: the pipe's reader is gone before the plugin writes;
    it ends with a shell's SIGPIPE status and no traceback, as kubectl does."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": "/nonexistent"}
    command = [
        sys.executable,
        "-c",
        "import sys; from pairwarden.plugin import main; sys.exit(main())",
    ]
    with subprocess.Popen(
        [*command, "status", pair, "-n", namespace],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader leaves before the first line is written
        errors = process.stderr.read()
        assert process.wait(timeout=120) == 141, errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
