"""The cached debootstrap base image every lab host's overlay sits on.

Built once per (codename, mirror, package list, recipe version) under
`/var/cache/stackwright/lab/base-<codename>-<key>/`, outside any checkout: into a temporary
directory first, then renamed, so a half-built base is never used. A fresh machine builds it in
about two minutes (~320 MB); a warm one reuses it.

debootstrap takes the release suite alone; the base is then brought up to date from the
machine's `<codename>-updates` and `<codename>-security` sources, as a current cloud image or
installer leaves a new server. Without it every lab host's first `apply` upgraded ~20 base
packages itself (python3's standard library recompiled, every CA certificate rehashed: ~10
CPU-s a host, docs/benchmarks.md), work a fresh server does not have.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from stackwright.atomic import atomic_write_beneath
from stackwright.lab.layout import BASE_CACHE, NSPAWN_PROPAGATE
from stackwright.lab.sources import Mirrors
from stackwright.lab.system import HostCommandError, require_disk, run

BASE_PACKAGES: tuple[str, ...] = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "python3",
    "iputils-ping", "procps", "ca-certificates", "netbase",
)  # fmt: skip
RECIPE_VERSION = 3  # bump when the recipe (`build_into`) changes, so old bases are not reused
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
    progress("bringing the base image up to date")
    _upgrade(directory, mirrors)
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


# Run inside the new tree by systemd-nspawn (this machine's network, no boot, in the caller's
# cgroup, not registered with machined): no service starts, since no systemd runs in there. The
# package lists are left out of the base, as in a cloud image; each host's node preparation
# fetches its own.
_UPGRADE = """set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -q update
apt-get -q -y -o Dpkg::Use-Pty=0 full-upgrade
apt-get clean
find /var/lib/apt/lists -maxdepth 1 -type f -name "*_*" -delete
"""


def _upgrade(root: Path, mirrors: Mirrors) -> None:
    atomic_write_beneath(root, "/etc/apt/sources.list", mirrors.sources_list(direct=True), mode=0o644)
    name = f"stackwright-base-build-{os.getpid()}"
    argv = [
        "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--link-journal=no",
        "--timezone=off", "--resolv-conf=copy-host", "--pipe", f"--machine={name}",
        "-D", str(root), "/bin/sh", "-c", _UPGRADE,
    ]  # fmt: skip
    try:
        run(argv, timeout=BUILD_TIMEOUT)
    finally:
        with contextlib.suppress(OSError):
            (NSPAWN_PROPAGATE / name).rmdir()  # nspawn leaves this empty directory behind


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
