"""Each node's inbound firewall, from its roles (pure): what it serves, and to whom.

One nftables table, `inet stackwright`, owned by us: an input chain that drops by default and
accepts established/related traffic, loopback, ICMP, and the openings below. Neutron's own rules
(iptables-nft tables, OVS flows) live in tables of their own; a packet must pass every base chain
on its hook, so ours only ever removes inbound traffic to the host itself. It has no forward
chain: instance traffic (bridged by OVS, routed in Neutron's namespaces, each with its own
netfilter) never meets it.

Sources are networks or single addresses from the inventory: the management network for
SSH, the databases and the message queue; data addresses of the tunnel peers for GRE/VXLAN;
the controller for VNC; the compute peers for libvirt and QEMU's migration ports. The public
API ports are open to anyone on the controller's external address (clients come through its
gateway) and to the management network on every address.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from stackwright.ceph import DAEMON_PORTS, MON_PORTS
from stackwright.context import PACKAGE_CACHE_PORT, HostContext
from stackwright.dashboard import has_dashboard
from stackwright.inventory import Inventory

TABLE = "stackwright"
# What QEMU uses for live migration and block migration's NBD streams (libvirt's qemu.conf
# migration_port_min/max defaults) and for guests' VNC servers (5900 + display).
QEMU_MIGRATION = "49152-49215"
VNC = "5900-5999"
VXLAN_PORT = "4789"
# (port, what listens) open to API clients on the controller
PUBLIC_APIS: tuple[tuple[str, str], ...] = (
    ("5000", "Keystone"),
    ("8774", "Nova API"),
    ("8778", "Placement"),
    ("9292", "Glance"),
    ("9696", "Neutron server"),
    ("6080", "noVNC console proxy"),
)
CINDER_API = ("8776", "Cinder API")  # with storage nodes
HORIZON = ("80", "the dashboard (Apache)")
# What the TLS front (HAProxy) serves on the external address besides the APIs' own ports.
FRONT_DASHBOARD: tuple[tuple[str, str], ...] = (
    ("443", "the dashboard over HTTPS"),
    ("80", "its redirect to HTTPS"),
)


@dataclass(frozen=True)
class Opening:
    """Inbound `proto` traffic to `ports` from `sources` (None: any source) — to `to` when set."""

    proto: Literal["tcp", "udp", "gre"]
    ports: str  # "22", "5900-5999"; "" for GRE
    sources: tuple[IPv4Network, ...] | None
    why: str
    to: IPv4Address | None = None
    nodes: tuple[str, ...] = ()  # the other nodes whose addresses `sources` are


def _net(address: str | IPv4Address) -> IPv4Network:
    return IPv4Network(f"{address}/32")


def ssh_sources(host: HostContext) -> tuple[IPv4Network, ...]:
    """Who may SSH to the node: the management network and the inventory's `firewall.ssh_from`."""
    extra = tuple(host.inventory.firewall.ssh_from)
    return tuple(dict.fromkeys((host.management_network, *extra)))


def _others(inventory: Inventory, roles: tuple[str, ...], exclude: str, network: str) -> tuple[str, ...]:
    """The other nodes with any of `roles` that have an address on `network`."""
    names = [n for role in roles for n in inventory.names_with(role)]
    return tuple(
        n for n in dict.fromkeys(names) if n != exclude and network in inventory.nodes[n].addresses()
    )


def _from(inventory: Inventory, nodes: tuple[str, ...], network: str) -> tuple[IPv4Network, ...]:
    return tuple(dict.fromkeys(_net(inventory.nodes[n].addresses()[network]) for n in nodes))


def public_apis(inventory: Inventory) -> tuple[tuple[str, str], ...]:
    return PUBLIC_APIS + ((CINDER_API,) if inventory.names_with("storage") else ())


def openings(host: HostContext) -> list[Opening]:
    inventory = host.inventory
    management = (host.management_network,)
    found = [Opening("tcp", str(host.node.ssh.port), ssh_sources(host), "SSH (apply, doctor, nova's resize)")]
    if host.is_controller:
        # With tls.internal the front serves the APIs on management and Apache only loopback.
        horizon = (HORIZON,) if has_dashboard(inventory) and not host.internal_tls else ()
        apis = [*public_apis(inventory), *horizon]
        ports = ",".join(port for port, _ in apis)
        names = ", ".join(name for _, name in apis)
        how = "over HTTPS from the TLS front" if host.internal_tls else "the management network"
        found.append(Opening("tcp", ports, management, f"{names} ({how})"))
        if host.node.external is not None and host.tls_front:
            front = [*public_apis(inventory), *(FRONT_DASHBOARD if has_dashboard(inventory) else ())]
            found.append(
                Opening(
                    "tcp",
                    ",".join(port for port, _ in front),
                    None,
                    ", ".join(name for _, name in front) + " (anyone, over HTTPS from the TLS front)",
                    to=host.node.external,
                )
            )
        elif host.node.external is not None:
            found.append(Opening("tcp", ports, None, f"{names} (anyone, on the external address)",
                                 to=host.node.external))  # fmt: skip
        network_nodes = _others(inventory, ("network",), host.name, "management")
        if network_nodes:
            why = "Nova metadata API (the network nodes' metadata agents)"
            found.append(
                Opening(
                    "tcp", "8775", _from(inventory, network_nodes, "management"), why, nodes=network_nodes
                )
            )
        found += [
            Opening("tcp", "3306", management, "MariaDB"),
            Opening("tcp", "5672", management, "RabbitMQ (AMQP)"),
            Opening("tcp", "11211", management, "memcached (Keystone tokens, dashboard sessions)"),
            Opening("udp", "123", management, "NTP: the other nodes follow the controller's clock"),
        ]
    if host.is_package_cache:
        # The whole management network, as the controller's services: a node joining with
        # `apply --limit newnode` fetches its packages before any other node's firewall changes.
        found.append(
            Opening(
                "tcp",
                str(PACKAGE_CACHE_PORT),
                management,
                "apt-cacher-ng: the nodes' packages (package_cache)",
            )
        )
    if host.is_storage:
        # Every Ceph client and peer is on the management network (the cluster's public network):
        # a compute node joining later reaches the cluster before this node's next apply.
        mon_ports = ",".join(str(port) for port in MON_PORTS)
        found += [
            Opening("tcp", mon_ports, management, "Ceph monitor (msgr2 and v1)"),
            Opening("tcp", DAEMON_PORTS, management, "Ceph OSDs and manager"),
        ]
    tunnel_peers = _others(inventory, ("network", "compute"), host.name, "data")
    if (host.is_network or host.is_compute) and tunnel_peers:
        why = "tunnels from the other nodes' data addresses"
        sources = _from(inventory, tunnel_peers, "data")
        if host.tenant_network_type == "gre":
            found.append(Opening("gre", "", sources, f"GRE {why}", nodes=tunnel_peers))
        else:
            found.append(Opening("udp", VXLAN_PORT, sources, f"VXLAN {why}", nodes=tunnel_peers))
    if host.is_compute:
        controller = _others(inventory, ("controller",), host.name, "management")
        # the proxy runs on the controller: this node itself when it is the controller too
        sources = _from(inventory, controller, "management") or (_net(host.management_ip),)
        found.append(
            Opening(
                "tcp", VNC, sources, "guests' VNC consoles (the controller's noVNC proxy)", nodes=controller
            )
        )
        computes = _others(inventory, ("compute",), host.name, "management")
        if computes:
            sources = _from(inventory, computes, "management")
            found += [
                Opening(
                    "tcp",
                    "16514",
                    sources,
                    "libvirtd's TLS listener (live migration from the compute peers)",
                    nodes=computes,
                ),
                Opening(
                    "tcp", QEMU_MIGRATION, sources, "QEMU live and block migration streams", nodes=computes
                ),
            ]
    return found


@dataclass(frozen=True)
class Listener:
    """TCP `ports` the plan has a service listen on outside loopback, on `addresses` (None: any
    address, every address included)."""

    ports: range
    addresses: frozenset[str] | None
    why: str


def port_range(ports: str) -> range:
    """'5000' or '5900-5999' as a range of port numbers."""
    first, _, last = ports.partition("-")
    return range(int(first), int(last or first) + 1)


def listeners(host: HostContext) -> list[Listener]:
    """Where the node's services may listen (doctor's listen-address): every TCP opening's ports,
    on its `to` address or else the node's addresses on the networks its sources are in; the
    ports some service binds on every address by design (SSH; the APIs without the TLS front);
    and RabbitMQ's Erlang distribution and epmd, bound to management but opened to nobody."""
    nets = dict(host.inventory.networks.items())
    own = {name: (str(address), nets[name].cidr) for name, address in host.node.addresses().items()}
    found: list[Listener] = []
    for opening in openings(host):
        if opening.proto != "tcp":
            continue
        for ports in opening.ports.split(","):
            if opening.to is not None:
                addresses: frozenset[str] | None = frozenset({str(opening.to)})
            elif opening.sources is None:
                addresses = None
            else:
                addresses = frozenset(
                    address
                    for address, cidr in own.values()
                    if any(cidr.overlaps(s) for s in opening.sources)
                )
            found.append(Listener(port_range(ports), addresses, opening.why))
    everywhere = [str(host.node.ssh.port)]
    if host.is_controller and not host.tls_front:
        everywhere += [port for port, _ in (*public_apis(host.inventory), HORIZON)]
    found += [Listener(port_range(port), None, "on every address by design") for port in everywhere]
    management = frozenset({host.management_ip})
    if host.is_controller:
        found += [
            Listener(port_range("4369"), management, "epmd (RabbitMQ's node names), fenced"),
            Listener(port_range("25672"), management, "RabbitMQ's Erlang distribution, fenced"),
        ]
        if host.inventory.names_with("network"):
            # opened to the other network nodes only: a network node that is the controller too
            # reaches it over loopback
            found.append(Listener(port_range("8775"), management, "Nova metadata API"))
    if host.is_compute:
        # bound whether or not the node has peers to migrate to (then opened to nobody)
        found.append(Listener(port_range("16514"), management, "libvirtd's TLS listener"))
    return found


def peers(host: HostContext) -> tuple[str, ...]:
    """The other nodes whose addresses the node's ruleset names: when one of them joins, this
    node's firewall must learn it (a cross-host step, also under `apply --limit`)."""
    return tuple(dict.fromkeys(n for opening in openings(host) for n in opening.nodes))


def _rule(opening: Opening) -> str:
    match = []
    if opening.sources is not None:
        match.append(f"ip saddr {{ {', '.join(str(s) for s in opening.sources)} }}")
    if opening.to is not None:
        match.append(f"ip daddr {opening.to}")
    if opening.proto == "gre":
        match.append("meta l4proto gre")
    else:
        match.append(f"{opening.proto} dport {{ {opening.ports} }}")
    return " ".join(match) + " accept"


def ruleset(host: HostContext) -> str:
    """`nft -f` input: the table created if missing, deleted and written anew in one transaction
    (atomic: the node is never without its rules, and a re-load leaves no old rule behind)."""
    lines = [
        f"# Managed by stackwright: {host.name}'s inbound firewall ({', '.join(host.roles)}).",
        "# Loaded by stackwright-firewall.service; see README, Firewall.",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "  chain input {",
        "    type filter hook input priority filter; policy drop;",
        "    ct state established,related accept",
        "    ct state invalid drop",
        '    iifname "lo" accept',
        "    meta l4proto { icmp, ipv6-icmp } accept",
    ]
    for opening in openings(host):
        lines += [f"    # {opening.why}", f"    {_rule(opening)}"]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def port_matrix(hosts: list[HostContext]) -> list[str]:
    """Markdown rows: one node per role combination of the inventory, each opening a row."""
    rows = ["| node (roles) | protocol/ports | from |", "|---|---|---|"]
    seen: set[tuple[str, ...]] = set()
    for host in hosts:
        if host.roles in seen:
            continue
        seen.add(host.roles)
        for opening in openings(host):
            ports = "GRE (IP protocol 47)" if opening.proto == "gre" else f"{opening.proto} {opening.ports}"
            sources = "anyone" if opening.sources is None else ", ".join(str(s) for s in opening.sources)
            if opening.to is not None:
                sources += f", to {opening.to}"
            rows.append(f"| {host.name} ({', '.join(host.roles)}) | {ports} | {sources}: {opening.why} |")
    return rows
