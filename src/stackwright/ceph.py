"""The Ceph cluster an inventory's `storage` nodes form (pure): monitors, OSDs, pools, clients.

Every storage node runs a monitor, a manager and one OSD per `osd_devices` entry. OSD ids follow
the inventory: the storage nodes in their order, each node's devices in theirs (append new ones
at the end: an id never moves to another device). Identifiers that must stay the same from run to
run come from the monitors' key, which the passwords file keeps: the fsid, each OSD's uuid and the
libvirt secret's uuid (uuid5: a hash, which does not reveal the key).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from stackwright.inventory import Inventory

# The namespace of stackwright's uuid5 names (uuid5(NAMESPACE_URL, "stackwright:ceph")).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "stackwright:ceph")
MON_PORTS = (3300, 6789)  # msgr2, and msgr1 for older clients
DAEMON_PORTS = "6800-7300"  # OSDs and managers (Ceph's ms_bind_port_min/max)
CINDER_SECRET_NAME = "client.cinder secret"


@dataclass(frozen=True)
class Pool:
    name: str
    user: str  # the OpenStack service that writes it
    why: str


POOLS: tuple[Pool, ...] = (
    Pool("volumes", "cinder", "Cinder's volumes"),
    Pool("images", "glance", "Glance's images (volumes and servers are copy-on-write clones of them)"),
    Pool("vms", "cinder", "Nova's ephemeral disks with ceph.vm_disks: rbd (nova uses client.cinder)"),
)


@dataclass(frozen=True)
class Client:
    """A cephx user an OpenStack service connects as: its key's name in the passwords file, its
    capabilities (Ceph's rbd profiles: the monitors' map, and the pools it reads and writes)."""

    name: str
    key_name: str
    mon: str
    osd: str
    mgr: str


CLIENTS: tuple[Client, ...] = (
    Client(
        "client.glance",
        "ceph_glance_key",
        mon="profile rbd",
        osd="profile rbd pool=images",
        mgr="profile rbd pool=images",
    ),
    Client(
        "client.cinder",
        "ceph_cinder_key",
        mon="profile rbd",
        osd="profile rbd pool=volumes, profile rbd pool=vms, profile rbd-read-only pool=images",
        mgr="profile rbd pool=volumes, profile rbd pool=vms",
    ),
)


@dataclass(frozen=True)
class Osd:
    id: int
    host: str
    device: str
    uuid: str


@dataclass(frozen=True)
class Monitor:
    name: str
    address: str

    @property
    def addrvec(self) -> str:
        """The monitor's addresses as monmaptool and mon_host write them."""
        v2, v1 = MON_PORTS
        return f"[v2:{self.address}:{v2},v1:{self.address}:{v1}]"


@dataclass(frozen=True)
class CephCluster:
    fsid: str
    monitors: tuple[Monitor, ...]
    osds: tuple[Osd, ...]
    public_network: str
    libvirt_secret_uuid: str
    vm_disks: str

    @property
    def mon_host(self) -> str:
        return ",".join(m.addrvec for m in self.monitors)

    @property
    def first_monitor(self) -> str:
        """The storage node that creates the pools and users once its peers' OSDs are up."""
        return self.monitors[0].name

    @property
    def osd_hosts(self) -> int:
        return len({osd.host for osd in self.osds})  # == osd_hosts(inventory)

    @property
    def pool_size(self) -> int:
        """Replicas of every pool: 3 (Ceph's default) with three OSD hosts or more, one per host
        below that (a lab's single host: no redundancy, which `verify` names as expected)."""
        return min(3, self.osd_hosts)

    @property
    def pool_min_size(self) -> int:
        """Writes stop below this many replicas: 2 of 3 (Ceph's default), else every replica."""
        return 2 if self.pool_size == 3 else self.pool_size

    def osds_of(self, host: str) -> tuple[Osd, ...]:
        return tuple(osd for osd in self.osds if osd.host == host)


def osd_hosts(inventory: Inventory) -> int:
    """Storage nodes holding at least one OSD (every storage node: validation asks for a device)."""
    return sum(1 for name in inventory.names_with("storage") if inventory.nodes[name].osd_devices)


def osd_ids(inventory: Inventory) -> list[tuple[int, str, str]]:
    """(OSD id, storage node, device) in the inventory's order: the ids the OSDs get."""
    found: list[tuple[int, str, str]] = []
    for name in inventory.names_with("storage"):
        for device in inventory.nodes[name].osd_devices:
            found.append((len(found), name, device))
    return found


def has_storage(inventory: Inventory) -> bool:
    return bool(inventory.names_with("storage"))


def cluster(inventory: Inventory, pw: Mapping[str, str]) -> CephCluster | None:
    """The inventory's Ceph cluster, or None without storage nodes."""
    names = inventory.names_with("storage")
    if not names:
        return None
    fsid = uuid.uuid5(NAMESPACE, "fsid " + pw["ceph_mon_key"])
    osds = [
        Osd(ident, name, device, str(uuid.uuid5(fsid, f"osd {name} {device}")))
        for ident, name, device in osd_ids(inventory)
    ]
    return CephCluster(
        fsid=str(fsid),
        monitors=tuple(Monitor(name, str(inventory.nodes[name].management)) for name in names),
        osds=tuple(osds),
        public_network=str(inventory.networks.management.cidr),
        libvirt_secret_uuid=str(uuid.uuid5(fsid, CINDER_SECRET_NAME)),
        vm_disks=inventory.ceph.vm_disks,
    )
