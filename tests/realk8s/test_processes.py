"""The control plane's and node's "is it still ours" check, against real processes: the
check that once called a healthy etcd "exited at start" because it read /proc just as the
kernel was finishing the exec."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pairwarden_testbed.processes import (
    print_status,
    running,
    save_state,
    spawn,
    started_here,
    stop,
)


def _spawn(directory: Path) -> subprocess.Popen[bytes]:
    # The interpreter's own name and a marker naming the directory, as the daemons carry it.
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", str(directory)],
        start_new_session=True,
    )


def test_a_process_is_ours_from_the_instant_popen_returns(tmp_path: Path) -> None:
    name = Path(sys.executable).name
    for _ in range(50):
        proc = _spawn(tmp_path)
        try:
            assert started_here(name, proc.pid, tmp_path)
        finally:
            proc.kill()
            proc.wait()


def test_another_directory_or_a_dead_pid_is_not_ours(tmp_path: Path) -> None:
    name = Path(sys.executable).name
    proc = _spawn(tmp_path / "one")
    try:
        assert not started_here(name, proc.pid, tmp_path / "two")
        assert not started_here("etcd", proc.pid, tmp_path / "one")
    finally:
        proc.kill()
    # Killed but not yet waited for: a zombie, reaped by the check itself.
    assert _eventually_not_ours(name, proc.pid, tmp_path / "one")


def _eventually_not_ours(name: str, pid: int, directory: Path) -> bool:
    for _ in range(200):
        if not started_here(name, pid, directory):
            return True
        subprocess.run(["true"], check=True)  # let the kernel deliver the kill
    return False


def test_the_state_file_is_replaced_whole(tmp_path: Path) -> None:
    save_state(tmp_path / "d", {"pids": {"etcd": 1}})
    save_state(tmp_path / "d", {"pids": {}})
    assert (tmp_path / "d" / "state.json").read_text() == '{\n  "pids": {}\n}\n'
    assert not (tmp_path / "d" / "state.json.tmp").exists()


def test_an_empty_command_line_is_an_exec_under_way_not_an_exit(tmp_path: Path) -> None:
    """/proc as the kernel shows it mid-exec: a live process with an empty cmdline, filled
    a moment later. Deterministic, unlike racing a real exec."""
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "stat").write_text("42 (etcd) D 1 42 42 0 -1 4194304 240 0 0 0\n")
    (proc / "42" / "cmdline").write_bytes(b"")
    data_dir = tmp_path / "cp" / "etcd-data"

    def finish_exec() -> None:
        (proc / "42" / "cmdline").write_bytes(b"/usr/bin/etcd\0--data-dir\0%s\0" % bytes(data_dir))

    timer = threading.Timer(0.05, finish_exec)
    timer.start()
    try:
        assert started_here("etcd", 42, tmp_path / "cp", proc=proc)
    finally:
        timer.join()


# A daemon that shrugs off SIGTERM, as a wedged one does; the directory is on its line.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)
POLITE = "import time; print('up', flush=True); time.sleep(60)"


def _wait_for_log(log: Path) -> None:
    deadline = time.monotonic() + 60
    while b"up" not in (log.read_bytes() if log.exists() else b""):
        assert time.monotonic() < deadline, "the daemon never started"
        time.sleep(0.05)


def test_stop_terminates_then_kills_what_outlives_the_grace(tmp_path: Path) -> None:
    """The launchers' one way to stop: TERM all at once, KILL after the grace, and return
    only when each is gone (a 'down' that returns early leaves ports taken)."""
    name = Path(sys.executable).name  # the daemons' program, as started_here reads it
    logs = tmp_path / "logs"
    polite = spawn([sys.executable, "-c", POLITE, str(tmp_path)], logs / "polite.log")
    stubborn = spawn([sys.executable, "-c", STUBBORN, str(tmp_path)], logs / "stubborn.log")
    _wait_for_log(logs / "polite.log")
    _wait_for_log(logs / "stubborn.log")
    try:
        t0 = time.monotonic()
        stop([(name, polite.pid), (name, stubborn.pid)], tmp_path, grace=0.5)
        # Gone on return (stop reaps them, so Popen cannot tell the signal), and the
        # stubborn one only after the grace: it was killed, not terminated.
        assert time.monotonic() - t0 >= 0.5
        assert not started_here(name, polite.pid, tmp_path)
        assert not started_here(name, stubborn.pid, tmp_path)
    finally:
        polite.kill()
        stubborn.kill()


def test_stop_never_signals_a_pid_that_is_not_ours(tmp_path: Path) -> None:
    """A pid from an old state file may belong to another program now: left alone."""
    other = spawn([sys.executable, "-c", POLITE, str(tmp_path / "b")], tmp_path / "o.log")
    _wait_for_log(tmp_path / "o.log")
    try:
        stop([(Path(sys.executable).name, other.pid), ("etcd", None)], tmp_path / "a", grace=0.1)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_status_names_each_component_and_fails_unless_all_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = Path(sys.executable).name
    proc = spawn([sys.executable, "-c", POLITE, str(tmp_path)], tmp_path / "p.log")
    _wait_for_log(tmp_path / "p.log")
    try:
        assert running([name, "etcd"], {name: proc.pid}, tmp_path) == [name]
        assert print_status([name, "etcd"], {name: proc.pid}, tmp_path) == 1
        assert print_status([name], {name: proc.pid}, tmp_path) == 0
    finally:
        proc.kill()
        proc.wait()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [name, "running", str(proc.pid)]
    assert lines[1].split() == ["etcd", "stopped"]
