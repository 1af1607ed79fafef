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

from stackwright.atomic import atomic_write_beneath, read_beneath, remove_beneath, sparse_file_beneath
from stackwright.context import Interface
from stackwright.lab.layout import HostLayout, LabLayout, Link
from stackwright.lab.system import HostCommandError, run
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


NETWORK_WRITTEN = "network-written"  # in the host's directory: its first start wrote its .network files


def personalize(host: HostLayout, layout: LabLayout, authorized_key: str) -> None:
    """Hostname, /etc/hosts, machine-id, root's key, one .network per NIC, the apt proxy (for the
    hosts that reach the mirror).

    The root may have run before (a restarted host): whatever it holds now was written by a root
    inside it, so no path below it is followed through a symbolic link (atomic_write_beneath).
    Its network files are written on its first start only: a host that restarts (after a power
    cut) keeps the network configuration it had, as a server keeps what is on its disk — e.g. the
    data address that `apply` moved onto an OVS bridge."""
    first_start = not (host.dir / NETWORK_WRITTEN).exists()
    try:
        _personalize(host.root, host, layout, authorized_key, network=first_start)
        (host.dir / NETWORK_WRITTEN).touch()
    except OSError as exc:
        raise HostCommandError(
            f"{host.name}: cannot write into its root ({exc}) — remove the host's overlay with "
            f"`stackwright lab down {layout.inventory_path}`, then run lab up again"
        ) from None


def _personalize(
    root: Path, host: HostLayout, layout: LabLayout, authorized_key: str, *, network: bool = True
) -> None:
    atomic_write_beneath(root, "/etc/hostname", host.name + "\n", mode=0o644)
    atomic_write_beneath(root, "/etc/hosts", hosts_file(layout), mode=0o644)
    if not (read_beneath(root, "/etc/machine-id") or b"").strip():
        atomic_write_beneath(root, "/etc/machine-id", uuid.uuid4().hex + "\n", mode=0o444)
    atomic_write_beneath(root, "/root/.ssh/authorized_keys", authorized_key, mode=0o600, dir_mode=0o700)
    if network:
        remove_beneath(root, "/etc/systemd/network", "10-*.network")
        for link in host.links:
            # 10- sorts before nspawn's built-in 80-container-*.network, which would win otherwise
            atomic_write_beneath(
                root, f"/etc/systemd/network/10-{link.ifname}.network", network_file(link), mode=0o644
            )
    for path in host.osd_files:
        # sparse: the host's disk holds only what the OSD writes
        sparse_file_beneath(root, path, OSD_FILE_BYTES)
    if layout.reaches_mirror(host):
        atomic_write_beneath(
            root,
            "/etc/apt/apt.conf.d/01stackwright-proxy",
            f'Acquire::http::Proxy "{layout.proxy_url}";\n',
            mode=0o644,
        )
    else:  # no route to the mirror: its apt goes through the inventory's package cache
        remove_beneath(root, "/etc/apt/apt.conf.d", "01stackwright-proxy")


OSD_FILE_BYTES = 10 * 2**30  # a lab OSD's capacity; sparse, so its disk use is what Ceph writes
KEY_TYPES = ("ed25519", "ecdsa", "rsa")  # the keys sshd makes at first boot, ed25519 first


def host_keys(host: HostLayout) -> list[tuple[str, str]]:
    """(key type, base64) of the host's keys, read from its root once sshd made them (no link
    followed: a key file pointing elsewhere is not the host's key)."""
    keys = []
    for kind in KEY_TYPES:
        try:
            text = read_beneath(host.root, f"/etc/ssh/ssh_host_{kind}_key.pub")
        except OSError:
            continue
        fields = (text or b"").decode(errors="replace").split()
        if len(fields) >= 2:
            keys.append((fields[0], fields[1]))
    return keys


def host_key_lines(host: HostLayout) -> list[str]:
    """known_hosts lines for the host's keys (the lab's own file, for plain `ssh NAME`)."""
    return [f"{host.name},{host.management} {kind} {blob}" for kind, blob in host_keys(host)]
