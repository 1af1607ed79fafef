"""Looking at and acting on running lab hosts: status, reboot, exec, ssh."""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from stackwright.lab import processes, ssh
from stackwright.lab.layout import HostLayout, LabLayout
from stackwright.lab.lock import lab_lock
from stackwright.lab.state import LabState
from stackwright.lab.system import HostCommandError, require_root
from stackwright.lab.up import console_tail, wait_ready
from stackwright.polling import poll
from stackwright.yamlsource import UserError

# Seconds for the old nspawn to exit after `systemctl reboot`: longer than systemd's own 90 s stop
# timeout, which a unit that ignores SIGTERM uses up before the host goes down.
REBOOT_DOWN_WAIT = 150.0
REBOOT_UP_WAIT = 90.0  # seconds for sshd to answer again


@dataclass
class HostStatus:
    name: str
    running: bool
    supervisor_pid: int | None
    nspawn_pid: int | None
    addresses: dict[str, str]  # ifname -> "10.10.10.53/24" as seen inside the host
    ssh_ok: bool
    system_state: str  # `systemctl is-system-running`, or "" if unknown


def status(layout: LabLayout) -> list[HostStatus]:
    require_root()
    state = LabState.load(layout.state_file)
    with ThreadPoolExecutor(max_workers=max(1, len(layout.hosts))) as pool:
        return list(pool.map(lambda h: _host_status(layout, state, h), layout.hosts))


def _host_status(layout: LabLayout, state: LabState, host: HostLayout) -> HostStatus:
    hs = state.hosts.get(host.name)
    sup = hs.supervisor_pid if hs else None
    running = processes.supervisor_alive(sup, host)
    nspawn = processes.nspawn_pid(host) if running else None
    addresses: dict[str, str] = {}
    ssh_ok, system_state = False, ""
    if running and ssh.sshd_answers(str(host.management)):
        try:
            proc = ssh.ssh_run(
                layout, host.name, "systemctl is-system-running; ip -j -4 addr show", timeout=15
            )
        except HostCommandError:  # no answer within the timeout: reported as SSH "no"
            proc = subprocess.CompletedProcess([], 255, "", "")
        if proc.returncode in (0, 1) and proc.stdout:
            first, _, rest = proc.stdout.partition("\n")
            ssh_ok, system_state = True, first.strip()
            addresses = inside_addresses(rest)
    return HostStatus(host.name, running, sup if running else None, nspawn, addresses, ssh_ok, system_state)


def inside_addresses(ip_json: str) -> dict[str, str]:
    """`ip -j -4 addr` output -> {"eth0": "10.10.10.53/24"} (loopback left out; several joined by ',')."""
    out: dict[str, str] = {}
    try:
        links = json.loads(ip_json or "[]")
    except json.JSONDecodeError:
        return out
    for link in links:
        if link.get("ifname") == "lo":
            continue
        addrs = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if "local" in a]
        if addrs:
            out[link["ifname"]] = ",".join(addrs)
    return out


def require_running(layout: LabLayout, name: str) -> HostLayout:
    host = layout.host(name)
    state = LabState.load(layout.state_file)
    hs = state.hosts.get(name)
    if hs is None or not processes.supervisor_alive(hs.supervisor_pid, host):
        raise UserError(
            f"host '{name}' is not running — start the lab with `stackwright lab up {layout.inventory_path}`"
        )
    return host


def reboot(layout: LabLayout, name: str) -> float:
    """Reboot a host from inside, wait for it to come back with the same addresses; seconds taken."""
    require_root()
    with lab_lock(layout):
        return _reboot(layout, name)


def _reboot(layout: LabLayout, name: str) -> float:
    host = require_running(layout, name)
    t0 = time.monotonic()
    old = processes.nspawn_pid(host)
    # The connection drops while the command runs; its exit code says nothing useful.
    with contextlib.suppress(HostCommandError):  # a hung session is fine: we watch nspawn below
        ssh.ssh_run(layout, name, "systemctl reboot", timeout=30)
    new = poll(
        lambda: processes.nspawn_pid(host),
        within_s=REBOOT_DOWN_WAIT,
        every_s=0.1,
        done=lambda p: p not in (None, old),
    )
    if new in (None, old):
        raise HostCommandError(
            f"{name} did not restart within {REBOOT_DOWN_WAIT:.0f} s of `systemctl reboot` — "
            + console_tail(host)
        )
    wait_ready(layout, [host], REBOOT_UP_WAIT)
    # The same addresses, on whichever interface holds them: a converged host keeps its data or
    # external address on the OVS bridge that holds the NIC (br-phy, br-ex).
    expected = sorted(str(lk.address) for lk in host.links)
    got = poll(
        lambda: inside_addresses(ssh.ssh_run(layout, name, "ip -j -4 addr show", timeout=15).stdout),
        within_s=30,
        every_s=0.2,
        done=lambda got: sorted(a for addrs in got.values() for a in addrs.split(",")) == expected,
    )
    if sorted(a for addrs in got.values() for a in addrs.split(",")) == expected:
        return time.monotonic() - t0
    raise HostCommandError(
        f"{name} came back with addresses {got}, expected {', '.join(expected)} (waited 30 s)"
    )


def exec_in(layout: LabLayout, name: str, command: Sequence[str], *, tty: bool = False) -> int:
    """Run `command` in a host over SSH with this terminal; returns its exit code."""
    require_root()
    require_running(layout, name)
    remote = [shlex.join(command)] if command else []
    return subprocess.call(ssh.ssh_argv(layout, name, remote, tty=tty))
