"""`lab up`: bridges, apt proxy, base image, one booted host per inventory node, SSH ready.

Idempotent: pieces already there (bridges, proxy, running hosts) are kept; stopped hosts start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from stackwright.engine.hostkeys import known_hosts_path, record
from stackwright.lab import hosts, network, processes, ssh
from stackwright.lab.base import BASE_BYTES, base_path, ensure_base
from stackwright.lab.layout import PROXY_PORT, STATE_ROOT, HostLayout, LabLayout
from stackwright.lab.lock import lab_lock
from stackwright.lab.machine import ensure_inotify_instances
from stackwright.lab.sources import lab_mirrors
from stackwright.lab.state import HostState, LabState
from stackwright.lab.system import HostCommandError, require_disk, require_root, require_tools

HOST_BYTES = 256 * 2**20  # an idle host's overlay and logs, with margin
SSH_WAIT = 90.0  # seconds for all hosts to boot to sshd

Progress = Callable[[str], None]


@dataclass
class UpResult:
    started: list[str]
    already_running: list[str]
    seconds: float


def up(layout: LabLayout, *, ensure_packages: bool, progress: Progress) -> UpResult:
    require_root()
    with lab_lock(layout):
        return _up(layout, ensure_packages=ensure_packages, progress=progress)


def _up(layout: LabLayout, *, ensure_packages: bool, progress: Progress) -> UpResult:
    t0 = time.monotonic()
    require_tools(ensure_packages)
    mirrors = lab_mirrors(layout.codename)
    state = LabState.load(layout.state_file)
    to_start = [h for h in layout.hosts if not _running(state, h)]
    needed = HOST_BYTES * len(to_start)
    if not base_path(layout.codename, mirrors).is_dir():
        needed += BASE_BYTES
    require_disk(STATE_ROOT, needed, f"`lab up` of {len(to_start)} host(s)")
    network.check_collisions(layout)

    base = ensure_base(layout.codename, mirrors, progress)
    state.inventory, state.base = str(layout.inventory_path), str(base)
    state.save(layout.state_file)

    progress("bridges and the forwarding DROP rule")
    network.ensure_networks(layout)

    if not processes.proxy_alive(state.proxy_pid, layout):
        progress("apt proxy")
        state.proxy_pid = processes.start_proxy(layout, mirrors)
        state.save(layout.state_file)
        if not processes.wait_listening(str(layout.proxy_address), PROXY_PORT):
            raise HostCommandError(
                f"the apt proxy did not listen on {layout.proxy_address}:{PROXY_PORT} within "
                f"{processes.PROXY_START_WAIT:.0f} s — see {layout.dir / 'proxy.log'}"
            )

    every_lab = {d for d in STATE_ROOT.glob("*/hosts/*") if d.is_dir()} | {h.dir for h in layout.hosts}
    raised = ensure_inotify_instances(len(every_lab))
    if raised:
        progress(f"fs.inotify.max_user_instances raised to {raised} (the hosts' systemd share root's)")

    pub = ssh.ensure_key(layout)
    ssh.write_client_config(layout)
    for host in to_start:
        progress(f"starting {host.name}")
        hosts.mount_root(host, base)
        hosts.personalize(host, layout, pub)
        state.hosts[host.name] = HostState(processes.start_supervisor(host))
        state.save(layout.state_file)

    progress(f"waiting for sshd on {', '.join(h.name for h in layout.hosts)}")
    wait_ready(layout, list(layout.hosts))
    return UpResult(
        started=[h.name for h in to_start],
        already_running=[h.name for h in layout.hosts if h not in to_start],
        seconds=time.monotonic() - t0,
    )


def _running(state: LabState, host: HostLayout) -> bool:
    hs = state.hosts.get(host.name)
    return hs is not None and processes.supervisor_alive(hs.supervisor_pid, host)


def wait_ready(layout: LabLayout, targets: list[HostLayout], timeout: float = SSH_WAIT) -> None:
    """Wait (bounded) for every host's sshd, then record all host keys: in the lab's known_hosts
    (plain `ssh NAME`) and in the one beside the inventory, which the engine trusts alone (the
    lab read the keys from the hosts' roots: nothing is trusted on first use)."""
    silent = ssh.wait_for_sshd({h.name: str(h.management) for h in targets}, timeout)
    if silent:
        details = "; ".join(f"{n}: {console_tail(layout.host(n))}" for n in silent)
        raise HostCommandError(f"no sshd answered within {timeout:.0f} s on {', '.join(silent)} — {details}")
    running = [h for h in layout.hosts if h.root.is_dir()]
    ssh.write_known_hosts(layout, [line for h in running for line in hosts.host_key_lines(h)])
    keys = {h: hosts.host_keys(h) for h in running}
    record(
        known_hosts_path(layout.inventory_path),
        {name: keys[h] for h in running if keys[h] for name in (str(h.management), h.name)},
    )


def console_tail(host: HostLayout, n: int = 5) -> str:
    log = host.dir / "console.log"
    if not log.is_file():
        return "no console log"
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return f"last console lines ({log}): " + " | ".join(lines[-n:])
