"""The cluster topology as an SVG a user can drop into their docs.

`topology_svg(inventory)` is pure: it computes a simple layout here (an x per
node column, a y per network bus) and hands the finished geometry to the
jinja2 template `templates/topology.svg.j2`, which only draws.

Layout, top to bottom: the external bus, the node boxes, the management and data
buses, then the tunnel band, where every pair of tunnel endpoints (network and
compute nodes) is joined by a dashed curve labelled with `tenant_network_type`.
Up to `MAX_COLUMNS` nodes sit in one row; more wrap into a second row drawn as a
mirror image of the first, so both rows' data buses face the shared tunnel band
(and beyond 2 x MAX_COLUMNS the rows grow wider and the SVG scales down).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import jinja2

from stackwright.ceph import osd_ids
from stackwright.inventory import Inventory, Node

MAX_COLUMNS = 6
MIN_WIDTH = 720.0

# One color per network, used for its bus, drops, interface dots and legend swatch.
NETWORK_COLORS: dict[str, str] = {
    "management": "#2563eb",
    "data": "#d97706",
    "external": "#059669",
}
ROLE_COLORS: dict[str, tuple[str, str]] = {  # (text/stroke, fill)
    "controller": ("#6d28d9", "#ede9fe"),
    "network": ("#be185d", "#fce7f3"),
    "compute": ("#334155", "#e2e8f0"),
    "storage": ("#b45309", "#fef3c7"),
}
NETWORK_PURPOSE: dict[str, str] = {
    "management": "APIs, DB, RPC, SSH",
    "data": "tunnel endpoints",
    "external": "public side, floating IPs",
}
TOP_NETWORKS = ("external",)  # drawn above the node row; the rest below

# Geometry (px).
PAD = 28
HEADER_H = 64
COL_GAP = 44
BOX_PAD = 14
NAME_H = 30
PILL_H = 20
LINE_H = 19
SECTION_GAP = 12
DROP_SPREAD = 22  # horizontal distance between one node's drops
BUS_GAP = 58  # between two buses
BOX_BUS_GAP = 54  # between a box edge and its nearest bus
ARC_BASE = 36  # depth of a tunnel arc between neighbouring columns
ARC_STEP = (26, 16)  # extra depth per further column: one row, two rows

_FONT = 0.60  # average glyph width / font size (DejaVu Sans is the widest we expect)
_BOLD = 0.70
_MONO = 0.61


def _text_w(text: str, size: float, *, bold: bool = False, mono: bool = False) -> float:
    factor = _MONO if mono else _BOLD if bold else _FONT
    return len(text) * size * factor


@dataclass(frozen=True)
class Pill:
    text: str
    x: float
    width: float
    color: str
    fill: str


@dataclass(frozen=True)
class Interface:
    network: str
    name: str
    address: str
    color: str


@dataclass(frozen=True)
class Bridge:
    name: str
    note: str


@dataclass(frozen=True)
class Drop:
    """A node's interface wire from its box edge to a network bus."""

    network: str
    iface: str
    x: float
    y1: float  # box edge
    y2: float  # bus
    color: str
    label_y: float
    label_anchor: str  # "start" or "end"
    label_dx: float


@dataclass(frozen=True)
class NodeBox:
    name: str
    x: float
    y: float
    width: float
    height: float
    pills: list[Pill]
    interfaces: list[Interface]
    interfaces_y: float
    bridges: list[Bridge]
    bridges_y: float
    drops: list[Drop]
    section: str
    is_endpoint: bool


@dataclass(frozen=True)
class Bus:
    network: str
    cidr: str
    gateway: str | None
    purpose: str
    x1: float
    x2: float
    y: float
    color: str


@dataclass(frozen=True)
class Tunnel:
    a: str
    b: str
    a_address: str
    b_address: str
    path: str
    label_x: float
    label_y: float


@dataclass(frozen=True)
class Endpoint:
    x: float
    y: float
    row: int


@dataclass(frozen=True)
class LegendItem:
    kind: str  # "network", "tunnel", "role", "attach"
    label: str
    x: float
    y: float
    color: str
    fill: str = ""
    width: float = 0.0


@dataclass
class Layout:
    width: float
    height: float
    title: str
    subtitle: str
    tunnel_type: str
    gutter_x: float
    iface_col: float
    buses: list[Bus] = field(default_factory=list)
    nodes: list[NodeBox] = field(default_factory=list)
    tunnels: list[Tunnel] = field(default_factory=list)
    tunnel_caption: list[str] = field(default_factory=list)
    tunnel_caption_y: float = 0.0
    show_tunnel_labels: bool = True
    legend: list[LegendItem] = field(default_factory=list)
    network_colors: dict[str, str] = field(default_factory=dict)


def topology_svg(inventory: Inventory) -> str:
    """Render the cluster's nodes, networks, OVS bridges and tunnels as an SVG document."""
    layout = compute_layout(inventory)
    return _environment().get_template("topology.svg.j2").render(layout=layout)


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def section_of(node: Node) -> str:
    """The title of a node box's lower part: its OVS bridges, and a storage node's Ceph daemons."""
    bridged = node.has("network") or node.has("compute") or not node.has("storage")
    return " · ".join([*(["OVS BRIDGES"] if bridged else []), *(["CEPH"] if node.has("storage") else [])])


def bridges_of(node: Node, tunnel_type: str, osds: tuple[tuple[int, str], ...] = ()) -> list[Bridge]:
    """The Open vSwitch bridges the deploy creates on this node, then a storage node's Ceph daemons:
    its monitor and manager, and each of its `osds` (id, device: ceph.osd_ids)."""
    bridges: list[Bridge] = []
    if node.has("network") or node.has("compute"):
        bridges.append(Bridge("br-int", "integration"))
        if node.data is not None:
            bridges.append(Bridge("br-tun", f"{tunnel_type} endpoint {node.data}"))
        else:
            bridges.append(Bridge("br-tun", tunnel_type))
    if node.has("network") and node.external is not None:
        bridges.append(Bridge("br-ex", f"{node.interface('external')} (external)"))
    if node.has("storage"):
        bridges.append(Bridge("mon", f"+ mgr on {node.management} (Ceph's public network)"))
        bridges += [Bridge(f"osd.{ident}", device) for ident, device in osds]
    return bridges


def tunnel_endpoints(inventory: Inventory) -> list[str]:
    """Nodes that terminate tenant tunnels: network and compute nodes with a data address."""
    return [
        name
        for name, node in inventory.nodes.items()
        if (node.has("network") or node.has("compute")) and node.data is not None
    ]


def compute_layout(inventory: Inventory) -> Layout:
    osds = {
        name: tuple((ident, device) for ident, host, device in osd_ids(inventory) if host == name)
        for name in inventory.nodes
    }
    names = list(inventory.nodes)
    n = len(names)
    networks = dict(inventory.networks.items())
    tunnel_type = inventory.tenant_network_type
    endpoints = set(tunnel_endpoints(inventory))

    # --- sizes -------------------------------------------------------------------
    box_w = 200.0
    iface_col = 0.0
    addr_w = 0.0
    for name, node in inventory.nodes.items():
        box_w = max(box_w, _text_w(name, 15, bold=True) + 2 * BOX_PAD)
        pills_w = sum(_text_w(r, 11, bold=True) + 16 for r in node.roles) + 6 * (len(node.roles) - 1)
        box_w = max(box_w, pills_w + 2 * BOX_PAD)
        for net_name, address in node.addresses().items():
            iface_col = max(iface_col, _text_w(node.interface(net_name), 12, mono=True) + 12)
            addr_w = max(addr_w, _text_w(str(address), 12, mono=True))
        box_w = max(box_w, _text_w(section_of(node), 11, bold=True) + 2 * BOX_PAD)
        for bridge in bridges_of(node, tunnel_type, osds[name]):
            box_w = max(box_w, 58 + _text_w(bridge.note, 11) + 2 * BOX_PAD)
    iface_col = math.ceil(iface_col)
    box_w = math.ceil(max(box_w, 16 + iface_col + addr_w + 2 * BOX_PAD))
    max_ifaces = max(len(node.addresses()) for node in inventory.nodes.values())
    max_bridges = max(
        max(len(bridges_of(nd, tunnel_type, osds[nm])), 1) for nm, nd in inventory.nodes.items()
    )
    interfaces_off = NAME_H + PILL_H + SECTION_GAP + 14
    bridges_off = interfaces_off + max_ifaces * LINE_H + SECTION_GAP + 16
    box_h = bridges_off + (max_bridges - 1) * LINE_H + BOX_PAD + 4

    col_w = box_w + COL_GAP
    rows = 1 if n <= MAX_COLUMNS else 2
    cols = math.ceil(n / rows)
    gutter_w = 0.0
    for name, net in networks.items():
        gutter_w = max(gutter_w, _text_w(name, 13, bold=True), _text_w(str(net.cidr), 12, mono=True))
        if net.gateway is not None:
            gutter_w = max(gutter_w, _text_w(f"gw {net.gateway}", 11, mono=True))
    gutter_w = math.ceil(gutter_w) + 24
    gutter_x = PAD + gutter_w
    bus_x1 = gutter_x - 6
    bus_x2 = gutter_x + cols * col_w - COL_GAP / 2 + 10
    width = max(bus_x2 + PAD, MIN_WIDTH)
    # A small cluster in a drawing widened for its legend: centre the columns on the buses.
    cols_x = gutter_x + (width - PAD - bus_x2) / 2
    bus_x2 = width - PAD

    top_nets = [name for name in networks if name in TOP_NETWORKS]
    bottom_nets = [name for name in networks if name not in TOP_NETWORKS]
    # Each network's drop keeps the same offset from the column centre on every node.
    offsets: dict[str, float] = {name: 0.0 for name in top_nets}
    for i, name in enumerate(bottom_nets):
        offsets[name] = (i - (len(bottom_nets) - 1) / 2) * DROP_SPREAD * 2

    # --- tunnel band height ------------------------------------------------------
    max_span = max(cols - 1, 1)
    rows = 1 if n <= MAX_COLUMNS else 2
    arc_step = ARC_STEP[rows - 1]
    arc_depth_max = ARC_BASE + arc_step * (max_span - 1)
    band_h = max(arc_depth_max + 30, 100) if rows == 1 else 2 * arc_depth_max + 70

    # --- rows --------------------------------------------------------------------
    layout = Layout(
        width=width,
        height=0,
        title="Cluster topology",
        subtitle=(
            f"release {inventory.release} · region {inventory.region} · {n} "
            f"node{'s' if n != 1 else ''} · tenant networks: {tunnel_type}"
        ),
        tunnel_type=tunnel_type,
        gutter_x=gutter_x,
        iface_col=iface_col,
        network_colors=dict(NETWORK_COLORS),
    )
    endpoint_at: dict[str, Endpoint] = {}
    y = PAD + HEADER_H
    band_top = 0.0
    for row in range(rows):
        row_names = names[row * cols : (row + 1) * cols]
        # The first row shows every network; later rows only those their nodes use.
        used = {net for name in row_names for net in inventory.nodes[name].addresses()}
        slots = [s for s in [*top_nets, "nodes", *bottom_nets] if s == "nodes" or row == 0 or s in used]
        if row == 1:
            slots.reverse()
            band_top = y
            y += band_h
        bus_y: dict[str, float] = {}
        box_y = 0.0
        prev: str | None = None
        for slot in slots:
            if prev is None:
                y += 22 if slot != "nodes" else 8
            elif slot == "nodes" or prev == "nodes":
                y += BOX_BUS_GAP
            else:
                y += BUS_GAP
            if slot == "nodes":
                box_y = y
                y += box_h
            else:
                bus_y[slot] = y
            prev = slot
        if rows == 1:
            band_top = y
            y += band_h
        for name in bus_y:
            net = networks[name]
            layout.buses.append(
                Bus(
                    network=name,
                    cidr=str(net.cidr),
                    gateway=str(net.gateway) if net.gateway is not None else None,
                    purpose=NETWORK_PURPOSE.get(name, "")
                    + (", Ceph" if name == "management" and inventory.names_with("storage") else ""),
                    x1=bus_x1,
                    x2=bus_x2,
                    y=bus_y[name],
                    color=NETWORK_COLORS.get(name, "#64748b"),
                )
            )
        for col, name in enumerate(row_names):
            node = inventory.nodes[name]
            x = cols_x + col * col_w
            cx = x + box_w / 2
            drops: list[Drop] = []
            for net_name in node.addresses():
                if net_name not in bus_y:
                    continue
                target = bus_y[net_name]
                edge = box_y if target < box_y else box_y + box_h
                direction = -1 if target < box_y else 1
                dx = cx + offsets[net_name]
                left = offsets[net_name] < 0
                drops.append(
                    Drop(
                        network=net_name,
                        iface=node.interface(net_name),
                        x=dx,
                        y1=edge,
                        y2=target,
                        color=NETWORK_COLORS.get(net_name, "#64748b"),
                        label_y=edge + direction * 18 + 4,
                        label_anchor="end" if left else "start",
                        label_dx=-6 if left else 6,
                    )
                )
                if net_name == "data" and name in endpoints:
                    endpoint_at[name] = Endpoint(dx, target, row)
            pills: list[Pill] = []
            px = x + BOX_PAD
            for role in node.roles:
                pw = _text_w(role, 11, bold=True) + 16
                color, fill = ROLE_COLORS.get(role, ("#334155", "#f1f5f9"))
                pills.append(Pill(role, px, pw, color, fill))
                px += pw + 6
            layout.nodes.append(
                NodeBox(
                    name=name,
                    x=x,
                    y=box_y,
                    width=box_w,
                    height=box_h,
                    pills=pills,
                    interfaces=[
                        Interface(on, node.interface(on), str(addr), NETWORK_COLORS.get(on, "#64748b"))
                        for on, addr in node.addresses().items()
                    ],
                    interfaces_y=box_y + interfaces_off,
                    bridges=bridges_of(node, tunnel_type, osds[name]),
                    section=section_of(node),
                    bridges_y=box_y + bridges_off,
                    drops=drops,
                    is_endpoint=name in endpoints,
                )
            )
        y += 14 if row == rows - 1 else 0

    # --- tunnels -----------------------------------------------------------------
    ordered = [name for name in names if name in endpoint_at]
    band_mid = band_top + band_h / 2
    for a, b in combinations(ordered, 2):
        pa, pb = endpoint_at[a], endpoint_at[b]
        if pa.row == pb.row:
            span = round(abs(pb.x - pa.x) / col_w)
            depth = ARC_BASE + arc_step * (max(span, 1) - 1)
            sign = 1 if pa.y <= band_mid else -1
            ctrl = pa.y + sign * depth / 0.75  # a cubic with both controls at d peaks at 0.75 d
            path = (
                f"M {pa.x:.1f} {pa.y:.1f} C {pa.x:.1f} {ctrl:.1f} {pb.x:.1f} {ctrl:.1f} {pb.x:.1f} {pb.y:.1f}"
            )
            lx, ly = (pa.x + pb.x) / 2, pa.y + sign * depth
        else:
            top, bottom = (pa, pb) if pa.y < pb.y else (pb, pa)
            third = (bottom.y - top.y) / 3
            path = (
                f"M {top.x:.1f} {top.y:.1f} C {top.x:.1f} {top.y + third:.1f} "
                f"{bottom.x:.1f} {bottom.y - third:.1f} {bottom.x:.1f} {bottom.y:.1f}"
            )
            lx, ly = (pa.x + pb.x) / 2, (pa.y + pb.y) / 2
        layout.tunnels.append(
            Tunnel(
                a=a,
                b=b,
                a_address=str(inventory.nodes[a].data),
                b_address=str(inventory.nodes[b].data),
                path=path,
                label_x=lx,
                label_y=ly + 4,
            )
        )
    k = len(ordered)
    t = len(layout.tunnels)
    layout.show_tunnel_labels = t <= 6
    layout.tunnel_caption = [
        f"{tunnel_type} full mesh" if k > 1 else f"{tunnel_type}, none needed",
        f"{k} endpoint{'s' if k != 1 else ''}",
        f"{t} tunnel{'s' if t != 1 else ''}",
    ]
    layout.tunnel_caption_y = band_top + (band_h / 2 - 8 if rows == 2 else 48)

    # --- legend (flows onto new lines when the drawing is narrow) ------------------
    y += 8
    legend_x0 = PAD
    lx = legend_x0 + _text_w("Legend", 12, bold=True) + 18
    ly = y + 14
    entries: list[tuple[str, str, str, str]] = []
    for name in networks:
        entries.append(("network", name, NETWORK_COLORS.get(name, "#64748b"), ""))
    entries.append(("tunnel", f"{tunnel_type} tunnel", NETWORK_COLORS["data"], ""))
    entries.append(("attach", "interface", "#0f172a", ""))
    for present in [r for r in ROLE_COLORS if inventory.names_with(r)]:
        color, fill = ROLE_COLORS[present]
        entries.append(("role", present, color, fill))
    for kind, label, color, fill in entries:
        swatch = 38.0 if kind in ("network", "tunnel") else 18.0 if kind == "attach" else 0.0
        text_w = _text_w(label, 11, bold=True) + 16 if kind == "role" else _text_w(label, 11)
        item_w = swatch + text_w + 22
        if lx + item_w > width - PAD and lx > legend_x0 + 80:
            lx = legend_x0 + _text_w("Legend", 12, bold=True) + 18
            ly += 24
        layout.legend.append(LegendItem(kind, label, lx, ly, color, fill, text_w))
        lx += item_w
    layout.height = ly + 14 + PAD
    return layout
