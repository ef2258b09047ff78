"""The control plane's and node's "is it still ours" check, against real processes: the
check that once called a healthy etcd "exited at start" because it read /proc just as the
kernel was finishing the exec."""

import subprocess
import sys
import threading
from pathlib import Path

from pairwarden_testbed.processes import save_state, started_here


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
