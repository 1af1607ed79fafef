"""The cached debootstrap base image every lab host's overlay sits on.

Built once per (codename, mirror, package list, recipe version) under
`/var/cache/stackwright/lab/base-<codename>-<key>/`, outside any checkout: into a temporary
directory first, then renamed, so a half-built base is never used. A fresh machine builds it in
about a minute (~320 MB); a warm one reuses it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from stackwright.atomic import atomic_write_beneath
from stackwright.lab.layout import BASE_CACHE
from stackwright.lab.sources import Mirrors
from stackwright.lab.system import HostCommandError, require_disk, run

BASE_PACKAGES: tuple[str, ...] = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "python3",
    "iputils-ping", "procps", "ca-certificates", "netbase",
)  # fmt: skip
RECIPE_VERSION = 2  # bump when `_customize` changes, so old bases are not reused
BASE_BYTES = 600 * 2**20  # debootstrap's download plus the unpacked tree (~320 MB) with margin
BUILD_TIMEOUT = 900.0

# Units masked in every host: systemd-remount-fs cannot work in a container (it would leave the
# system "degraded"); the apt timers would take the dpkg lock at random times during `apply`.
MASKED_UNITS = ("systemd-remount-fs.service", "apt-daily.timer", "apt-daily-upgrade.timer")

SSH_KEYGEN_DROPIN = """\
# stackwright lab: each host makes its own host keys on first boot
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""

SSHD_CONFIG = """\
# stackwright lab
PermitRootLogin prohibit-password
UseDNS no
"""

APT_CONFIG = """\
// stackwright lab: small, quick indexes
Acquire::Languages "none";
Acquire::Retries "3";
"""


def base_key(codename: str, mirrors: Mirrors) -> str:
    text = "\n".join([codename, mirrors.archive.uri, ",".join(BASE_PACKAGES), str(RECIPE_VERSION)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def base_path(codename: str, mirrors: Mirrors) -> Path:
    return BASE_CACHE / f"base-{codename}-{base_key(codename, mirrors)}"


def ensure_base(codename: str, mirrors: Mirrors, progress: Callable[[str], None]) -> Path:
    """The base for `codename`, built now if the cache does not hold it yet."""
    target = base_path(codename, mirrors)
    if target.is_dir():
        return target
    BASE_CACHE.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds()
    require_disk(BASE_CACHE, BASE_BYTES, "building the lab's base image (first run only)")
    tmp = BASE_CACHE / f".build-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        build_into(tmp, codename, mirrors, progress)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def build_into(directory: Path, codename: str, mirrors: Mirrors, progress: Callable[[str], None]) -> None:
    """debootstrap + the lab's settings into `directory` (which must not exist yet)."""
    _debootstrap(codename, mirrors, directory, progress)
    progress("configuring the base image")
    _customize(directory, mirrors)


def _remove_stale_builds() -> None:
    for old in BASE_CACHE.glob(".build-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            shutil.rmtree(old, ignore_errors=True)


def _debootstrap(codename: str, mirrors: Mirrors, tmp: Path, progress: Callable[[str], None]) -> None:
    argv = [
        "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
        "--components=main", codename, str(tmp), mirrors.archive.uri,
    ]  # fmt: skip
    progress(f"debootstrap {codename} (first run only, about a minute)")
    tail: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if line:
                tail = [*tail[-9:], line]
                if line.startswith("I: "):
                    progress(f"debootstrap: {line[3:]}")
        try:
            code = proc.wait(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise HostCommandError(f"debootstrap still running after {BUILD_TIMEOUT:.0f} s") from None
    if code != 0:
        raise HostCommandError(f"debootstrap exited {code}: " + " | ".join(tail[-4:]))


def _customize(root: Path, mirrors: Mirrors) -> None:
    """What every host shares: networkd on, sshd keys made at first boot, the mirror's sources."""
    run(["systemctl", f"--root={root}", "enable", "systemd-networkd.service"])
    run(["systemctl", f"--root={root}", "mask", *MASKED_UNITS])
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    atomic_write_beneath(
        root, "/etc/systemd/system/ssh.service.d/stackwright-keygen.conf", SSH_KEYGEN_DROPIN, mode=0o644
    )
    atomic_write_beneath(root, "/etc/ssh/sshd_config.d/stackwright-lab.conf", SSHD_CONFIG, mode=0o644)
    atomic_write_beneath(root, "/etc/apt/sources.list", mirrors.sources_list(), mode=0o644)
    atomic_write_beneath(root, "/etc/apt/apt.conf.d/20stackwright-lab", APT_CONFIG, mode=0o644)
    atomic_write_beneath(
        root, "/etc/resolv.conf", "# stackwright lab: no DNS; lab names are in /etc/hosts\n", mode=0o644
    )
    atomic_write_beneath(root, "/etc/machine-id", "", mode=0o644)  # each host gets its own
    (root / "etc/hostname").unlink(missing_ok=True)
    for leftover in (root / "var/cache/apt/archives").glob("*.deb"):
        leftover.unlink()
