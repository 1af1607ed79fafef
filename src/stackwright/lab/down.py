"""`lab down`: stop every host and the proxy by PID, unmount and delete the overlays, delete the
bridges, veths and DROP table, and the lab's SSH client files. Safe to run twice."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

from stackwright.lab import cgroups, hosts, machine, network, processes, ssh
from stackwright.lab.layout import NSPAWN_PROPAGATE, LabLayout
from stackwright.lab.lock import lab_lock
from stackwright.lab.state import LabState
from stackwright.lab.system import require_root

# Killed processes leave their cgroup only once exited and reaped: right after the kill, a CI run's
# 8-host Epoxy lab still had every host's cgroup populated, and `remove` left them all behind.
CGROUP_EXIT_WAIT = 30.0


@dataclass
class DownResult:
    stopped: list[str] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # this machine's settings put back (last lab)


def down(layout: LabLayout, *, progress: Callable[[str], None]) -> DownResult:
    require_root()
    with lab_lock(layout):
        return _down(layout, progress=progress)


def _down(layout: LabLayout, *, progress: Callable[[str], None]) -> DownResult:
    state = LabState.load(layout.state_file)
    result = DownResult()
    progress("stopping hosts")
    pids: dict[int, str] = {}
    for host in layout.hosts:
        hs = state.hosts.get(host.name)
        if hs is not None and processes.supervisor_alive(hs.supervisor_pid, host):
            pids[hs.supervisor_pid] = f"{processes.SUPERVISOR_MARK} {host.dir / 'spec.json'}"
            result.stopped.append(host.name)
        elif (orphan := processes.nspawn_pid(host)) is not None:
            pids[orphan] = f"-D {host.root}"  # supervisor gone, host still up
            result.stopped.append(host.name)
    if processes.proxy_alive(state.proxy_pid, layout) and state.proxy_pid is not None:
        pids[state.proxy_pid] = processes.PROXY_MARK

    # The supervisors are told to stop first (so none takes its host's end for a reboot to
    # restart), then each host's whole cgroup is killed: down deletes the hosts right after, so a
    # clean poweroff would only wait for MariaDB, RabbitMQ and nova to shut down (49-55 s on a
    # converged lab) for nothing.
    def kill_hosts() -> None:
        for host in layout.hosts:
            cgroups.kill(cgroups.host_cgroups(host.cgroup))

    result.killed = processes.stop_pids(pids, then=kill_hosts)
    # Anything of this lab the state file did not know about (lost or stale state): our own
    # supervisors, hosts and proxy, recognised by their command lines.
    strays = {pid: cmd for pid, cmd in processes.lab_processes(layout) if pid not in pids}
    if strays:
        result.killed += processes.stop_pids(strays)

    for host in layout.hosts:
        cgroups.remove(cgroups.host_cgroups(host.cgroup), wait_s=CGROUP_EXIT_WAIT)

    progress("removing overlays")
    hosts.unmount_all_under(layout.dir)  # also hosts dropped from the inventory since `lab up`
    for host in layout.hosts:
        hosts.remove_host_dir(host)
        propagate = NSPAWN_PROPAGATE / host.name
        if propagate.is_dir() and not any(propagate.iterdir()):
            propagate.rmdir()  # nspawn leaves this empty directory behind

    progress("removing bridges, veths and the DROP rule")
    network.remove_networks(layout)
    ssh.remove_client_files(layout)
    shutil.rmtree(layout.dir, ignore_errors=True)
    if not machine.other_labs(layout.dir):
        result.restored = machine.restore()
    return result


def leftovers(layout: LabLayout) -> list[str]:
    """What `down` should have removed but is still there (empty when the lab is gone)."""
    out = [f"link {n}" for n in network.leftover_links(layout)]
    out += [f"mount {point}" for point in hosts.mounts_under(layout.dir)]
    out += [f"process {pid} ({cmd[:80]})" for pid, cmd in processes.lab_processes(layout)]
    out += [f"cgroup {p}" for h in layout.hosts for p in cgroups.host_cgroups(h.cgroup) if p.exists()]
    if network.table_exists(layout):
        out.append(f"nft table {network.table_name(layout)}")
    if layout.dir.exists():
        out.append(f"directory {layout.dir}")
    return out
