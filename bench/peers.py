"""Side by side with the peers (issue 26): the same two voicemail servers and the same faults
behind (a) pairwarden (the sandbox's local node: operator, agents, the Service through the
kube-proxy stand-in), (b) Kamailio's dispatcher (Debian's `kamailio`: SIP OPTIONS probing every
second, threshold 1, active/backup by priority, a failed INVITE retried on the backup after
1 s), and (c) keepalived VRRP (Debian's `keepalived`: the two servers in network namespaces of
this run joined by a bridge, adverts every second, priorities 150/100, each tracking its
server's health every second; callers dial the virtual address).

For each fault of the member answering calls, `--runs` times: seconds from the fault to the
first call answered by the other member (a caller dialling without pause, a new UDP port each
call, through the arm's entry point: the Service, Kamailio, the virtual address); calls dropped
meanwhile (placed after the fault and not answered); samples with two members answering (each
server asked every 50 ms whether it answers, as its `/status` says: behind Kamailio and
keepalived both servers answer whatever reaches them, so two answer whenever both run). Then
the ratio pairwarden / peer of the median time to the first answer, fault by fault.

    python bench/peers.py --runs 3                # every arm, every fault (--short: 1 run)
    python bench/peers.py --arms kamailio --faults crash,hang --runs 1

Faults: crash = kill -9 of the member's processes (pairwarden: both containers, which the
kubelet restarts; the peers: the voicemail process, which a supervisor restarts after 0.2 s as
the kubelet stand-in does); clean stop = SIGTERM (the voicemail drains, exits, is restarted);
voicemail exit = kill -9 of the voicemail process alone (for the peers the same as a crash:
there is no agent); hang = SIGSTOP of the voicemail process until the other one answers;
manual = `kubectl pairwarden failover|failback`; for Kamailio `kamcmd dispatcher.set_state d`
of the active destination (disabled, then active again); for keepalived, keepalived stopped on
the master (it sends priority 0), then started again.

Traffic stays on loopback (127.0.0.0/8) and in this run's own network namespaces (10.251.0.0/24
exists only there; they are deleted at the end). Setup: Debian's kamailio and keepalived are
installed with apt-get when missing (as root, as `make tools` installs its tools); an arm that
cannot run is skipped with the reason. Not measured yet: the real node backend (the peers'
processes beside the node's pods), a fixed-port caller (a PBX) for the peers.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RunLog, machine, seconds, summary
from failover import _healthy_standby
from pairwarden.protocol import MAX_ORDER_MS, other
from pairwarden_testbed.lifecycle import sigterm_unwinds
from pairwarden_testbed.localcluster import LocalCluster, free_port, wait_until
from pairwarden_testbed.localnode.kubelet import random_ip_prefix
from pairwarden_testbed.sipcaller import call_through

FAULTS = ("crash", "clean stop", "voicemail exit", "hang", "manual")
ARMS = ("pairwarden", "kamailio", "keepalived")
MEMBERS = ("primary", "secondary")
CALL_PACE = 0.05  # between one call's end and the next: a caller dialling without pause
CALL_TIMEOUT = 2.0  # a call through Kamailio may wait for its retry on the backup (fr 1 s)
SAMPLE_EVERY = 0.05  # seconds between two-answering samples
DEADLINE = 60.0  # a fault whose other member never answers within this is a failed run
RESTART_AFTER = 0.2  # the kubelet stand-in's first restart back-off (localnode/kubelet.py)
PACKAGES = ("kamailio",)


# ------------------------------------------------------------------------------ measuring


@dataclass
class Call:
    began: float
    ended: float
    pod: str | None  # who answered; None: not answered


class Caller:
    """Calls placed one after another, each from a new port, through `address`."""

    def __init__(self, address: tuple[str, int], netns: str | None = None) -> None:
        self.address, self.netns = address, netns
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="caller", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        enter(self.netns)
        while not self.stopped.is_set():
            began = time.monotonic()
            outcome = call_through(self.address, 0, caller="peers", timeout=CALL_TIMEOUT)
            pod = outcome.pod if outcome.code == 200 else None
            with self.lock:
                self.calls.append(Call(began, time.monotonic(), pod))
            self.stopped.wait(CALL_PACE)

    def last_answer(self) -> str | None:
        with self.lock:
            return next((c.pod for c in reversed(self.calls) if c.pod), None)

    def first_answer(self, pod: str, after: float, timeout: float) -> float:
        """When a call placed after `after` was first answered by `pod`; NaN if none."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = next((c for c in self.calls if c.began >= after and c.pod == pod), None)
            if found is not None:
                return found.ended
            time.sleep(0.02)
        return math.nan

    def dropped(self, start: float, end: float) -> int:
        """Calls placed in [start, end) that nobody answered."""
        with self.lock:
            return sum(1 for c in self.calls if start <= c.began < end and c.pod is None)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(CALL_TIMEOUT * 3)


class TwoAnswering:
    """Samples, every SAMPLE_EVERY, of how many members say they answer calls."""

    def __init__(self, answering: Callable[[], int], netns: str | None = None) -> None:
        self.answering, self.netns = answering, netns
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="two-answering", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        enter(self.netns)
        while not self.stopped.wait(SAMPLE_EVERY):
            self.samples.append((time.monotonic(), self.answering()))

    def between(self, start: float, end: float) -> tuple[int, int]:
        """(samples with two answering, samples) in [start, end)."""
        window = [n for at, n in list(self.samples) if start <= at < end]
        return sum(1 for n in window if n >= 2), len(window)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)


@dataclass
class Figures:
    arm: str
    fault: str
    answered: list[float] = field(default_factory=list)  # seconds to the other's first answer
    dropped: list[int] = field(default_factory=list)
    two: list[int] = field(default_factory=list)  # samples with two answering, per run
    samples: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------- arms


def enter(netns: str | None) -> None:
    """Move the calling thread (only it: setns is per thread) into network namespace
    `netns` (None: stay)."""
    if netns is None:
        return
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        os.setns(fd, os.CLONE_NEWNET)
    finally:
        os.close(fd)


def run_in(netns: str | None, work: Callable[[], bool]) -> bool:
    """`work()` in a thread of its own inside `netns` (None: here)."""
    if netns is None:
        return work()
    result: list[bool] = []

    def inside() -> None:
        enter(netns)
        result.append(work())

    thread = threading.Thread(target=inside, daemon=True)
    thread.start()
    thread.join(10)
    return bool(result and result[0])


class Arm:
    """One way of keeping one of the two servers answering: how calls reach it, how each
    fault is made and undone, how many servers answer."""

    name = ""
    entry: tuple[str, int]
    netns: str | None = None  # where callers and samplers run (None: here, on loopback)

    def pod(self, member: str) -> str:
        return f"vm-{member}"

    def answering(self) -> int:
        raise NotImplementedError

    def inject(self, fault: str, member: str) -> None:
        raise NotImplementedError

    def recover(self, fault: str, member: str) -> None:
        """Undo what needs undoing (a hang, a disabled destination) once the other answers."""

    def settle(self, active: str) -> None:
        """Wait for a pair at rest: `active` answers, the other could take over."""


class Pairwarden(Arm):
    name = "pairwarden"

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.cluster = stack.enter_context(LocalCluster())
        self.cluster.start_pair(interval_ms=200, missed=10)  # W = 2 s, as bench/failover.py
        wait_until(lambda: _healthy_standby(self.cluster, "primary", "secondary"), timeout=90)
        self.entry = self.cluster.sip_address()

    def answering(self) -> int:
        return len(self.cluster.answering_members())

    def inject(self, fault: str, member: str) -> None:
        kubelet, pod = self.cluster.kubelet, self.pod(member)
        if fault == "crash":
            for container in ("agent", "voicemail"):
                kubelet.kill_container(pod, container, signal.SIGKILL)
        elif fault == "clean stop":
            kubelet.kill_pod(pod, signal.SIGTERM)
        elif fault == "voicemail exit":
            kubelet.kill_container(pod, "voicemail", signal.SIGKILL)
        elif fault == "hang":
            kubelet.kill_container(pod, "voicemail", signal.SIGSTOP)
        else:
            self.cluster.request("failover" if member == "primary" else "failback")

    def recover(self, fault: str, member: str) -> None:
        if fault == "clean stop":
            self.cluster.kubelet.revive_pod(self.pod(member))
        elif fault == "hang":
            self.cluster.kubelet.kill_container(self.pod(member), "voicemail", signal.SIGCONT)

    def settle(self, active: str) -> None:
        wait_until(lambda: _healthy_standby(self.cluster, active, other(active)), timeout=90)


class Server:
    """One voicemail process as a container runs it, restarted RESTART_AFTER after it exits
    (restartPolicy Always), and kept answering by an order renewed every half second: with
    Kamailio there is no agent and no role, each server answers whatever reaches it."""

    def __init__(
        self, pod: str, address: str, workdir: Path, netns: tuple[str, str] | None = None
    ) -> None:
        """`netns`: (the server's own namespace, the one it is reached from), or None for
        this machine's loopback."""
        self.pod, self.address, self.netns = pod, address, netns
        self.control = free_port()
        self.control_host = address if netns is not None else "127.0.0.1"
        self.workdir = workdir / pod
        (self.workdir / "data").mkdir(parents=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped = threading.Event()
        self.supervisor = threading.Thread(target=self._supervise, name=pod, daemon=True)
        self.orderer = threading.Thread(target=self._order, name=f"{pod}-order", daemon=True)
        self.supervisor.start()
        self.orderer.start()

    def _supervise(self) -> None:
        command = [
            sys.executable, "-m", "pairwarden_testbed.cli", "voicemail",
            "--address", self.address, "--pod", self.pod, "--sip-port", "5060",
            "--call-port", "5070", "--control-port", str(self.control),
            "--data-dir", str(self.workdir / "data"), "--stop-grace", "1",
        ]  # fmt: skip
        if self.netns is not None:  # any address of its own, the virtual one too
            command = ["ip", "netns", "exec", self.netns[0], *command, "--address", "0.0.0.0",
                       "--sip-contact", self.address, "--control-address", "0.0.0.0"]  # fmt: skip
        while not self.stopped.is_set():
            with (self.workdir / "voicemail.log").open("ab") as log:
                self.process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            self.process.wait()
            if self.stopped.wait(RESTART_AFTER):
                return

    def _order(self) -> None:
        enter(self.netns[1] if self.netns else None)
        body = f'{{"active": true, "epoch": 1, "validForMs": {MAX_ORDER_MS}}}'.encode()
        while not self.stopped.wait(0.5):
            with contextlib.suppress(OSError):
                request = urllib.request.Request(
                    f"http://{self.control_host}:{self.control}/role", data=body, method="POST"
                )
                urllib.request.urlopen(request, timeout=0.5).close()

    def answers(self) -> bool:
        """Whether it says it answers (call from a thread in the namespace it is reached
        from, or through `answers_here`)."""
        with contextlib.suppress(OSError, ValueError):
            url = f"http://{self.control_host}:{self.control}/status"
            with urllib.request.urlopen(url, timeout=0.2) as response:
                return b'"answering": true' in response.read()
        return False

    def answers_here(self) -> bool:
        return run_in(self.netns[1] if self.netns else None, self.answers)

    def signal(self, sig: int) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)

    def stop(self) -> None:
        self.stopped.set()
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        self.supervisor.join(5)


KAMAILIO_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
children=2
listen=udp:{listen}
mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "ctl.so"
loadmodule "dispatcher.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("tm", "fr_timer", 1000)
modparam("tm", "fr_inv_timer", 1000)
modparam("dispatcher", "list_file", "{destinations}")
modparam("dispatcher", "ds_ping_interval", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_ping_reply_codes", "class=2")
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (!ds_select_dst("1", "8")) {{ sl_send_reply("503", "No destination"); exit; }}
    t_on_failure("NEXT");
    t_relay();
}}
failure_route[NEXT] {{
    if (t_is_canceled()) {{ exit; }}
    if (t_check_status("5[0-9][0-9]") || t_branch_timeout()) {{
        ds_mark_dst("ip");
        if (ds_next_dst()) {{ t_on_failure("NEXT"); t_relay(); exit; }}
    }}
}}
"""


def kamailio_unavailable() -> str | None:
    """Why the Kamailio arm cannot run (None when it can), after installing Debian's package
    where root can (the setup step: apt-get, as `make tools` does)."""
    if shutil.which("kamailio") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        subprocess.run(command, env=env, capture_output=True, check=False)
    for program in ("kamailio", "kamcmd"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install kamailio, as root)"
    return None


def _modules() -> str:
    found = sorted(Path("/usr/lib").glob("*/kamailio/modules/dispatcher.so"))
    return str(found[0].parent) if found else "/usr/lib/x86_64-linux-gnu/kamailio/modules"


class Kamailio(Arm):
    """Kamailio's dispatcher in front of the two servers: destination set 1, the primary at
    priority 10, the secondary at 5, algorithm 8 (by priority: active/backup)."""

    name = "kamailio"

    def __init__(self, stack: contextlib.ExitStack, workdir: Path) -> None:
        prefix = random_ip_prefix()
        self.addresses = {m: f"{prefix}{i + 2}" for i, m in enumerate(MEMBERS)}
        self.servers = {m: Server(self.pod(m), self.addresses[m], workdir) for m in MEMBERS}
        for server in self.servers.values():
            stack.callback(server.stop)
        self.entry = (f"{prefix}1", 5060)
        self.ctl = workdir / "kamailio.ctl"
        destinations = workdir / "dispatcher.list"
        destinations.write_text(
            "".join(
                f"1 {self.uri(m)} 0 {priority}\n"
                for m, priority in zip(MEMBERS, (10, 5), strict=True)
            )
        )
        config = workdir / "kamailio.cfg"
        config.write_text(
            KAMAILIO_CFG.format(
                listen=f"{self.entry[0]}:{self.entry[1]}",
                modules=_modules(),
                ctl=self.ctl,
                destinations=destinations,
            )
        )
        command = [
            "kamailio", "-f", str(config), "-DD", "-E", "-w", str(workdir),
            "-Y", str(workdir), "-P", str(workdir / "kamailio.pid"), "-m", "32", "-M", "8",
        ]  # fmt: skip
        with (workdir / "kamailio.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        stack.callback(self._stop)
        wait_until(lambda: all(s.answers() for s in self.servers.values()), timeout=60)
        if self.process.poll() is not None:
            tail = (workdir / "kamailio.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"kamailio exited {self.process.returncode}: {tail}")

    def uri(self, member: str) -> str:
        return f"sip:{self.addresses[member]}:5060"

    def _stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def answering(self) -> int:
        return sum(1 for s in self.servers.values() if s.answers())

    def _state(self, state: str, member: str) -> None:
        command = ["kamcmd", "-s", f"unix:{self.ctl}", "dispatcher.set_state", state, "1"]
        subprocess.run([*command, self.uri(member)], capture_output=True, check=True)

    def inject(self, fault: str, member: str) -> None:
        server = self.servers[member]
        if fault in ("crash", "voicemail exit"):
            server.signal(signal.SIGKILL)
        elif fault == "clean stop":
            server.signal(signal.SIGTERM)
        elif fault == "hang":
            server.signal(signal.SIGSTOP)
        else:
            self._state("d", member)

    def recover(self, fault: str, member: str) -> None:
        if fault == "hang":
            self.servers[member].signal(signal.SIGCONT)
        elif fault == "manual":
            self._state("a", member)

    def settle(self, active: str) -> None:
        wait_until(lambda: all(s.answers() for s in self.servers.values()), timeout=60)
        time.sleep(2.0)  # two probing intervals: the dispatcher has seen both up


KEEPALIVED_CFG = """global_defs {{
  router_id pairwarden_{member}
  script_user root
}}
vrrp_script voicemail {{
  script "{check}"
  interval 1
  timeout 1
  fall 1
  rise 1
}}
vrrp_instance pair {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int 1
  virtual_ipaddress {{
    {vip}/24
  }}
  track_script {{
    voicemail
  }}
}}
"""
CHECK = """#!/bin/sh
exec {python} -c 'import urllib.request as u; u.urlopen("http://127.0.0.1:{port}/healthz", \\
    timeout=0.8)'
"""
LAN = "10.251.0"  # inside the namespaces of this run only


def keepalived_unavailable() -> str | None:
    """Why the keepalived arm cannot run (None when it can): root for network namespaces,
    Debian's keepalived (installed with apt-get when missing)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("keepalived") is None and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "keepalived"]
        subprocess.run(command, env=env, capture_output=True, check=False)
    for program in ("keepalived", "ip"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install keepalived iproute2, as root)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Keepalived(Arm):
    """keepalived VRRP between two network namespaces of this run, one per server, joined by
    a bridge in a third (the callers' LAN): the primary at priority 150, the secondary at
    100, adverts every second, each tracking its voicemail server's health every second
    (a failed check is FAULT: the master gives the virtual address up at once). Callers
    dial the virtual address."""

    name = "keepalived"

    def __init__(self, stack: contextlib.ExitStack, workdir: Path) -> None:
        tag = f"pwpeers{os.getpid() % 100000}"
        self.lan = f"{tag}-lan"
        self.spaces = {m: f"{tag}-{m[0]}" for m in MEMBERS}
        stack.callback(self._delete_namespaces)
        self._make_namespaces(tag)
        self.netns = self.lan
        self.addresses = {m: f"{LAN}.{i + 2}" for i, m in enumerate(MEMBERS)}
        self.entry = (f"{LAN}.10", 5060)
        self.workdir = workdir
        self.servers = {
            m: Server(self.pod(m), self.addresses[m], workdir, (self.spaces[m], self.lan))
            for m in MEMBERS
        }
        for server in self.servers.values():
            stack.callback(server.stop)
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        for member in MEMBERS:
            self._start(member)
        stack.callback(self._stop_all)
        wait_until(lambda: all(s.answers_here() for s in self.servers.values()), timeout=60)

    def _make_namespaces(self, tag: str) -> None:
        for name in (self.lan, *self.spaces.values()):
            _ip("netns", "add", name)
        _ip("-n", self.lan, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.lan, "addr", "add", f"{LAN}.1/24", "dev", "br0")
        for ns in (self.lan, *self.spaces.values()):
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", self.lan, "link", "set", "br0", "up")
        for i, (member, ns) in enumerate(self.spaces.items()):
            outside, inside = f"{tag}{member[0]}a", f"{tag}{member[0]}b"
            _ip("link", "add", outside, "netns", self.lan, "type", "veth", "peer", "name",
                inside, "netns", ns)  # fmt: skip
            _ip("-n", self.lan, "link", "set", outside, "master", "br0", "up")
            _ip("-n", ns, "link", "set", inside, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{LAN}.{i + 2}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def _delete_namespaces(self) -> None:
        for ns in (self.lan, *self.spaces.values()):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)

    def _start(self, member: str) -> None:
        base = self.workdir / f"keepalived-{member}"
        check = base.with_suffix(".check")
        check.write_text(CHECK.format(python=sys.executable, port=self.servers[member].control))
        check.chmod(0o755)
        config = base.with_suffix(".conf")
        priority = 150 if member == "primary" else 100
        config.write_text(
            KEEPALIVED_CFG.format(member=member, check=check, priority=priority, vip=self.entry[0])
        )
        command = [
            "ip", "netns", "exec", self.spaces[member], "keepalived", "--dont-fork",
            "--log-console", "--log-detail", "--vrrp", "-f", str(config),
            "-p", f"{base}.pid", "-r", f"{base}.vrrp.pid", "-c", f"{base}.checkers.pid",
        ]  # fmt: skip
        with base.with_suffix(".log").open("ab") as log:
            self.daemons[member] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _stop(self, member: str) -> None:
        daemon = self.daemons[member]
        if daemon.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()

    def _stop_all(self) -> None:
        for member in MEMBERS:
            self._stop(member)

    def answering(self) -> int:
        return sum(1 for s in self.servers.values() if s.answers())  # in the sampler's netns

    def inject(self, fault: str, member: str) -> None:
        server = self.servers[member]
        if fault in ("crash", "voicemail exit"):
            server.signal(signal.SIGKILL)
        elif fault == "clean stop":
            server.signal(signal.SIGTERM)
        elif fault == "hang":
            server.signal(signal.SIGSTOP)
        else:  # the administrator stops keepalived on the master: it sends priority 0
            self._stop(member)

    def recover(self, fault: str, member: str) -> None:
        if fault == "hang":
            self.servers[member].signal(signal.SIGCONT)
        elif fault == "manual":
            self._start(member)

    def settle(self, active: str) -> None:
        wait_until(lambda: all(s.answers_here() for s in self.servers.values()), timeout=60)
        time.sleep(4.0)  # a master down interval: VRRP has settled on its master


# -------------------------------------------------------------------------------- running


def measure(arm: Arm, faults: list[str], runs: int, log: RunLog) -> list[Figures]:
    caller = Caller(arm.entry, arm.netns)
    sampler = TwoAnswering(arm.answering, arm.netns)
    found: list[Figures] = []
    try:
        for fault in faults:
            figures = Figures(arm.name, fault)
            found.append(figures)
            for i in range(runs):
                try:
                    one_run(arm, caller, sampler, fault, figures)
                except Exception as error:  # the table shows what was measured
                    figures.errors.append(f"run {i + 1}: {error!r}")
                    break
            print_rows([figures])
            log.add(arm.name, figures)
    finally:
        caller.stop()
        sampler.stop()
    return found


def one_run(arm: Arm, caller: Caller, sampler: TwoAnswering, fault: str, into: Figures) -> None:
    answered_by = wait_until(caller.last_answer, timeout=30)
    active = next(m for m in MEMBERS if arm.pod(m) == answered_by)
    arm.settle(active)
    active = next(m for m in MEMBERS if arm.pod(m) == wait_until(caller.last_answer, 30))
    t0 = time.monotonic()
    arm.inject(fault, active)
    answered = caller.first_answer(arm.pod(other(active)), t0, DEADLINE)
    end = answered if not math.isnan(answered) else time.monotonic()
    arm.recover(fault, active)
    if math.isnan(answered):
        raise RuntimeError(f"{other(active)} never answered within {DEADLINE:.0f} s")
    two, samples = sampler.between(t0, end + 1.0)
    into.answered.append(answered - t0)
    into.dropped.append(caller.dropped(t0, end))
    into.two.append(two)
    into.samples.append(samples)


def print_rows(rows: list[Figures]) -> None:
    print(
        "\narm         fault           runs | first answer p50   p99     max | dropped calls"
        " | samples with two answering"
    )
    for f in rows:
        p50, p99, top = summary(f.answered)
        print(
            f"{f.arm:<11} {f.fault:<15} {len(f.answered):>4} |{seconds(p50)} {seconds(p99)}"
            f" {seconds(top)} | {sum(f.dropped):>5} in all  | {sum(f.two)} of {sum(f.samples)}"
        )
        for error in f.errors:
            print(f"    ! {error}")


def print_ratios(rows: list[Figures]) -> None:
    ours = {f.fault: f for f in rows if f.arm == "pairwarden"}
    print("\nratio pairwarden / peer of the median time to the first answer (< 1: faster):")
    for f in rows:
        if f.arm == "pairwarden" or f.fault not in ours:
            continue
        a, b = summary(ours[f.fault].answered)[0], summary(f.answered)[0]
        ratio = a / b if b > 0 and not math.isnan(a) else math.nan
        print(f"  vs {f.arm:<9} {f.fault:<15} {ratio:5.2f}")


@contextlib.contextmanager
def arm_named(name: str, workdir: Path) -> Iterator[Arm]:
    with contextlib.ExitStack() as stack:
        if name == "pairwarden":
            yield Pairwarden(stack)
        elif name == "kamailio":
            yield Kamailio(stack, workdir)
        else:
            yield Keepalived(stack, workdir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="runs of each fault (default 3)")
    parser.add_argument("--short", action="store_true", help="1 run of each fault (make bench)")
    parser.add_argument("--arms", default=",".join(ARMS), help="pairwarden,kamailio")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--json", default=None, help="default bench/results/peers-<time>.json")
    args = parser.parse_args(argv)
    with sigterm_unwinds():
        return run(args)


def run(args: argparse.Namespace) -> int:
    args.runs = args.runs or (1 if args.short else 3)
    faults = [f for f in args.faults.split(",") if f]
    unknown = [f for f in faults if f not in FAULTS] + [
        a for a in args.arms.split(",") if a not in ARMS
    ]
    if unknown:
        raise SystemExit(f"unknown: {', '.join(unknown)}")
    print("pairwarden beside its peers")
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.1f}")
    log = RunLog("peers", args.json)
    rows: list[Figures] = []
    for name in args.arms.split(","):
        unavailable = {"kamailio": kamailio_unavailable, "keepalived": keepalived_unavailable}
        reason = unavailable[name]() if name in unavailable else None
        if reason is not None:
            print(f"\narm {name}: skipped ({reason})")
            continue
        print(f"\narm {name}: {args.runs} run(s) of each fault")
        with (
            tempfile.TemporaryDirectory(prefix=f"pairwarden-peers-{name}-") as tmp,
            arm_named(name, Path(tmp)) as arm,
        ):
            rows.extend(measure(arm, faults, args.runs, log))
    print("\nevery row:")
    print_rows(rows)
    print_ratios(rows)
    log.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
