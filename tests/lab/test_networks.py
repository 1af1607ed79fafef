"""Hosts reach each other on the networks they share, and the root namespace routes nothing on."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from stackwright.lab.network import table_name
from stackwright.lab.system import run
from tests.lab.conftest import SeedLab

pytestmark = pytest.mark.lab


def _pairs(seed_lab: SeedLab, network: str) -> list[tuple[str, str, str]]:
    """(from, to, to's address) for every ordered pair of hosts on `network`."""
    on = [(h.name, lk.address.ip) for h in seed_lab.layout.hosts for lk in h.links if lk.network == network]
    return [(a, b, str(addr)) for (a, _), (b, addr) in itertools.permutations(on, 2)]


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ("management", {"controller", "network", "compute1", "storage1"}),
        ("data", {"network", "compute1"}),
        ("external", {"controller", "network"}),
    ],
)
def test_hosts_reach_each_other(seed_lab: SeedLab, network: str, expected: set[str]) -> None:
    pairs = _pairs(seed_lab, network)
    assert {a for a, _, _ in pairs} == expected
    for src, dst, addr in pairs:
        proc = seed_lab.exec(src, f"ping -c1 -W2 {addr}")
        assert proc.returncode == 0, f"{src} cannot ping {dst} at {addr} on {network}: {proc.stdout}"


def test_hosts_reach_the_bridge_address_only_on_their_networks(seed_lab: SeedLab) -> None:
    data = next(b for b in seed_lab.layout.bridges if b.network == "data")
    assert seed_lab.exec("compute1", f"ping -c1 -W2 {data.address.ip}").returncode == 0
    # the controller has no data NIC and no default route: the kernel refuses at once
    assert seed_lab.exec("controller", f"ping -c1 -W1 {data.address.ip}").returncode != 0


def test_forwarding_is_off_on_lab_bridges(seed_lab: SeedLab) -> None:
    for bridge in seed_lab.layout.bridges:
        assert Path(f"/proc/sys/net/ipv4/conf/{bridge.name}/forwarding").read_text().strip() == "0"


def test_drop_rule_covers_every_lab_bridge(seed_lab: SeedLab) -> None:
    table = run(["nft", "list", "table", "inet", table_name(seed_lab.layout)]).stdout
    assert "hook forward" in table
    for bridge in seed_lab.layout.bridges:
        assert f'iifname "{bridge.name}" oifname != "{bridge.name}"' in table
        assert f'oifname "{bridge.name}" iifname != "{bridge.name}"' in table
    assert table.count(" drop") == 2 * len(seed_lab.layout.bridges)
