"""One per lab host: runs systemd-nspawn, wires its NICs, and restarts it when the host reboots.

Started by `lab up` as `python -m stackwright.lab.supervisor SPEC` in its own session. A
`systemctl reboot` inside the host makes nspawn exit 133; a real machine would come back, so we
start nspawn again and put the new root-side veths back on their bridges. SIGTERM asks nspawn to
power the host off (nspawn turns it into SIGRTMIN+3 for the host's systemd), waits, then kills.

SPEC (JSON, written by `lab up`):
    {"name": "compute1", "root": ".../root", "nspawn_pid_file": ".../nspawn.pid",
     "links": [{"veth": "sw3f2a-2-0", "ifname": "eth0", "bridge": "sw3f2a-mgmt"}, ...],
     "binds": ["/dev/net/tun"], "cgroup": "stackwright-seed-3f2a9c-compute1"}

nspawn runs in the host's own cgroups (`cgroups.py` says why).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from stackwright.lab import cgroups
from stackwright.polling import poll

REBOOT_EXIT = 133
MAX_BOOTS = 1000  # reboots are bounded too
VETH_WAIT = 20.0  # seconds for nspawn to create a host's veths
STOP_WAIT = 30.0  # seconds for a clean poweroff before killing
FAST_FAIL = 3.0  # an nspawn that "reboots" sooner than this, 5 times in a row, is broken


@dataclass(frozen=True)
class Spec:
    name: str
    root: str
    nspawn_pid_file: str
    links: list[dict[str, str]]
    binds: list[str]
    cgroup: str = ""

    @classmethod
    def load(cls, path: Path) -> Spec:
        data: dict[str, Any] = json.loads(path.read_text())
        return cls(**data)


def nspawn_argv(spec: Spec) -> list[str]:
    argv = [
        "systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet",
        "-D", spec.root, "-M", spec.name,
        "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only",
    ]  # fmt: skip
    argv += [f"--bind={b}" for b in spec.binds]
    argv += [f"--network-veth-extra={lk['veth']}:{lk['ifname']}" for lk in spec.links]
    return argv


def log(msg: str) -> None:
    print(f"[supervisor {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wire_checksums(veth: str) -> None:
    """Packets leave the lab's bridge towards a host with complete checksums, as from a real NIC.

    A veth hands on TCP checksums left to offload (CHECKSUM_PARTIAL) and a host's userspace Open
    vSwitch reads its NIC through an AF_PACKET socket, which passes them on unfilled: TCP from this
    machine or another host to a floating IP (through br-ex on the network node) was dropped by the
    router while ping worked. Without TX checksum offload on the bridge's port the kernel fills the
    checksum in before the packet enters the host."""
    done = subprocess.run(["ethtool", "-K", veth, "tx", "off"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log(f"ethtool -K {veth} tx off failed: {done.stderr.strip()}")


def attach_links(spec: Spec, proc: subprocess.Popen[bytes]) -> bool:
    """Wait (bounded) for nspawn's veths, then put each on its bridge."""
    pending = list(spec.links)

    def attach() -> bool:
        """True once every veth is on its bridge, or nspawn is gone (nothing left to wait for)."""
        for lk in list(pending):
            if Path(f"/sys/class/net/{lk['veth']}").exists():
                # a bridge port needs no IPv6 of its own in the root namespace
                with contextlib.suppress(OSError):
                    Path(f"/proc/sys/net/ipv6/conf/{lk['veth']}/disable_ipv6").write_text("1")
                done = subprocess.run(
                    ["ip", "link", "set", lk["veth"], "master", lk["bridge"], "up"],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if done.returncode == 0:
                    wire_checksums(lk["veth"])
                    pending.remove(lk)
        return not pending or proc.poll() is not None

    poll(attach, within_s=VETH_WAIT, every_s=0.02)
    if pending:
        log(f"gave up after {VETH_WAIT:.0f} s waiting for veths {[lk['veth'] for lk in pending]}")
    return not pending


class Supervisor:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.stopping = False
        self.proc: subprocess.Popen[bytes] | None = None

    def on_term(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn: orderly poweroff of the host

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        signal.signal(signal.SIGINT, self.on_term)
        fast_fails = 0
        code = 0
        for boot in range(MAX_BOOTS):
            if self.stopping:
                break
            started = time.monotonic()
            log(f"boot {boot}: {' '.join(nspawn_argv(self.spec))}")
            own = cgroups.host_cgroups(self.spec.cgroup) if self.spec.cgroup else []
            self.proc = subprocess.Popen(
                nspawn_argv(self.spec), stdin=subprocess.DEVNULL, preexec_fn=partial(cgroups.enter, own)
            )
            Path(self.spec.nspawn_pid_file).write_text(f"{self.proc.pid}\n")
            attach_links(self.spec, self.proc)
            code = self.wait()
            log(f"nspawn exited {code}")
            if code != REBOOT_EXIT or self.stopping:
                break
            fast_fails = fast_fails + 1 if time.monotonic() - started < FAST_FAIL else 0
            if fast_fails >= 5:
                log("nspawn exits at once on every boot; giving up")
                break
        Path(self.spec.nspawn_pid_file).unlink(missing_ok=True)
        if self.spec.cgroup:
            busy = cgroups.remove(cgroups.host_cgroups(self.spec.cgroup))
            if busy:
                log(f"cgroups still in use, left for `lab down`: {', '.join(map(str, busy))}")
        return 0 if code in (0, REBOOT_EXIT) else 1

    def wait(self) -> int:
        assert self.proc is not None
        while True:
            try:
                return self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                if self.stopping:
                    return self.wait_stop()

    def wait_stop(self) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            log(f"host did not power off within {STOP_WAIT:.0f} s; killing it")
            kill_tree(self.proc.pid)
            return self.proc.wait(timeout=10)


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in task.read_text().split()]
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, parents before children."""
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 100_000:
        kids = children(todo.pop(0))
        out += kids
        todo += kids
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and everything below it (the host's init first: that ends its PID namespace)."""
    for p in [*descendants(pid), pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m stackwright.lab.supervisor SPEC.json", file=sys.stderr)
        return 2
    return Supervisor(Spec.load(Path(argv[0]))).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
