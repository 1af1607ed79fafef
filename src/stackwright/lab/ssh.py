"""SSH to lab hosts from this machine: the lab key, root's client config, known_hosts, waits.

`lab up` writes `/root/.ssh/stackwright-lab/<lab-id>.conf` (one `Host name address` block per
host) and adds one line, `Include /root/.ssh/stackwright-lab/*.conf`, at the top of
`/root/.ssh/config` (lab/machine.py: the last `lab down` removes it), so `ssh compute1` works;
host keys are read from each host's own root once its sshd made them, so
`StrictHostKeyChecking yes` holds without trust-on-first-use.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from stackwright.atomic import atomic_write
from stackwright.engine.hostkeys import known_hosts_path, remove
from stackwright.lab.layout import LabLayout
from stackwright.lab.machine import ensure_ssh_include
from stackwright.lab.system import run
from stackwright.polling import poll


def ensure_key(layout: LabLayout) -> str:
    """The lab's private key path exists; returns the public key line."""
    key = layout.ssh_key
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stackwright-lab", "-f", str(key)])
    return key.with_suffix(".pub").read_text()


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, text, mode=mode)


def client_config(layout: LabLayout) -> str:
    out = [f"# stackwright lab {layout.lab_id} ({layout.inventory_path}); removed by `lab down`"]
    for h in layout.hosts:
        out += [
            f"Host {h.name} {h.management}",
            f"  HostName {h.management}",
            "  User root",
            f"  IdentityFile {layout.ssh_key}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {layout.known_hosts}",
            "  StrictHostKeyChecking yes",
            "  ConnectTimeout 5",
            "  LogLevel ERROR",
            "",
        ]
    return "\n".join(out)


def write_client_config(layout: LabLayout) -> None:
    _write(layout.ssh_config, client_config(layout))
    ensure_ssh_include()


def write_known_hosts(layout: LabLayout, lines: Sequence[str]) -> None:
    _write(layout.known_hosts, "\n".join(lines) + "\n", 0o644)


def remove_client_files(layout: LabLayout) -> None:
    """The lab's SSH client files, and its hosts' keys in the known_hosts beside the inventory."""
    layout.ssh_config.unlink(missing_ok=True)
    layout.known_hosts.unlink(missing_ok=True)
    names = [name for h in layout.hosts for name in (str(h.management), h.name)]
    remove(known_hosts_path(layout.inventory_path), names)


def ssh_argv(layout: LabLayout, host: str, command: Sequence[str] = (), *, tty: bool = False) -> list[str]:
    argv = ["ssh", "-F", str(layout.ssh_config), "-o", "BatchMode=yes"]
    if tty:
        argv.append("-t")
    return [*argv, host, *command]


def ssh_run(
    layout: LabLayout, host: str, command: str, *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a shell command in a host; never raises on the command's exit code."""
    return run(ssh_argv(layout, host, [command]), check=False, timeout=timeout)


def sshd_answers(address: str, timeout: float = 1.0) -> bool:
    """True if something on address:22 greets with an SSH banner."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_sshd(addresses: dict[str, str], timeout: float) -> list[str]:
    """Poll until every host's sshd answers; returns the names still silent at the deadline."""
    pending = dict(addresses)

    def silent() -> list[str]:
        for name, addr in list(pending.items()):
            if sshd_answers(addr, timeout=0.5):
                del pending[name]
        return sorted(pending)

    return poll(silent, within_s=timeout, every_s=0.1, done=lambda names: not names)
