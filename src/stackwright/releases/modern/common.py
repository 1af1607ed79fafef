"""Every node: time, forwarding, base tools and its network configuration (the guide's node prep)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.netconfig import networkd_file, networkd_path
from stackwright.steps import File, NetworkConfig, Service, Step, Sysctl

if TYPE_CHECKING:
    from stackwright.releases.base import Release

CHRONY_CONF = "/etc/chrony/chrony.conf"
EXTERNAL_BRIDGE = "br-ex"
# The physical network name of the external network (ml2 flat_networks, the agent's bridge_mappings).
PHYSNET_EXTERNAL = "external"
DATA_BRIDGE = "br-phy"


def packages(host: HostContext) -> tuple[str, ...]:
    return ("chrony", "vlan", "bridge-utils")


def base(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    # The guide forwards on every node; only the network and compute nodes carry others' traffic
    # (a controller that forwards is a router between the management and external networks).
    forwards = host.is_network or host.is_compute
    steps: list[Step] = [Sysctl("net.ipv4.ip_forward", "1" if forwards else "0")]
    if host.ovs_datapath == "netdev":
        # Tunnels between userspace-OVS bridges only work with arp_ignore=1 (DESIGN §5).
        steps.append(Sysctl("net.ipv4.conf.all.arp_ignore", "1"))
    steps += [
        File(CHRONY_CONF, release.render("chrony.conf.j2", host, pw)),
        Service("chrony", restart_when=(CHRONY_CONF,)),
    ]
    return steps


def bridge_of(host: HostContext, network: str) -> str | None:
    """The OVS bridge that carries a network's address on this host, if any.

    The network node's external address moves to br-ex (the guide: the NIC joins br-ex
    and loses its IP). With userspace OVS the data address moves to br-phy, which holds
    the data NIC: tunnels only work when their endpoint sits on an OVS bridge (DESIGN §5).
    """
    if network == "external" and host.is_network:
        return EXTERNAL_BRIDGE
    if network == "data" and host.bridged_data:
        return DATA_BRIDGE
    return None


def networkd_files(host: HostContext) -> dict[str, str]:
    files: dict[str, str] = {}
    for interface in host.interfaces:
        bridge = bridge_of(host, interface.network)
        if bridge is None:
            files[networkd_path(interface.name)] = networkd_file(interface)
        else:
            files[networkd_path(interface.name)] = networkd_file(interface, address=False)
            files[networkd_path(bridge)] = networkd_file(replace(interface, name=bridge))
    return files


def network_config(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    files = tuple(File(path, content) for path, content in networkd_files(host).items())
    return [NetworkConfig(files=files, probe_address=host.management_ip)]
