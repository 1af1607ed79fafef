"""The topology SVG: well-formed, complete, and one tunnel per endpoint pair."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from stackwright.graph import topology_svg, tunnel_endpoints
from stackwright.inventory import Inventory, load_inventory

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SVG = "{http://www.w3.org/2000/svg}"


def _cluster(computes: int, tunnel_type: str = "vxlan") -> Inventory:
    nodes: dict[str, Any] = {
        "ctl": {"roles": ["controller"], "management": "10.10.10.10", "external": "192.168.100.10"},
        "net1": {
            "roles": ["network"],
            "management": "10.10.10.11",
            "data": "10.20.20.11",
            "external": "192.168.100.11",
        },
    }
    for i in range(computes):
        nodes[f"compute{i + 1}"] = {
            "roles": ["compute"],
            "management": f"10.10.10.{20 + i}",
            "data": f"10.20.20.{20 + i}",
            "interfaces": {"management": "enp1s0", "data": "enp2s0.120"},
        }
    return Inventory.model_validate(
        {
            "networks": {
                "management": {"cidr": "10.10.10.0/24"},
                "data": {"cidr": "10.20.20.0/24"},
                "external": {"cidr": "192.168.100.0/24", "gateway": "192.168.100.1"},
            },
            "tenant_network_type": tunnel_type,
            "nodes": nodes,
        }
    )


def _inventories() -> list[Any]:
    params = [
        pytest.param(load_inventory(EXAMPLES / f"{name}.yaml").model, id=name) for name in ("seed", "aio")
    ]
    params += [pytest.param(_cluster(n), id=f"{n + 2}-nodes") for n in (0, 4, 10, 14)]
    return params


def _texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def _tunnels(root: ET.Element) -> list[ET.Element]:
    return [el for el in root.iter() if "tunnel" in el.get("class", "").split()]


@pytest.mark.parametrize("inventory", _inventories())
def test_svg_is_well_formed_and_names_everything(inventory: Inventory) -> None:
    root = ET.fromstring(topology_svg(inventory))
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox")
    texts = _texts(root)
    joined = "\n".join(texts)
    for name, node in inventory.nodes.items():
        assert name in texts, name
        for role in node.roles:
            assert role in texts
        for net_name, address in node.addresses().items():
            assert str(address) in texts, (name, net_name, address)
            assert node.interface(net_name) in texts, (name, net_name)
    for name, network in inventory.networks.items():
        assert name in texts
        assert str(network.cidr) in texts
        if network.gateway is not None:
            assert str(network.gateway) in joined


@pytest.mark.parametrize("inventory", _inventories())
def test_one_tunnel_per_pair_of_endpoints(inventory: Inventory) -> None:
    root = ET.fromstring(topology_svg(inventory))
    n = len(tunnel_endpoints(inventory))
    tunnels = _tunnels(root)
    assert len(tunnels) == n * (n - 1) // 2
    pairs = {frozenset((t.get("data-from"), t.get("data-to"))) for t in tunnels}
    assert len(pairs) == len(tunnels), "a pair drawn twice"
    for t in tunnels:
        title = t.find(f"{SVG}title")
        assert title is not None and title.text is not None
        assert title.text.startswith(f"{inventory.tenant_network_type} tunnel")


def test_seed_draws_the_guide_topology() -> None:
    inventory = load_inventory(EXAMPLES / "seed.yaml").model
    root = ET.fromstring(topology_svg(inventory))
    assert tunnel_endpoints(inventory) == ["network", "compute1"]
    assert len(_tunnels(root)) == 1
    texts = _texts(root)
    assert "gre" in texts  # the tunnel's label
    nodes = {g.get("data-node"): g for g in root.iter(f"{SVG}g") if g.get("data-node")}
    assert set(nodes) == {"controller", "network", "compute1"}

    def bridges(name: str) -> set[str]:
        return {"".join(t.itertext()) for t in nodes[name].iter(f"{SVG}text")} & {
            "br-int",
            "br-tun",
            "br-ex",
        }

    assert bridges("controller") == set()
    assert bridges("network") == {"br-int", "br-tun", "br-ex"}
    assert bridges("compute1") == {"br-int", "br-tun"}


def test_node_boxes_do_not_overlap() -> None:
    root = ET.fromstring(topology_svg(_cluster(10)))
    boxes = [
        tuple(float(r.get(k, "0")) for k in ("x", "y", "width", "height"))
        for r in root.iter(f"{SVG}rect")
        if r.get("class") == "box"
    ]
    assert len(boxes) == 12
    for i, (x1, y1, w1, h1) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[i + 1 :]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1


def test_labels_are_escaped() -> None:
    inventory = _cluster(1).model_copy(update={"region": "R&D <east>"})
    svg = topology_svg(inventory)
    ET.fromstring(svg)
    assert "R&amp;D &lt;east&gt;" in svg


def test_docs_topology_is_current() -> None:
    docs = EXAMPLES.parent / "docs" / "topology.svg"
    if not docs.exists():
        pytest.skip("docs/topology.svg not rendered")
    expected = topology_svg(load_inventory(EXAMPLES / "seed.yaml").model)
    assert docs.read_text() == expected, (
        "re-render: stackwright graph examples/seed.yaml -o docs/topology.svg"
    )


def test_the_storage_node_shows_its_ceph_daemons_and_ceph_rides_the_management_network() -> None:
    inventory = load_inventory(EXAMPLES / "storage.yaml").model
    root = ET.fromstring(topology_svg(inventory))
    nodes = {g.get("data-node"): g for g in root.iter(f"{SVG}g") if g.get("data-node")}
    storage = ["".join(t.itertext()) for t in nodes["storage1"].iter(f"{SVG}text")]
    assert {"storage", "CEPH", "mon", "osd.0", "/dev/sdb"} <= set(storage)
    assert "OVS BRIDGES" not in storage and "br-int" not in storage
    compute = ["".join(t.itertext()) for t in nodes["compute1"].iter(f"{SVG}text")]
    assert "OVS BRIDGES" in compute and "CEPH" not in compute
    texts = _texts(root)
    assert "APIs, DB, RPC, SSH, Ceph" in "".join(root.itertext())  # the management network's purpose
    assert "storage" in texts  # in the legend too
