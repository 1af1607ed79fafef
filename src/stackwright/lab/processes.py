"""The background processes a lab runs on this machine: one supervisor per host, one apt proxy.

Each is started here in its own session, its PID recorded in the lab's state, and stopped by that
PID only after checking its command line still names what we started (no PID reuse accidents).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from stackwright.lab.layout import APT_CACHE, PROXY_PORT, HostLayout, LabLayout
from stackwright.lab.sources import Mirrors
from stackwright.lab.supervisor import kill_tree
from stackwright.lab.system import pid_alive
from stackwright.polling import poll

SUPERVISOR_MARK = "stackwright.lab.supervisor"
PROXY_MARK = "stackwright.lab.proxy"
PROXY_START_WAIT = 10.0
STOP_WAIT = 45.0
# OVS netdev ports and libvirt taps need /dev/net/tun inside hosts; /dev/kvm is passed as a real
# server would have it (whether KVM guests can run here is for nova's checks to find out).
DEVICE_BINDS = ("/dev/net/tun", "/dev/kvm")


def _spawn(argv: list[str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    return proc.pid


def host_spec(host: HostLayout) -> dict[str, object]:
    return {
        "name": host.name,
        "root": str(host.root),
        "nspawn_pid_file": str(host.dir / "nspawn.pid"),
        "links": [{"veth": lk.veth, "ifname": lk.ifname, "bridge": lk.bridge} for lk in host.links],
        "binds": [d for d in DEVICE_BINDS if Path(d).exists()],
        "cgroup": host.cgroup,
    }


def start_supervisor(host: HostLayout) -> int:
    spec = host.dir / "spec.json"
    spec.write_text(json.dumps(host_spec(host), indent=2) + "\n")
    return _spawn([sys.executable, "-m", SUPERVISOR_MARK, str(spec)], host.dir / "console.log")


def supervisor_alive(pid: int | None, host: HostLayout) -> bool:
    return pid is not None and pid_alive(pid, f"{SUPERVISOR_MARK} {host.dir / 'spec.json'}")


def nspawn_pid(host: HostLayout) -> int | None:
    """PID of the host's current systemd-nspawn (it changes on every reboot), if running."""
    try:
        pid = int((host.dir / "nspawn.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid, f"-D {host.root}") else None


def proxy_alive(pid: int | None, layout: LabLayout) -> bool:
    return pid is not None and pid_alive(pid, f"{PROXY_MARK} --listen {layout.proxy_address}:{PROXY_PORT}")


def start_proxy(layout: LabLayout, mirrors: Mirrors) -> int:
    argv = [
        sys.executable, "-m", PROXY_MARK, "--listen", f"{layout.proxy_address}:{PROXY_PORT}",
        "--cache", str(APT_CACHE),
    ]  # fmt: skip
    for origin in sorted({src.origin for src in mirrors.sources}):
        argv += ["--upstream", origin]
    for address in layout.mirror_clients or ():
        argv += ["--client", str(address)]
    return _spawn(argv, layout.dir / "proxy.log")


def wait_listening(address: str, port: int, timeout: float = PROXY_START_WAIT) -> bool:
    def listening() -> bool:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return True
        except OSError:
            return False

    return poll(listening, within_s=timeout, every_s=0.05)


def stop_pids(
    pids: dict[int, str], timeout: float = STOP_WAIT, then: Callable[[], None] | None = None
) -> list[int]:
    """SIGTERM each live PID (value: its command-line marker), call `then`, wait, SIGKILL the rest
    with their descendants. Returns the PIDs that had to be killed."""
    live = {pid: mark for pid, mark in pids.items() if pid_alive(pid, mark)}
    for pid in live:
        os.kill(pid, signal.SIGTERM)
    if then is not None:
        then()
    poll(lambda: not any(pid_alive(p, m) for p, m in live.items()), within_s=timeout, every_s=0.1)
    killed = []
    for pid, mark in live.items():
        if pid_alive(pid, mark):
            killed.append(pid)
            kill_tree(pid)
    return killed


def lab_processes(layout: LabLayout) -> list[tuple[int, str]]:
    """Every process on this machine whose command line belongs to this lab (read-only scan)."""
    marks = (str(layout.dir), f"{PROXY_MARK} --listen {layout.proxy_address}:{PROXY_PORT}")
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmd for m in marks):
            out.append((int(entry.name), cmd.strip()))
    return out
