"""Where a lab lives and what its pieces are called, derived from the inventory alone (no I/O).

>>> lay = LabLayout.of(inventory, Path("/src/examples/seed.yaml"))
>>> lay.lab_id, lay.bridges[0].name, lay.hosts[2].links[1].veth   # compute1's second NIC
('seed-3f2a9c', 'sw3f2a-mgmt', 'sw3f2a-8fafbd1')
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from stackwright.inventory import Inventory, Node
from stackwright.release_table import DEPLOYABLE
from stackwright.yamlsource import UserError

STATE_ROOT = Path("/var/lib/stackwright/lab")
CACHE_ROOT = Path("/var/cache/stackwright")
BASE_CACHE = CACHE_ROOT / "lab"
NSPAWN_PROPAGATE = Path("/run/systemd/nspawn/propagate")  # nspawn leaves an empty directory per machine
APT_CACHE = CACHE_ROOT / "apt"
SSH_DIR = Path("/root/.ssh")
PROXY_PORT = 3142

# OpenStack release -> Debian codename the lab boots (bookworm for zed, trixie for epoxy);
# render-only releases are absent.
CODENAMES: dict[str, str] = {name: t.debian for name, t in DEPLOYABLE.items() if t.debian}
_NET_SHORT = {"management": "mgmt", "data": "data", "external": "ext"}


@dataclass(frozen=True)
class Link:
    """One NIC of a host: its name inside, the root-side veth, the bridge, the address."""

    network: str
    ifname: str
    veth: str
    bridge: str
    address: IPv4Interface


def osd_files(name: str, node: Node, path: Path) -> tuple[str, ...]:
    """A lab storage node's OSD devices, which the lab makes as sparse files: no loop devices and no
    device nodes inside a host (the kernel here loads no modules, and bluestore takes a file whole)."""
    if not node.has("storage"):
        return ()
    devices = [d for d in node.osd_devices if d.startswith("/dev/")]
    if devices:
        raise UserError(
            f"nodes.{name}.osd_devices: {devices[0]} — the lab gives OSDs files, not block devices: "
            f"write a file path such as /srv/ceph/osd0.img in {path}"
        )
    return tuple(node.osd_devices)


def cgroup_name(host_dir: Path) -> str:
    """The name of a host's own cgroups (unique per lab and host; see lab/cgroups.py), from its
    directory (<lab dir>/hosts/<name>)."""
    return f"stackwright-{host_dir.parent.parent.name}-{host_dir.name}"


@dataclass(frozen=True)
class HostLayout:
    name: str
    index: int
    dir: Path
    links: tuple[Link, ...]
    # Files inside the host that stand in for its OSD devices (a storage node's osd_devices).
    osd_files: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def management(self) -> IPv4Address:
        return self.links[0].address.ip

    @property
    def cgroup(self) -> str:
        return cgroup_name(self.dir)


@dataclass(frozen=True)
class BridgeLayout:
    network: str
    name: str
    address: IPv4Interface


def veth_tag(node: str) -> str:
    """A node's part of its veths' names: from its name, not its place in `nodes:`, so a node
    added between running ones takes no running host's names (Linux allows 15 characters:
    sw + 4 + - + 6 + the NIC's number)."""
    return hashlib.sha1(node.encode()).hexdigest()[:6]


@dataclass(frozen=True)
class LabLayout:
    lab_id: str
    short: str
    inventory_path: Path
    codename: str
    dir: Path
    bridges: tuple[BridgeLayout, ...]
    hosts: tuple[HostLayout, ...]
    # The hosts that reach the mirror through the lab's proxy: with a package_cache only its node
    # (the others have no route, as on a real site; their apt goes through the cache); None: all.
    mirror_clients: tuple[IPv4Address, ...] | None = None

    @classmethod
    def of(cls, inv: Inventory, path: Path) -> LabLayout:
        codename = CODENAMES.get(inv.release)
        if codename is None:
            known = ", ".join(CODENAMES)
            raise UserError(
                f"release '{inv.release}' is render-only, the lab cannot install it — "
                f"use a release the lab boots ({known}) for `lab up`"
            )
        path = path.resolve()
        digest = hashlib.sha1(str(path).encode()).hexdigest()
        short = digest[:4]
        lab_id = f"{path.stem[:20]}-{digest[:6]}"
        lab_dir = STATE_ROOT / lab_id
        bridges = tuple(
            BridgeLayout(
                name,
                f"sw{short}-{_NET_SHORT[name]}",
                IPv4Interface(f"{net.lab_address}/{net.cidr.prefixlen}"),
            )
            for name, net in inv.networks.items()
        )
        by_net = {b.network: b for b in bridges}
        tags = {name: veth_tag(name) for name in inv.nodes}
        uses = Counter(tags.values())
        clash = sorted(name for name, tag in tags.items() if uses[tag] > 1)
        if clash:
            raise UserError(
                f"nodes {' and '.join(clash)}: their lab interface names would be the same — rename one"
            )
        hosts = []
        for index, (name, node) in enumerate(inv.nodes.items()):
            links = []
            for k, (net_name, addr) in enumerate(node.addresses().items()):
                prefix = by_net[net_name].address.network.prefixlen
                links.append(
                    Link(
                        network=net_name,
                        ifname=node.interface(net_name),
                        veth=f"sw{short}-{tags[name]}{k}",
                        bridge=by_net[net_name].name,
                        address=IPv4Interface(f"{addr}/{prefix}"),
                    )
                )
            hosts.append(
                HostLayout(name, index, lab_dir / "hosts" / name, tuple(links), osd_files(name, node, path))
            )
        layout = cls(lab_id, short, path, codename, lab_dir, bridges, tuple(hosts))
        cache = inv.package_cache
        if cache is None or cache.host not in inv.nodes:
            return layout
        if cache.upstream_proxy not in (layout.proxy_url, f"{layout.proxy_url}/"):
            raise UserError(
                f"package_cache: in the lab only the cache node reaches the mirror, through the lab's "
                f"apt proxy — set package_cache.upstream_proxy: {layout.proxy_url} in {path}"
            )
        return replace(layout, mirror_clients=(inv.nodes[cache.host].management,))

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def proxy_address(self) -> IPv4Address:
        return self.bridges[0].address.ip

    @property
    def proxy_url(self) -> str:
        return f"http://{self.proxy_address}:{PROXY_PORT}"

    def reaches_mirror(self, host: HostLayout) -> bool:
        return self.mirror_clients is None or host.management in self.mirror_clients

    @property
    def ssh_key(self) -> Path:
        return STATE_ROOT / "ssh" / "id_ed25519"

    @property
    def ssh_config(self) -> Path:
        return SSH_DIR / "stackwright-lab" / f"{self.lab_id}.conf"

    @property
    def known_hosts(self) -> Path:
        return SSH_DIR / "stackwright-lab" / f"{self.lab_id}.known_hosts"

    def host(self, name: str) -> HostLayout:
        for h in self.hosts:
            if h.name == name:
                return h
        raise UserError(
            f"no host '{name}' in {self.inventory_path} — hosts: {', '.join(h.name for h in self.hosts)}"
        )
