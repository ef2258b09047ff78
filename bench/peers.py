"""Side by side with the peers (issue 26): the same two voicemail servers and the same faults
behind (a) pairwarden, (b) Kamailio's dispatcher (Debian's `kamailio`: SIP OPTIONS probing
every second, threshold 1, active/backup by priority, a failed INVITE retried on the backup
after 1 s), and (c) keepalived VRRP (Debian's `keepalived`: one daemon in each server's network
namespace, adverts every second, priorities 150/100, each tracking every second whether its
server answers; callers dial the virtual address). Two backends:

- `--backend node`: a real node (containerd, kubelet, kube-proxy beside the real control plane;
  bench/failover.py's node backend starts it and installs the pair). (a) is the chart's operator
  and the example's pair, called through the Service's ClusterIP (kube-proxy). (b) and (c)
  front two plain pods on the same node: the example's member pods, the same image, arguments,
  restrictions and volumes, without the agent (`plain_pods`). Why not the pair's own pods with
  the operator stopped: their agents go on following the active Lease, so one of them stays
  standby and refuses calls, and a peer would front one server, not two (and two fences would
  be stacked); a server behind Kamailio or keepalived has no role and answers whatever reaches
  it, and that is what a plain pod is (a sidecar renews a standing
  order to answer, signed as the agent signs orders). Kamailio runs on the node, on the pod
  network's bridge address, dispatching to the pods' IPs. keepalived runs against the pods:
  each daemon in its pod's network namespace (`nsenter --net`, as a sidecar with NET_ADMIN
  would), VRRP over the node's bridge, the virtual address on the pod network.
- `--backend sandbox` (the default): (a) on the sandbox's local node (operator, agents, the
  Service through the kube-proxy stand-in); (b) and (c) in front of two voicemail processes on
  loopback (Kamailio) or in network namespaces of this run joined by a bridge (keepalived).
- `--backend all` (make bench): the node where a node can run here, else the sandbox.

For each fault of the member answering calls, `--runs` times: seconds from the fault to the
first call answered by the other member (a new call every 0.1 s from a new UDP port, each on
its own thread, through the arm's entry point: the Service, Kamailio, the virtual address);
calls held (placed after the fault, answered only after that first answer: their INVITE sent
again until the path was back) and dropped (never answered); samples with two members
answering (each server called every 50 ms at its own address: behind Kamailio and keepalived
both servers answer whatever reaches them, so two answer whenever both run). Then the ratio
pairwarden / peer of the median time to the first answer, fault by fault. Each row is printed
when done and goes into the run's JSON (bench/results/peers-<time>.json, rewritten after each
row); the node backend puts the arms' logs beside it (Kamailio's, keepalived's, pairwarden's
operator and agents). SIGTERM or SIGINT stops everything started (the node and its pods,
Kamailio, keepalived, namespaces).

    python bench/peers.py --runs 3                 # the sandbox, every arm, every fault
    python bench/peers.py --backend node --runs 5  # the real node (as root; one node at a time)
    python bench/peers.py --arms kamailio --faults crash,hang --runs 1

Faults, done the same way for every arm where the platform allows: crash = kill -9 of the
member's processes (the node: both containers of the pod, via their host pids from containerd,
which the kubelet restarts; the sandbox: pairwarden's both containers, the peers' voicemail
process, which a supervisor restarts after 0.2 s as the kubelet stand-in does); clean stop =
the node: the pod deleted with its grace period (SIGTERM: the voicemail drains and exits), then
made again as its owner would; the sandbox: SIGTERM, restarted; voicemail exit = kill -9 of the
voicemail container (process) alone (for the peers the same as a crash: there is no agent); hang
= SIGSTOP of the voicemail process until the other one answers; manual = `kubectl pairwarden
failover|failback`; for Kamailio `kamcmd dispatcher.set_state d` of the active destination
(disabled, then active again); for keepalived, keepalived stopped on the master (it sends
priority 0), then started again.

The sandbox's traffic stays on loopback (127.0.0.0/8) and in this run's own network namespaces
(10.251.0.0/24 exists only there; they are deleted at the end); the node's on its bridge pw0
(10.244.0.0/24, keepalived's virtual address VIP). Setup: Debian's kamailio and keepalived are
installed with apt-get when missing (as root, as `make tools` installs its tools); an arm that
cannot run is skipped with the reason. Not measured yet: a fixed-port caller (a PBX) for the
peers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import copy
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RunLog, machine, seconds, summary
from failover import _healthy_standby
from pairwarden.orders import ORDER_KEY_FILE, OrderSigner, new_key, write_key
from pairwarden.protocol import MAX_ORDER_MS, other
from pairwarden_testbed.lifecycle import sigterm_unwinds
from pairwarden_testbed.localcluster import LocalCluster, free_port, place_call, wait_until
from pairwarden_testbed.localnode.kubelet import random_ip_prefix
from pairwarden_testbed.node import BRIDGE_IP
from pairwarden_testbed.sipcaller import call_through

FAULTS = ("crash", "clean stop", "voicemail exit", "hang", "manual")
ARMS = ("pairwarden", "kamailio", "keepalived")
BACKENDS = ("sandbox", "node", "all")
MEMBERS = ("primary", "secondary")
DIAL_EVERY = 0.1  # seconds between two new calls (Caller)
CALL_TIMEOUT = 2.0  # a call through Kamailio may wait for its retry on the backup (fr 1 s)
SAMPLE_EVERY = 0.05  # seconds between two-answering samples
TAIL = 1.0  # two answering is sampled until this long after the other member's first answer
DEADLINE = 60.0  # a fault whose other member never answers within this is a failed run
RESTART_AFTER = 0.2  # the kubelet stand-in's first restart back-off (localnode/kubelet.py)
PACKAGES = ("kamailio",)
# What keeps a server behind a peer answering: it has no role, it answers whatever reaches it.
STANDING_ORDER = {"active": True, "epoch": 1, "validForMs": MAX_ORDER_MS}


# ------------------------------------------------------------------------------ measuring


@dataclass
class Call:
    began: float
    ended: float
    pod: str | None  # who answered; None: not answered


class Caller:
    """New calls through `address`, one every DIAL_EVERY, each from a new port on a thread of
    its own (a call dialled into a dead member waits out its INVITE while the next ones find
    the path: the first answer is when the path is back, to DIAL_EVERY)."""

    def __init__(
        self, address: tuple[str, int], netns: str | None = None, local_host: str | None = None
    ) -> None:
        self.address, self.netns, self.local_host = address, netns, local_host
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="caller", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(DIAL_EVERY):
            threading.Thread(target=self._call, name="call", daemon=True).start()

    def _call(self) -> None:
        enter(self.netns)
        began = time.monotonic()
        outcome = call_through(
            self.address, 0, caller="peers", local_host=self.local_host, timeout=CALL_TIMEOUT
        )
        pod = outcome.pod if outcome.code == 200 else None
        with self.lock:  # ended: when the 200 (or the giving up) came, not the BYE's answer
            self.calls.append(Call(began, began + outcome.setup_ms / 1000, pod))

    def last_answer(self) -> str | None:
        """Who answered the call placed last among those answered."""
        with self.lock:
            answered = [c for c in self.calls if c.pod]
        return max(answered, key=lambda c: c.began).pod if answered else None

    def first_answer(self, pod: str, after: float, timeout: float) -> float:
        """When a call placed after `after` was first answered by `pod` (calls end out of
        order: a later one may be answered first); NaN if none within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [c.ended for c in self.calls if c.began >= after and c.pod == pod]
            if found:
                time.sleep(DIAL_EVERY)  # an earlier call still in flight may be answered first
                with self.lock:
                    return min(c.ended for c in self.calls if c.began >= after and c.pod == pod)
            time.sleep(0.02)
        return math.nan

    def dropped(self, start: float, end: float) -> int:
        """Calls placed in [start, end) that nobody answered."""
        with self.lock:
            return sum(1 for c in self.calls if start <= c.began < end and c.pod is None)

    def held(self, start: float, end: float) -> int:
        """Calls placed in [start, end) answered only after `end` (they rang on, their INVITE
        sent again, until the path was back)."""
        with self.lock:
            return sum(1 for c in self.calls if start <= c.began < end and c.pod and c.ended > end)

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
    held: list[int] = field(default_factory=list)  # placed before the first answer, answered after
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
    local_host: str | None = None  # the callers' address (None: the system's choice)

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


def at_once(answers: Callable[[str], bool]) -> int:
    """How many members answer, both asked at once (a hung one costs its timeout, not the
    other's sample too)."""
    with concurrent.futures.ThreadPoolExecutor(len(MEMBERS)) as pool:
        return sum(pool.map(answers, MEMBERS))


def answered_by(ip: str, timeout: float) -> str | None:
    """The pod that answered a call placed to `ip`'s own line port (5070), or None (a
    standby refuses it; a hung or gone server answers nothing)."""
    return place_call((ip, 5070), "peers", timeout)


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
        self.key = new_key()  # orders are signed (pairwarden.orders), as the agent signs them
        write_key(self.workdir / "order.key", self.key)
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
            "--order-key-file", str(self.workdir / "order.key"),
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
        signer = OrderSigner(self.key)
        while not self.stopped.wait(0.5):
            body, headers = signer.sign(STANDING_ORDER)
            with contextlib.suppress(OSError):
                request = urllib.request.Request(
                    f"http://{self.control_host}:{self.control}/role",
                    data=body,
                    headers=headers,
                    method="POST",
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
modparam("dispatcher", "flags", 2)
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


class Members:
    """The two voicemail servers a peer fronts, with no failover of their own (each answers
    whatever reaches it): where each is reached, whether it answers, each server fault."""

    def address(self, member: str) -> str:
        raise NotImplementedError

    def answers(self, member: str) -> bool:
        raise NotImplementedError

    def inject(self, fault: str, member: str) -> None:
        """crash, clean stop, voicemail exit or hang (manual is the peer's own)."""
        raise NotImplementedError

    def recover(self, fault: str, member: str) -> None:
        """Undo a hang; bring a stopped server back (once the other answers)."""

    def up(self) -> bool:
        return all(self.answers(m) for m in MEMBERS)


class LoopbackServers(Members):
    """The sandbox's: two Server processes on loopback addresses of this run."""

    def __init__(self, stack: contextlib.ExitStack, workdir: Path) -> None:
        prefix = random_ip_prefix()
        self.prefix = prefix
        self.servers = {
            m: Server(f"vm-{m}", f"{prefix}{i + 2}", workdir) for i, m in enumerate(MEMBERS)
        }
        for server in self.servers.values():
            stack.callback(server.stop)

    def address(self, member: str) -> str:
        return self.servers[member].address

    def answers(self, member: str) -> bool:
        return self.servers[member].answers()

    def inject(self, fault: str, member: str) -> None:
        sig = {"clean stop": signal.SIGTERM, "hang": signal.SIGSTOP}.get(fault, signal.SIGKILL)
        self.servers[member].signal(sig)  # the supervisor restarts it as the kubelet would

    def recover(self, fault: str, member: str) -> None:
        if fault == "hang":
            self.servers[member].signal(signal.SIGCONT)


class Kamailio(Arm):
    """Kamailio's dispatcher in front of the two servers: destination set 1, the primary at
    priority 10, the secondary at 5, algorithm 8 (by priority: active/backup). A server whose
    address changes (a pod made again) is put in the list again and the list reloaded, as
    whoever runs Kamailio beside pods would have to."""

    name = "kamailio"

    def __init__(
        self,
        stack: contextlib.ExitStack,
        workdir: Path,
        members: Members,
        entry: tuple[str, int],
    ) -> None:
        self.members, self.entry = members, entry
        self.ctl = workdir / "kamailio.ctl"
        self.destinations = workdir / "dispatcher.list"
        self.listed = self._write_list()
        config = workdir / "kamailio.cfg"
        config.write_text(
            KAMAILIO_CFG.format(
                listen=f"{self.entry[0]}:{self.entry[1]}",
                modules=_modules(),
                ctl=self.ctl,
                destinations=self.destinations,
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
        wait_until(members.up, timeout=60)
        if self.process.poll() is not None:
            tail = (workdir / "kamailio.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"kamailio exited {self.process.returncode}: {tail}")

    def _write_list(self) -> dict[str, str]:
        listed = {m: self.members.address(m) for m in MEMBERS}
        self.destinations.write_text(
            "".join(
                f"1 sip:{listed[m]}:5060 0 {priority}\n"
                for m, priority in zip(MEMBERS, (10, 5), strict=True)
            )
        )
        return listed

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
        return at_once(self.members.answers)

    def _kamcmd(self, *args: str) -> None:
        command = ["kamcmd", "-s", f"unix:{self.ctl}", *args]
        subprocess.run(command, capture_output=True, check=True)

    def inject(self, fault: str, member: str) -> None:
        if fault == "manual":
            self._kamcmd("dispatcher.set_state", "d", "1", f"sip:{self.listed[member]}:5060")
        else:
            self.members.inject(fault, member)

    def recover(self, fault: str, member: str) -> None:
        if fault == "manual":
            self._kamcmd("dispatcher.set_state", "a", "1", f"sip:{self.listed[member]}:5060")
        else:
            self.members.recover(fault, member)

    def settle(self, active: str) -> None:
        wait_until(self.members.up, timeout=180)
        if {m: self.members.address(m) for m in MEMBERS} != self.listed:
            self.listed = self._write_list()
            self._kamcmd("dispatcher.reload")
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
# Healthy while the server says it answers calls (what Kamailio's OPTIONS probe asks too). With
# curl: a Python check took over the 1 s script timeout at load 11 (interpreter start-up) and
# put a healthy master in FAULT, moving the address without a fault.
CHECK = """#!/bin/sh
curl -sf -m 0.8 http://127.0.0.1:{port}/status | grep -q '"answering": true'
"""
LAN = "10.251.0"  # inside the namespaces of this run only


def keepalived_unavailable() -> str | None:
    """Why the keepalived arm cannot run (None when it can): root for network namespaces,
    Debian's keepalived (installed with apt-get when missing)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    wanted = [p for p in ("keepalived", "curl") if shutil.which(p) is None]
    if wanted and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *wanted]
        subprocess.run(command, env=env, capture_output=True, check=False)
    for program in ("keepalived", "ip", "curl"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install keepalived iproute2 curl)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Vrrp(Arm):
    """keepalived VRRP on the servers' LAN, one daemon per server in the server's network
    namespace: the primary at priority 150, the secondary at 100, adverts every second, each
    tracking its server every second (a failed check is FAULT: the master gives the virtual
    address up at once). Callers dial the virtual address. Manual: the administrator stops
    keepalived on the master (it sends priority 0), then starts it again."""

    name = "keepalived"
    workdir: Path
    daemons: dict[str, subprocess.Popen[bytes]]

    def inside(self, member: str) -> list[str]:
        """The command prefix that runs a program in `member`'s network namespace."""
        raise NotImplementedError

    def control_port(self, member: str) -> int:
        raise NotImplementedError

    def _start(self, member: str) -> None:
        base = self.workdir / f"keepalived-{member}"
        check = base.with_suffix(".check")
        check.write_text(CHECK.format(port=self.control_port(member)))
        check.chmod(0o755)
        config = base.with_suffix(".conf")
        priority = 150 if member == "primary" else 100
        config.write_text(
            KEEPALIVED_CFG.format(member=member, check=check, priority=priority, vip=self.entry[0])
        )
        command = [
            *self.inside(member), "keepalived", "--dont-fork",
            "--log-console", "--log-detail", "--vrrp", "-f", str(config),
            "-p", f"{base}.pid", "-r", f"{base}.vrrp.pid", "-c", f"{base}.checkers.pid",
        ]  # fmt: skip
        with base.with_suffix(".log").open("ab") as log:
            self.daemons[member] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _stop(self, member: str) -> None:
        daemon = self.daemons.get(member)
        if daemon is not None and daemon.poll() is None:
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


class Keepalived(Vrrp):
    """The sandbox's: two network namespaces of this run, one per server, joined by a bridge
    in a third (the callers' LAN)."""

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

    def inside(self, member: str) -> list[str]:
        return ["ip", "netns", "exec", self.spaces[member]]

    def control_port(self, member: str) -> int:
        return self.servers[member].control

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


# ------------------------------------------------------------------------------ the node

VIP = "10.244.0.240"  # keepalived's virtual address on the node's pod network (pw0's /24):
# host-local IPAM hands out pod addresses from .2 up, far from it within a run
# The sidecar that stands in for the agent in the peers' pods: it writes the order key to the
# order-key volume and renews STANDING_ORDER every half second on the pod's loopback.
ORDERER = f"""
import time, urllib.request
from pathlib import Path
from pairwarden.orders import ORDER_KEY_FILE, OrderSigner, new_key, write_key
key = new_key()
write_key(Path(ORDER_KEY_FILE), key)
signer = OrderSigner(key)
while True:
    body, headers = signer.sign({STANDING_ORDER!r})
    request = urllib.request.Request(
        "http://127.0.0.1:8081/role", data=body, headers=headers, method="POST")
    try:
        urllib.request.urlopen(request, timeout=0.5).close()
    except OSError:
        pass
    time.sleep(0.5)
"""
PLAIN_VOLUMES = ("data", "tmp", "message-store", "order-key")


def plain_pods(example: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The example's two member pods (`example`: tests/realnode/pairs.py's
    members_from_example, so the same image, arguments, restricted securityContext and
    volumes) without the agent, and in its place a sidecar of the voicemail image that keeps
    the server answering (ORDERER): a voicemail server with no failover of its own, which is
    what Kamailio and keepalived front. Each takes calls on any address of its pod
    (keepalived's virtual one too) and names the pod's own in SIP Contact."""
    pods = [copy.deepcopy(o) for o in example if o["kind"] == "Pod"]
    for pod in pods:
        spec = pod["spec"]
        spec.pop("serviceAccountName", None)  # no API access: nothing of the pair's
        spec["volumes"] = [v for v in spec["volumes"] if v["name"] in PLAIN_VOLUMES]
        (voicemail,) = [c for c in spec["containers"] if c["name"] == "voicemail"]
        voicemail["args"] = [
            *voicemail["args"],
            "--address",
            "0.0.0.0",
            "--sip-contact",
            "$(POD_IP)",
        ]
        orderer = {
            "name": "order",
            "image": voicemail["image"],
            "command": ["python", "-c", ORDERER],
            "securityContext": voicemail["securityContext"],
            "volumeMounts": [{"name": "order-key", "mountPath": str(Path(ORDER_KEY_FILE).parent)}],
        }
        spec["containers"] = [voicemail, orderer]
    return pods


class PodServers(Members):
    """plain_pods on the real node, in a namespace of their own: faults as the node has them
    (crash: kill -9 of both containers' processes, which the kubelet restarts; voicemail exit:
    kill -9 of the voicemail container; hang: SIGSTOP of it; clean stop: the pod deleted with
    its grace period, then made again as its owner would)."""

    def __init__(self, pair: Any, namespace: str) -> None:
        from kubernetes import client
        from tests.realnode.pairs import ROOT, create_all, members_from_example

        self.pair, self.namespace = pair, namespace
        self.core = client.CoreV1Api(pair.admin)
        example = members_from_example(ROOT / "examples" / "voicemail-pair.yaml")
        self.pods = {p["metadata"]["labels"]["member"]: p for p in plain_pods(example)}
        self.create = lambda m: create_all(pair.admin, [self.pods[m]], namespace)
        for member in MEMBERS:
            self.create(member)
        self.ips: dict[str, str] = {}
        self.hung = 0
        wait_until(self.up, timeout=180)

    def _pod(self, member: str) -> Any:
        return self.core.read_namespaced_pod(f"vm-{member}", self.namespace)

    def pid(self, member: str, container: str) -> int:
        statuses = self._pod(member).status.container_statuses or []
        (state,) = [c for c in statuses if c.name == container]
        return int(self.pair.node.container_pid(state.container_id))

    def address(self, member: str) -> str:
        return self.ips[member]

    def answers(self, member: str) -> bool:
        ip = self.ips.get(member)
        return ip is not None and answered_by(ip, timeout=0.3) == f"vm-{member}"

    def up(self) -> bool:
        """Both pods running and answering a call at their own address (their addresses
        read again: a pod made again has a new one)."""
        try:
            self.ips = {m: str(self._pod(m).status.pod_ip or "") for m in MEMBERS}
        except Exception:  # deleted, not made again yet
            return False
        return all(self.ips.values()) and super().up()

    def inject(self, fault: str, member: str) -> None:
        if fault == "clean stop":
            self.core.delete_namespaced_pod(f"vm-{member}", self.namespace)
            return
        containers = ("voicemail", "order") if fault == "crash" else ("voicemail",)
        pids = [self.pid(member, c) for c in containers]
        self.hung = pids[0]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP if fault == "hang" else signal.SIGKILL)

    def recover(self, fault: str, member: str) -> None:
        if fault == "hang":
            os.kill(self.hung, signal.SIGCONT)
        elif fault == "clean stop":
            wait_until(lambda: self._gone(member), timeout=120)
            self.create(member)
            wait_until(self.up, timeout=180)

    def _gone(self, member: str) -> bool:
        from kubernetes import client

        try:
            self._pod(member)
        except client.ApiException as error:
            return error.status == 404
        return False


class NodePairwarden(Arm):
    """The pair of tests/realnode/pairs.py (the chart's operator, the example's members) that
    bench/failover.py's node backend installs, through its Service's ClusterIP (kube-proxy);
    its faults those of tests/realnode/measure.py, and hang: SIGSTOP of the active voicemail
    container."""

    name = "pairwarden"

    def __init__(self, pair: Any) -> None:
        self.pair = pair
        self.entry = pair.sip_address()
        self.local_host = BRIDGE_IP
        self.ips: dict[str, str] = {}
        self.hung = 0

    def answering(self) -> int:
        return at_once(lambda m: m in self.ips and answered_by(self.ips[m], 0.3) == f"vm-{m}")

    def inject(self, fault: str, member: str) -> None:
        from tests.realnode.measure import FAULTS as NODE_FAULTS

        if fault == "hang":
            self.hung = self.pair.container_pid(member, "voicemail")
            os.kill(self.hung, signal.SIGSTOP)
        else:
            NODE_FAULTS[fault].inject(self.pair, member)

    def recover(self, fault: str, member: str) -> None:
        from tests.realnode.measure import FAULTS as NODE_FAULTS

        if fault == "hang":
            os.kill(self.hung, signal.SIGCONT)
        elif (again := NODE_FAULTS[fault].recover) is not None:
            again(self.pair, member)

    def save_logs(self, into: Path) -> None:
        """The operator's and both agents' logs into `into` (keep_logs puts them beside the
        run's JSON): where a slow row's time went."""
        from kubernetes import client
        from tests.realnode.pairs import RELEASE

        core = client.CoreV1Api(self.pair.admin)
        where = [(self.pair.system, f"{RELEASE}-operator-0", "operator", "operator")] + [
            (self.pair.namespace, f"vm-{m}", "agent", f"agent-{m}") for m in MEMBERS
        ]
        for namespace, pod, container, name in where:
            with contextlib.suppress(Exception):  # a pod gone: its log with it
                text = core.read_namespaced_pod_log(pod, namespace, container=container)
                (into / f"{name}.log").write_text(text)

    def settle(self, active: str) -> None:
        from tests.realnode.measure import settled

        wait_until(lambda: settled(self.pair, active), timeout=180)
        self.ips = {m: str(self.pair.pod(m).status.pod_ip) for m in MEMBERS}


class PodKeepalived(Vrrp):
    """On the node: each daemon in its pod's network namespace (nsenter --net= of the
    voicemail container's process: the pod's namespace, which its pause container holds),
    the pods' eth0 on the node's bridge, the virtual address VIP on the pod network; callers
    on the node dial it. A pod made again (clean stop) gets its daemon again, in its new
    namespace."""

    def __init__(self, stack: contextlib.ExitStack, workdir: Path, members: PodServers) -> None:
        self.members, self.workdir = members, workdir
        self.entry = (VIP, 5060)
        self.local_host = BRIDGE_IP
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        stack.callback(self._stop_all)
        # both servers running first: the last arm's faults may have left one restarting (in
        # the kubelet's back-off), with no process whose namespace the daemon could enter
        wait_until(members.up, timeout=180)
        for member in MEMBERS:
            self._start(member)

    def inside(self, member: str) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.members.pid(member, 'voicemail')}/ns/net"]

    def control_port(self, member: str) -> int:
        return 8081  # the example's, on the pod's loopback

    def answering(self) -> int:
        return at_once(self.members.answers)

    def inject(self, fault: str, member: str) -> None:
        if fault == "manual":  # the administrator stops keepalived on the master
            self._stop(member)
        else:
            self.members.inject(fault, member)

    def recover(self, fault: str, member: str) -> None:
        self.members.recover(fault, member)
        if fault in ("manual", "clean stop"):  # (clean stop: the pod made again, running)
            self._stop(member)
            self._start(member)

    def settle(self, active: str) -> None:
        wait_until(self.members.up, timeout=180)
        time.sleep(4.0)  # a master down interval: VRRP has settled on its master


def keep_logs(workdir: Path, beside: Path) -> None:
    """The logs of an arm (Kamailio's, keepalived's; pairwarden's operator and agents) beside
    the run's JSON: `workdir` goes with the node's temporary directory."""
    for found in sorted(workdir.glob("*.log")):
        shutil.copyfile(found, beside.with_name(f"{beside.stem}-{found.name}"))


def node_arms(
    names: list[str], faults: list[str], runs: int, log: RunLog
) -> tuple[Callable[[Any, Path], None], list[Figures]]:
    """What bench/failover.py's node backend runs beside its pair (`measure_node(beside=)`):
    each arm of `names` in turn on the same node, and the list its rows go to. The peers'
    servers are one pair of plain pods, made once for both peers."""
    rows: list[Figures] = []

    def beside(pair: Any, workdir: Path) -> None:
        from conftest import namespaces

        servers: PodServers | None = None
        for name in names:
            reason = unavailable(name)
            if reason is not None:
                print(f"\narm {name}: skipped ({reason})")
                continue
            print(f"\narm {name} on the node: {runs} run(s) of each fault, load {load()}")
            if name != "pairwarden" and servers is None:
                servers = PodServers(pair, next(namespaces(pair.admin))("peers"))
            with contextlib.ExitStack() as stack:
                here = workdir / name
                here.mkdir()
                stack.callback(keep_logs, here, log.path)  # last: after the daemons stop
                arm: Arm
                if name == "pairwarden":
                    arm = NodePairwarden(pair)
                    stack.callback(arm.save_logs, here)
                elif name == "kamailio":
                    assert servers is not None
                    arm = Kamailio(stack, here, servers, (BRIDGE_IP, free_port()))
                else:
                    assert servers is not None
                    arm = PodKeepalived(stack, here, servers)
                rows.extend(measure(arm, faults, runs, log))

    return beside, rows


# -------------------------------------------------------------------------------- running


def measure(arm: Arm, faults: list[str], runs: int, log: RunLog) -> list[Figures]:
    caller = Caller(arm.entry, arm.netns, arm.local_host)
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
    # the calls in flight end, and the samples a second past the first answer are taken, with
    # the fault still on (a server back from its hang would count as answering there)
    time.sleep(max(0.0, end + max(CALL_TIMEOUT, TAIL) - time.monotonic()))
    arm.recover(fault, active)
    if math.isnan(answered):
        raise RuntimeError(f"{other(active)} never answered within {DEADLINE:.0f} s")
    two, samples = sampler.between(t0, end + TAIL)
    into.answered.append(answered - t0)
    into.dropped.append(caller.dropped(t0, end))
    into.held.append(caller.held(t0, end))
    into.two.append(two)
    into.samples.append(samples)


def print_rows(rows: list[Figures]) -> None:
    print(
        "\narm         fault           runs | first answer p50   p99     max | held | dropped"
        " | samples with two answering"
    )
    for f in rows:
        p50, p99, top = summary(f.answered)
        print(
            f"{f.arm:<11} {f.fault:<15} {len(f.answered):>4} |{seconds(p50)} {seconds(p99)}"
            f" {seconds(top)} | {sum(f.held):>4} | {sum(f.dropped):>7} | {sum(f.two)} of"
            f" {sum(f.samples)}"
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


def unavailable(name: str) -> str | None:
    """Why arm `name` cannot run here (None when it can)."""
    reasons = {"kamailio": kamailio_unavailable, "keepalived": keepalived_unavailable}
    return reasons[name]() if name in reasons else None


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


@contextlib.contextmanager
def arm_named(name: str, workdir: Path) -> Iterator[Arm]:
    """An arm of the sandbox backend."""
    with contextlib.ExitStack() as stack:
        if name == "pairwarden":
            yield Pairwarden(stack)
        elif name == "kamailio":
            servers = LoopbackServers(stack, workdir)
            yield Kamailio(stack, workdir, servers, (f"{servers.prefix}1", 5060))
        else:
            yield Keepalived(stack, workdir)


@dataclass(frozen=True)
class Settings:
    backend: str  # sandbox, node, or all (the node where it can run, else the sandbox)
    arms: list[str]
    faults: list[str]
    runs: int
    json: str | None


def parse(argv: list[str] | None = None) -> Settings:
    """The command line; an unknown arm, fault or backend is a clear error (exit 2)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="runs of each fault (default 3)")
    parser.add_argument("--short", action="store_true", help="1 run of each fault (make bench)")
    parser.add_argument("--arms", default=",".join(ARMS), help="pairwarden,kamailio,keepalived")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="sandbox",
        help="sandbox (loopback), node (a real node), all (the node where it can run, else"
        " the sandbox)",
    )
    parser.add_argument("--json", default=None, help="default bench/results/peers-<time>.json")
    args = parser.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    faults = [f for f in args.faults.split(",") if f]
    unknown = [f for f in faults if f not in FAULTS] + [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)} (arms: {', '.join(ARMS)}; faults: "
                     f"{', '.join(FAULTS)})")  # fmt: skip
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    runs = args.runs or (1 if args.short else 3)
    return Settings(args.backend, arms, faults, runs, args.json)


def main(argv: list[str] | None = None) -> int:
    settings = parse(argv)
    # SIGTERM unwinds as Ctrl-C does: every `with` and `finally` stops what it started (the
    # node and its pods, Kamailio, keepalived, the namespaces, the sandbox's processes).
    with sigterm_unwinds():
        return run(settings)


def run(settings: Settings) -> int:
    print("pairwarden beside its peers")
    print(f"machine: {machine()}; load {load()}")
    log = RunLog("peers", settings.json)
    rows: list[Figures] | None = None
    if settings.backend in ("node", "all"):
        import failover

        print(f"\nbackend node: the chart's operator and the example's pair, load {load()}")
        beside, found = node_arms(settings.arms, settings.faults, settings.runs, log)
        if failover.measure_node(0, None, [], beside) is not None:
            rows = found
        elif settings.backend == "node":
            log.finish()
            return 1
    if rows is None:
        rows = []
        for name in settings.arms:
            reason = unavailable(name)
            if reason is not None:
                print(f"\narm {name}: skipped ({reason})")
                continue
            print(f"\narm {name}: {settings.runs} run(s) of each fault, load {load()}")
            with (
                tempfile.TemporaryDirectory(prefix=f"pairwarden-peers-{name}-") as tmp,
                arm_named(name, Path(tmp)) as arm,
            ):
                rows.extend(measure(arm, settings.faults, settings.runs, log))
    print(f"\nevery row (load {load()}):")
    print_rows(rows)
    print_ratios(rows)
    log.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
