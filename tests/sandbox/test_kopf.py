"""A real kopf operator (subprocess `kopf run`) against the cluster under test: handlers see
each create, update and delete once, post Events, patch status, a timer fires, the finalizer
holds deletion until kopf removes it, and peering lets only the higher priority handle.

The handlers record what they saw in a file of their own, one `os.write` per line on an
O_APPEND descriptor: kopf's log lines share the process's stdout/stderr pipe and would
otherwise interleave with a handler's `print` in the middle of a line. A `kopf run` takes
many seconds to start on a loaded machine, so every wait that spans a start has STARTUP; the
peering lifetime is long, so a keep-alive delayed by load never looks like a peer gone; kopf
waits for the timer to exit on deletion rather than poll for it a minute later."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .helpers import GROUP, PLURAL, VERSION, install_crd, peering_crd, wait_for, widget

KOPF = str(Path(sys.executable).with_name("kopf"))
STARTUP = 180.0  # seconds: a `kopf run` importing kopf and kubernetes beside six busy peers

OPERATOR = """
import logging
import os

import kopf

HANDLED = os.open(os.environ["HANDLED_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def handled(line):
    os.write(HANDLED, f"HANDLED {line}\\n".encode())


RESOURCE = ("test.pairwarden.io", "v1", "widgets")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.persistence.finalizer = "test.pairwarden.io/kopf"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 30
    settings.peering.lifetime = 60
    # A timer busy at deletion would make kopf poll for its exit (60 s by default) and then
    # invoke the delete handler again: wait for the timer's exit instead.
    settings.background.instant_exit_timeout = 30
    settings.background.cancellation_polling = 1


@kopf.on.create(*RESOURCE)
def created(name, body, patch, **_):
    handled(f"create {name}")
    kopf.info(body, reason="Created", message=f"saw {name}")
    patch.status["phase"] = "Ready"


@kopf.on.update(*RESOURCE, field="spec")
def updated(name, **_):
    handled(f"update {name}")


@kopf.on.delete(*RESOURCE)
def deleted(name, **_):
    handled(f"delete {name}")


@kopf.timer(*RESOURCE, interval=0.3)
def ticked(name, **_):
    handled(f"timer {name}")
"""


class Operator:
    """A `kopf run` subprocess whose output lines are collected by a reader thread, and
    whose handlers append `HANDLED ...` lines to a file of their own."""

    def __init__(self, script: Path, env: dict[str, str], namespace: str, priority: int) -> None:
        self.lines: list[str] = []
        self.handled_log = script.with_name(f"handled-{priority}.log")
        self.handled_log.touch()
        env = {**env, "HANDLED_LOG": str(self.handled_log)}
        self.proc = subprocess.Popen(
            [
                KOPF,
                "run",
                str(script),
                "--namespace",
                namespace,
                "--peering",
                "test",
                "--priority",
                str(priority),
                "--verbose",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def handled(self) -> list[str]:
        """Whole lines only: a line still being written has no newline yet."""
        text = self.handled_log.read_text()
        return text[: text.rfind("\n") + 1].splitlines()

    def count(self, text: str) -> int:
        return sum(1 for line in self.handled() if line == text)

    def saw(self, text: str) -> bool:
        return any(text in line for line in [*list(self.lines), *self.handled()])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def operators(
    sandbox: Any, api_client: client.ApiClient, widgets: Any, namespace: str, tmp_path: Path
) -> Iterator[Callable[[int], Operator]]:
    install_crd(api_client, peering_crd("kopfpeerings", "KopfPeering", "Namespaced"))
    install_crd(api_client, peering_crd("clusterkopfpeerings", "ClusterKopfPeering", "Cluster"))
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "test"}},
    )
    script = tmp_path / "operator.py"
    script.write_text(OPERATOR)
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig_path), "PYTHONUNBUFFERED": "1"}
    started: list[Operator] = []

    def start(priority: int) -> Operator:
        op = Operator(script, env, namespace, priority)
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
        print("\n".join(op.lines))  # shown by pytest when the test failed
        print(op.handled_log.read_text())


def _get(widgets: client.CustomObjectsApi, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(widgets.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_kopf_handles_create_update_delete_once(
    operators: Callable[[int], Operator],
    widgets: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
) -> None:
    op = operators(100)
    widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("k1"))
    wait_for(lambda: op.count("HANDLED create k1") == 1, STARTUP, "create handler")
    ready = wait_for(
        lambda: (_get(widgets, namespace, "k1") or {}).get("status", {}).get("phase") == "Ready",
        60,
        "status.phase Ready",
    )
    assert ready
    obj = _get(widgets, namespace, "k1")
    assert obj is not None and "test.pairwarden.io/kopf" in obj["metadata"]["finalizers"]
    wait_for(
        lambda: any(
            e.reason == "Created" and e.involved_object.name == "k1"
            for e in core.list_namespaced_event(namespace).items
        ),
        60,
        "kopf's Event",
    )
    wait_for(lambda: op.saw("HANDLED timer k1"), 60, "the timer")
    widgets.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "k1", {"spec": {"size": "large"}}
    )
    wait_for(lambda: op.count("HANDLED update k1") == 1, 60, "update handler")
    widgets.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "k1")
    wait_for(lambda: _get(widgets, namespace, "k1") is None, 60, "deletion to complete")
    assert op.count("HANDLED delete k1") == 1
    assert op.count("HANDLED create k1") == 1 and op.count("HANDLED update k1") == 1


def test_kopf_peering_lets_only_the_higher_priority_handle(
    operators: Callable[[int], Operator], widgets: client.CustomObjectsApi, namespace: str
) -> None:
    high = operators(200)
    widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("first"))
    wait_for(lambda: high.count("HANDLED create first") == 1, STARTUP, "high to handle")
    low = operators(100)

    def peers() -> set[int]:
        obj = widgets.get_namespaced_custom_object(
            "kopf.dev", "v1", namespace, "kopfpeerings", "test"
        )
        return {int(p.get("priority", 0)) for p in (obj.get("status") or {}).values()}

    wait_for(lambda: peers() == {100, 200}, STARTUP, "both operators to join the peering")
    wait_for(lambda: low.saw("Pausing the watch-stream for widgets"), 60, "low priority to pause")
    widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("second"))
    wait_for(lambda: high.count("HANDLED create second") == 1, 60, "high to handle second")
    assert not low.saw("HANDLED")
    assert not low.saw("Resuming the watch-stream for widgets")
