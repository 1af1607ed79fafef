"""Tunnels between network and compute nodes: local_ip present, peers reachable, ports on br-tun."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

from stackwright.checks.doctor.base import Context, Fix, HostData, Row, check, ok
from stackwright.checks.doctor.gather import OVS_AGENT_INI, peers
from stackwright.netconfig import NETWORKD_DIR
from stackwright.steps import HostPlan


@dataclass(frozen=True)
class TunnelPort:
    name: str
    kind: str
    ofport: str  # "-1" when OVS could not create it
    error: str
    flows: bool  # br-tun's table 0 takes packets arriving on it (the agent programmed it)


def tunnel_ports(data: HostData) -> dict[str, TunnelPort]:
    """{"10.20.20.53": TunnelPort("gre-0a141435", "gre", "5", "", True)}: br-tun's tunnel ports
    by remote_ip (`ovs-vsctl list Interface` as CSV, `ovs-ofctl dump-flows br-tun table=0`)."""
    values = data.values("tunnel")
    on_brtun = set(values.get("brtun", []))
    in_ports = {v.removeprefix("in_port=").strip('"') for v in values.get("flow0", [])}
    found: dict[str, TunnelPort] = {}
    for row in csv.reader(values.get("iface", [])):
        if len(row) < 5 or row[0] not in on_brtun:
            continue
        name, kind, ofport, error, options = row[:5]
        remote = re.search(r"remote_ip=([0-9.]+)", options)
        if remote:
            flows = ofport in in_ports or name in in_ports
            found[remote.group(1)] = TunnelPort(name, kind, ofport, error, flows)
    return found


def addresses(data: HostData) -> dict[str, str]:
    """{"10.20.20.53": "br-phy"} for every IPv4 address on the host."""
    found = {}
    for line in data.values("tunnel").get("addr", []):
        ifname, _, cidr = line.partition(" ")
        found[cidr.split("/")[0]] = ifname
    return found


def planned_interface(plan: HostPlan, address: str) -> str | None:
    """The interface the plan's networkd files put `address` on."""
    for path, file in plan.files().items():
        if path.startswith(NETWORKD_DIR) and re.search(
            rf"^Address={re.escape(address)}/", file.content, re.M
        ):
            name = re.search(r"^Name=(\S+)", file.content, re.M)
            return name.group(1) if name else None
    return None


def _names(ctx: Context) -> dict[str, str]:
    return {str(n.data): name for name, n in ctx.inventory.nodes.items() if n.data is not None}


@check("tunnel")
def tunnel(ctx: Context) -> list[Row]:
    """Instances get no DHCP lease and cannot reach each other across hosts, though every agent is
    `alive`: a GRE/VXLAN tunnel between two nodes is broken.

    On every network and compute node: the OVS agent's `local_ip` (openvswitch_agent.ini) must be
    an address of this host; every peer's data address must answer a ping sent from it; br-tun must
    hold a working tunnel port (`ovs-vsctl list-ports br-tun`, remote_ip, an ofport) towards every
    peer, with the agent's flow taking its packets in (`ovs-ofctl dump-flows br-tun`). Fix: put the
    address back (`networkctl reconfigure` of the interface the plan puts it on) or restart the OVS
    agent so it rebuilds its tunnel ports and flows (`--fix` does either)."""
    rows: list[Row] = []
    kind = ctx.inventory.tenant_network_type
    names = _names(ctx)
    for host in ctx.examined():
        if not any(ctx.inventory.nodes[host].has(r) for r in ("network", "compute")):
            continue
        if ctx.inventory.nodes[host].data is None:
            continue
        data = ctx.data[host]
        local = data.value("tunnel", "local_ip")
        have = addresses(data)
        problems: list[Row] = []
        if not local:
            problems.append(
                Row(
                    "tunnel", host, "fail", f"no local_ip in {OVS_AGENT_INI}", "`stackwright apply` writes it"
                )
            )
        elif local not in have:
            ifname = planned_interface(ctx.plan.hosts[host], local) if host in ctx.plan.hosts else None
            where = ifname or "its data interface"
            problems.append(
                Row(
                    "tunnel",
                    host,
                    "fail",
                    f"local_ip {local} of the OVS agent is not on this host (expected on {where}): "
                    "no tunnel can start or end here",
                    f"put the address back: `networkctl reconfigure {where}` (or `stackwright apply`)",
                    Fix(
                        host,
                        f"networkctl reconfigure {ifname}",
                        f"reconfigured {ifname} (its address {local} is back)",
                    )
                    if ifname
                    else None,
                )
            )
        reach = dict(v.split(" ", 1) for v in data.values("tunnel").get("peer", []) if " " in v)
        ports = tunnel_ports(data)
        for peer in peers(ctx.inventory, host):
            peer_name = names.get(peer, peer)
            if reach.get(peer) != "yes" and local in have:
                problems.append(
                    Row(
                        "tunnel",
                        host,
                        "fail",
                        f"{peer_name}'s data address {peer} does not answer from {local}",
                        f"check {peer_name}: its data address and interface up "
                        f"(`ip -br addr` there), the data network between them",
                    )
                )
            port = ports.get(peer)
            restart = Fix(
                host,
                "systemctl restart neutron-openvswitch-agent",
                "restarted neutron-openvswitch-agent (it rebuilds br-tun's tunnel ports and flows)",
            )
            if port is not None and (port.ofport in ("-1", "") or port.error):
                problems.append(
                    Row(
                        "tunnel",
                        host,
                        "fail",
                        f"tunnel port {port.name} towards {peer_name} exists but OVS could not create it: "
                        f"{port.error or 'ofport -1'}",
                        "see `ovs-vsctl list Interface " + port.name + "` and ovs-vswitchd.log; then restart "
                        "the OVS agent",
                        restart,
                    )
                )
            elif port is not None and not port.flows:
                problems.append(
                    Row(
                        "tunnel",
                        host,
                        "fail",
                        f"br-tun has no flow for packets arriving from {peer_name} on {port.name} "
                        f"(ovs-ofctl dump-flows br-tun table=0: no in_port={port.ofport}): they are dropped",
                        "restart the OVS agent, which reprograms br-tun: "
                        "`systemctl restart neutron-openvswitch-agent`",
                        restart,
                    )
                )
            if port is None:
                problems.append(
                    Row(
                        "tunnel",
                        host,
                        "fail",
                        f"no {kind} port on br-tun towards {peer_name} ({peer}): "
                        "traffic to its instances is lost",
                        "restart the OVS agent, which rebuilds its tunnels: "
                        "`systemctl restart neutron-openvswitch-agent`",
                        restart,
                    )
                )
        if problems:
            rows += problems
        else:
            count = len(peers(ctx.inventory, host))
            rows.append(ok("tunnel", host, f"local_ip {local}; {count} peers answer, {kind} ports on br-tun"))
    return rows
