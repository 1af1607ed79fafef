"""SSH to lab hosts from this machine: the lab key, root's client config, known_hosts, waits.

`lab up` writes `/root/.ssh/stackwright-lab/<lab-id>.conf` (one `Host name address` block per
host) and adds one line, `Include /root/.ssh/stackwright-lab/*.conf`, at the top of
`/root/.ssh/config`, so `ssh compute1` works; host keys are read from each host's own root once
its sshd made them, so `StrictHostKeyChecking yes` holds without trust-on-first-use.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from stackwright.lab.layout import SSH_DIR, LabLayout
from stackwright.lab.system import run

INCLUDE_LINE = f"Include {SSH_DIR}/stackwright-lab/*.conf"


def ensure_key(layout: LabLayout) -> str:
    """The lab's private key path exists; returns the public key line."""
    key = layout.ssh_key
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stackwright-lab", "-f", str(key)])
    return key.with_suffix(".pub").read_text()


def _atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.rename(path)


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
    _atomic_write(layout.ssh_config, client_config(layout))
    main = SSH_DIR / "config"
    text = main.read_text() if main.exists() else ""
    if INCLUDE_LINE not in text.splitlines():
        # Include must come before any Host block, or it only applies inside that block.
        _atomic_write(main, f"{INCLUDE_LINE}\n{text}")


def write_known_hosts(layout: LabLayout, lines: Sequence[str]) -> None:
    _atomic_write(layout.known_hosts, "\n".join(lines) + "\n", 0o644)


def remove_client_files(layout: LabLayout) -> None:
    layout.ssh_config.unlink(missing_ok=True)
    layout.known_hosts.unlink(missing_ok=True)


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
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name, addr in list(pending.items()):
            if sshd_answers(addr, timeout=0.5):
                del pending[name]
        if pending:
            time.sleep(0.1)
    return sorted(pending)
