"""Each lab host in cgroups of its own.

`systemd-nspawn --keep-unit` runs a host in its caller's cgroup, as `<cgroup>/payload`. Hosts
started from one cgroup (one shell; or, as on these machines, a machine whose init is not systemd
so everything sits in `/`) all shared `/payload`: every host's systemd managed the same unit
cgroups (`/payload/system.slice/ssh.service` held every host's sshd), they raced creating and
removing them (a unit failing at boot with `219/CGROUP`), and stopping a unit in one host could
signal the other hosts' processes of that unit. So the supervisor starts nspawn in a cgroup named
after the host, in each hierarchy systemd uses: the unified (cgroup2) one and, on a hybrid
machine, the named `systemd` v1 one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from stackwright.polling import poll

MAX_DEPTH = 64  # a host's systemd nests slices a few levels deep; bounded walk


def hierarchies(mountinfo: str, self_cgroup: str) -> list[Path]:
    """Where this process sits in each hierarchy systemd uses, as directories.

    `mountinfo`: /proc/self/mountinfo; `self_cgroup`: /proc/self/cgroup.
    """
    paths = {}
    for line in self_cgroup.splitlines():
        hid, controllers, path = [*line.split(":", 2), "", ""][:3]
        if hid == "0" or controllers == "name=systemd":
            paths["cgroup2" if hid == "0" else "systemd"] = path
    found: list[Path] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = fields[4]
        fstype, _, options = line.split(" - ", 1)[1].partition(" ")
        super_options = options.split(" ", 1)[-1].split(",")
        if fstype == "cgroup2" and "cgroup2" in paths:
            found.append(Path(mount_point + paths.pop("cgroup2")))
        elif fstype.startswith("cgroup") and "name=systemd" in super_options and "systemd" in paths:
            found.append(Path(mount_point + paths.pop("systemd")))
    return found


def host_cgroups(name: str) -> list[Path]:
    """The host's own cgroups (`name` is unique per lab and host), one per hierarchy."""
    here = hierarchies(Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text())
    return [path / name for path in here]


def enter(paths: list[Path]) -> None:
    """Move the calling process into `paths` (made if missing): call it in the child, before exec."""
    for path in paths:
        path.mkdir(exist_ok=True)
        (path / "cgroup.procs").write_text(f"{os.getpid()}\n")


def kill(paths: list[Path]) -> None:
    """SIGKILL every process in these cgroup trees at once (cgroup v2's `cgroup.kill`; a v1
    hierarchy has none and is skipped: the same processes sit in the v2 tree)."""
    for path in paths:
        with contextlib.suppress(OSError):
            (path / "cgroup.kill").write_text("1\n")


def _tree(root: Path) -> list[str]:
    """The cgroup directories under `root` (itself included), at most MAX_DEPTH levels down."""
    return [d for d, _, _ in os.walk(root) if d.count("/") - str(root).count("/") <= MAX_DEPTH]


def populated(path: Path) -> bool:
    """Whether a process is still in this cgroup tree (v2: `cgroup.events`; v1: any `cgroup.procs`)."""
    events = path / "cgroup.events"
    try:
        if events.exists():
            return "populated 1" in events.read_text().splitlines()
        return any(Path(d, "cgroup.procs").read_text().strip() for d in _tree(path))
    except FileNotFoundError:
        return False  # removed meanwhile


def remove(paths: list[Path], wait_s: float = 0.0) -> list[Path]:
    """Remove each cgroup tree once its processes are gone (waiting up to `wait_s` for killed ones
    to finish exiting); returns those still in use."""
    poll(lambda: not any(populated(p) for p in paths if p.is_dir()), within_s=wait_s, every_s=0.1)
    busy: list[Path] = []
    for root in paths:
        if not root.is_dir():
            continue
        for directory in sorted(_tree(root), key=lambda d: d.count("/"), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        if root.exists():
            busy.append(root)
    return busy
