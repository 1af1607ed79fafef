"""The lab's networks in the root namespace: one bridge per inventory network, never routed onward.

Each bridge holds its network's lab address (gateway or first host). Forwarding is off on every
lab bridge and an nftables table drops anything routed into or out of one, so no packet from a lab
host (or a VM inside one) can leave this machine; hosts can only talk to each other and to the
bridge addresses.

    >>> table_script(layout)   # the nft table `inet stackwright_lab_3f2a`
"""

from __future__ import annotations

import json
from ipaddress import IPv4Interface, IPv4Network, ip_network
from pathlib import Path

from stackwright.lab.layout import BridgeLayout, LabLayout
from stackwright.lab.system import run
from stackwright.yamlsource import UserError


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def machine_addresses() -> list[tuple[str, IPv4Interface]]:
    """[("eth0", IPv4Interface("192.0.2.2/24")), ...] — every IPv4 address on this machine."""
    out: list[tuple[str, IPv4Interface]] = []
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
        for info in link.get("addr_info", []):
            out.append((link["ifname"], IPv4Interface(f"{info['local']}/{info['prefixlen']}")))
    return out


def machine_routes() -> list[tuple[str, IPv4Network]]:
    """[("eth0", IPv4Network("192.0.2.0/24")), ...] — IPv4 routes other than the default."""
    out: list[tuple[str, IPv4Network]] = []
    for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]"):
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("type") in ("local", "broadcast"):
            continue
        net = ip_network(dst, strict=False)
        if isinstance(net, IPv4Network):
            out.append((route.get("dev", "?"), net))
    return out


def check_collisions(layout: LabLayout) -> None:
    """Refuse a lab network that overlaps an address or route this machine already has."""
    ours = {b.name for b in layout.bridges}
    for bridge in layout.bridges:
        net = bridge.address.network
        for dev, iface in machine_addresses():
            if dev not in ours and iface.network.overlaps(net):
                raise UserError(
                    f"lab network {bridge.network} {net} collides with {iface} already on {dev} — "
                    f"change networks.{bridge.network}.cidr in {layout.inventory_path}, or run "
                    f"`stackwright lab down` for the lab that owns {dev}"
                )
        for dev, route in machine_routes():
            if dev not in ours and route.overlaps(net):
                raise UserError(
                    f"lab network {bridge.network} {net} collides with the route to {route} via {dev} — "
                    f"change networks.{bridge.network}.cidr in {layout.inventory_path}"
                )


def _sysctl(path: str, value: str) -> None:
    Path("/proc/sys", path).write_text(value)


def ensure_bridge(bridge: BridgeLayout) -> None:
    if not link_exists(bridge.name):
        run(["ip", "link", "add", bridge.name, "type", "bridge", "forward_delay", "0", "stp_state", "0"])
    _sysctl(f"net/ipv4/conf/{bridge.name}/forwarding", "0")
    _sysctl(f"net/ipv6/conf/{bridge.name}/disable_ipv6", "1")
    run(["ip", "addr", "replace", str(bridge.address), "dev", bridge.name])
    run(["ip", "link", "set", bridge.name, "up"])


def table_name(layout: LabLayout) -> str:
    return f"stackwright_lab_{layout.short}"


def table_script(layout: LabLayout) -> str:
    """nft script (re)creating the lab's DROP table for traffic routed through a lab bridge."""
    rules = []
    for b in layout.bridges:
        rules.append(f'    iifname "{b.name}" oifname != "{b.name}" counter drop')
        rules.append(f'    oifname "{b.name}" iifname != "{b.name}" counter drop')
    name = table_name(layout)
    return "\n".join(
        [
            f"table inet {name} {{}}",
            f"delete table inet {name}",
            f"table inet {name} {{",
            "  chain forward {",
            "    type filter hook forward priority -10; policy accept;",
            *rules,
            "  }",
            "}",
            "",
        ]
    )


def ensure_networks(layout: LabLayout) -> None:
    """Bridges up with their addresses, forwarding off, the DROP table in place."""
    # The DROP rule goes in first, so a bridge never exists without it.
    run(["nft", "-f", "-"], input=table_script(layout))
    for bridge in layout.bridges:
        ensure_bridge(bridge)


def attach(veth: str, bridge: str) -> None:
    """Put a host's root-side veth on its network's bridge (needed after every host boot)."""
    run(["ip", "link", "set", veth, "master", bridge, "up"])


def remove_networks(layout: LabLayout) -> None:
    """Delete veths left behind, the bridges and the DROP table; missing pieces are fine."""
    for host in layout.hosts:
        for link in host.links:
            if link_exists(link.veth):
                run(["ip", "link", "del", link.veth], check=False)
    for bridge in layout.bridges:
        if link_exists(bridge.name):
            run(["ip", "link", "del", bridge.name])
    if table_exists(layout):
        run(["nft", "delete", "table", "inet", table_name(layout)])


def table_exists(layout: LabLayout) -> bool:
    proc = run(["nft", "list", "table", "inet", table_name(layout)], check=False)
    return proc.returncode == 0


def leftover_links(layout: LabLayout) -> list[str]:
    names = [b.name for b in layout.bridges] + [lk.veth for h in layout.hosts for lk in h.links]
    return [n for n in names if link_exists(n)]
