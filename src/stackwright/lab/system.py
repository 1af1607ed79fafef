"""Running commands on this machine, and the preconditions the lab needs (root, tools, disk).

>>> run(["ip", "-j", "addr"]).stdout
'[{"ifindex":1,...}]'
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from stackwright.yamlsource import UserError

# tool -> Debian package that ships it
TOOLS: dict[str, str] = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "nft": "nftables",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
    "ethtool": "ethtool",
}
LAB_PACKAGES: tuple[str, ...] = tuple(sorted(set(TOOLS.values()) - {"mount"}))


class HostCommandError(Exception):
    """A command on this machine or in a lab host failed (exit code 1 for the CLI)."""


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` and capture its output; on failure raise HostCommandError with stderr's tail."""
    try:
        proc = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise HostCommandError(f"`{' '.join(argv)}` still running after {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise HostCommandError(f"`{' '.join(argv)}` exited {proc.returncode}: " + " | ".join(tail))
    return proc


def require_root() -> None:
    if os.geteuid() != 0:
        raise UserError("the lab needs root (it makes bridges, mounts and containers) — run it with sudo")


def missing_tools(tools: Sequence[str] = tuple(TOOLS)) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def require_tools(ensure_packages: bool) -> None:
    """Fail with the package to install, or install it with apt-get when asked to."""
    missing = missing_tools()
    if not missing:
        return
    packages = sorted({TOOLS[t] for t in missing})
    if not ensure_packages:
        raise UserError(
            f"{', '.join(missing)} not found — install {' '.join(packages)} "
            "(apt-get install), or pass --ensure-packages"
        )
    install_packages(packages)
    still = missing_tools()
    if still:
        raise UserError(f"{', '.join(still)} still missing after apt-get install — check apt's output")


def install_packages(packages: Sequence[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise UserError(f"`{' '.join(argv)}` failed: {tail} — fix apt on this machine, then retry")


def free_bytes(path: Path) -> int:
    """Free space on the file system that holds `path` (or its nearest existing parent)."""
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def require_disk(path: Path, needed: int, what: str) -> None:
    free = free_bytes(path)
    if free < needed:
        raise UserError(
            f"{what} needs {needed / 2**30:.1f} GB free under {path}, only "
            f"{free / 2**30:.1f} GB left — free some space there"
        )


def pid_alive(pid: int, marker: str) -> bool:
    """True if `pid` runs and its command line contains `marker` (guards against PID reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline
