"""The lab's names for a host's pieces follow from the inventory alone (pure): a node added between
running ones takes none of their names; names Linux would refuse or two nodes would share are
refused before anything is made."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from stackwright.inventory import load_inventory
from stackwright.lab.layout import LabLayout, veth_tag
from stackwright.yamlsource import UserError
from tests.conftest import SEED

COMPUTE2 = "  compute2:\n    roles: [compute]\n    management: 10.10.10.55\n    data: 10.20.20.55\n"


def veths(path: Path) -> dict[str, list[str]]:
    layout = LabLayout.of(load_inventory(path).model, path)
    return {host.name: [link.veth for link in host.links] for host in layout.hosts}


def test_a_node_added_between_others_takes_none_of_their_interface_names(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED.read_text())
    before = veths(path)
    text = SEED.read_text()
    network = text.index("  network:\n")
    path.write_text(text[:network] + COMPUTE2 + text[network:])  # between the controller and the network node
    after = veths(path)
    assert list(after)[1] == "compute2"
    assert {name: after[name] for name in before} == before
    every = [veth for names in after.values() for veth in names]
    assert len(set(every)) == len(every) and max(map(len, every)) <= 15  # IFNAMSIZ - 1


def test_two_nodes_whose_interface_names_would_clash_are_refused(tmp_path: Path) -> None:
    seen: dict[str, str] = {}
    for i in itertools.count():
        name = f"compute{i}"
        tag = veth_tag(name)
        if tag in seen:
            first, second = seen[tag], name
            break
        seen[tag] = name
    assert SEED.read_text().endswith("data: 10.20.20.53\n")  # compute1, the last node
    text = SEED.read_text().replace("  compute1:", f"  {first}:") + COMPUTE2.replace("compute2", second)
    path = tmp_path / "clash.yaml"
    path.write_text(text)
    with pytest.raises(
        UserError, match=f"nodes {min(first, second)} and {max(first, second)}: .* rename one"
    ):
        LabLayout.of(load_inventory(path).model, path)
