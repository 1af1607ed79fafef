"""A lab host's root: an overlayfs over the cached base, plus the few files that make it itself.

/var/lib/stackwright/lab/<lab-id>/hosts/<name>/
    upper/ work/   overlayfs layers (everything the host writes lands in upper/)
    root/          the merged tree systemd-nspawn boots
    spec.json      what the supervisor needs; supervisor.log: its and the console's output
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from stackwright.context import Interface
from stackwright.lab.layout import HostLayout, LabLayout, Link
from stackwright.lab.system import run
from stackwright.netconfig import networkd_file


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def mounts_under(path: Path) -> list[Path]:
    """Mount points below `path`, deepest first (the order to unmount them in)."""
    prefix = f"{path}/"
    with open("/proc/self/mountinfo") as f:
        points = {line.split()[4] for line in f}
    return sorted((Path(p) for p in points if p.startswith(prefix)), key=lambda p: -len(p.parts))


def unmount_all_under(path: Path) -> None:
    """Every overlay of the lab, also those of hosts the inventory no longer lists."""
    for point in mounts_under(path):
        run(["umount", str(point)])


def mount_root(host: HostLayout, base: Path) -> None:
    if is_mounted(host.root):
        return
    for d in (host.upper, host.work, host.root):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={base},upperdir={host.upper},workdir={host.work}"
    run(["mount", "-t", "overlay", "overlay", "-o", opts, str(host.root)])


def unmount_root(host: HostLayout) -> None:
    if is_mounted(host.root):
        run(["umount", str(host.root)])


def remove_host_dir(host: HostLayout) -> None:
    unmount_root(host)
    shutil.rmtree(host.dir, ignore_errors=True)


def network_file(link: Link) -> str:
    """The very file `apply` writes for a plain interface (stackwright.netconfig), so a host
    whose addresses stay on its NICs shows no network diff after `lab up`."""
    interface = Interface(
        network=link.network,
        name=link.ifname,
        address=link.address.ip,
        prefixlen=link.address.network.prefixlen,
        gateway=None,
    )
    return networkd_file(interface)


def hosts_file(layout: LabLayout) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{h.management}\t{h.name}" for h in layout.hosts]
    return "\n".join(lines) + "\n"


def _write(root: Path, rel: str, content: str, mode: int = 0o644) -> None:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content)
    tmp.chmod(mode)
    tmp.rename(path)


def personalize(host: HostLayout, layout: LabLayout, authorized_key: str) -> None:
    """Hostname, /etc/hosts, machine-id, root's key, one .network per NIC, the apt proxy."""
    root = host.root
    _write(root, "/etc/hostname", host.name + "\n")
    _write(root, "/etc/hosts", hosts_file(layout))
    if not (root / "etc/machine-id").read_text().strip():
        _write(root, "/etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    _write(root, "/root/.ssh/authorized_keys", authorized_key, 0o600)
    netdir = root / "etc/systemd/network"
    for old in netdir.glob("10-*.network"):
        old.unlink()
    for link in host.links:
        # 10- sorts before nspawn's built-in 80-container-*.network, which would win otherwise
        _write(
            root,
            f"/etc/systemd/network/10-{link.ifname}.network",
            network_file(link),
        )
    _write(
        root,
        "/etc/apt/apt.conf.d/01stackwright-proxy",
        f'Acquire::http::Proxy "{layout.proxy_url}";\n',
    )


def host_key_lines(host: HostLayout) -> list[str]:
    """known_hosts lines for the host's keys, read from its root once sshd made them."""
    names = f"{host.name},{host.management}"
    out = []
    for pub in sorted((host.root / "etc/ssh").glob("ssh_host_*_key.pub")):
        fields = pub.read_text().split()
        if len(fields) >= 2:
            out.append(f"{names} {fields[0]} {fields[1]}")
    return out
