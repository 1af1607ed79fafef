"""Validation: every mistake is one line naming file, line, problem and fix; exit code 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackwright.cli import app
from stackwright.inventory import load_inventory
from tests.conftest import AIO, SEED

runner = CliRunner()
LINE = re.compile(r"^error: \S+?(:\d+)?: .+ — .+$")

BASE = """\
release: zed
networks:
  management: {cidr: 10.10.10.0/24}
  data: {cidr: 10.20.20.0/24}
  external: {cidr: 192.168.100.0/24, gateway: 192.168.100.1}
nodes:
  controller: {roles: [controller], management: 10.10.10.51, external: 192.168.100.51}
  network: {roles: [network], management: 10.10.10.52, data: 10.20.20.52, external: 192.168.100.52}
  compute1: {roles: [compute], management: 10.10.10.53, data: 10.20.20.53}
"""


def validate(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(text)
    result = runner.invoke(app, ["validate", str(inventory)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()]


def test_seed_example_is_valid_and_short() -> None:
    loaded = load_inventory(SEED)
    assert list(loaded.model.nodes) == ["controller", "network", "compute1"]
    assert len(SEED.read_text().splitlines()) <= 30
    network = loaded.model.nodes["network"]
    assert [network.interface(n) for n in network.addresses()] == ["eth0", "eth1", "eth2"]
    controller = loaded.model.nodes["controller"]
    assert controller.interface("external") == "eth1"  # the guide's controller: eth1 is external


def test_aio_example_has_every_role_on_one_node() -> None:
    loaded = load_inventory(AIO)
    assert loaded.model.nodes["aio"].roles == ["controller", "network", "compute"]


def test_base_is_valid(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, BASE)
    assert code == 0, lines


CASES = [
    ("yaml syntax", BASE.replace("nodes:", "nodes: [", 1), 8, "flow sequence on line 6"),
    (
        "unknown key",
        BASE.replace("management: 10.10.10.53", "managment: 10.10.10.53"),
        9,
        "did you mean 'management'",
    ),
    ("unknown top key", BASE + "tenant_network: gre\n", 10, "did you mean 'tenant_network_type'"),
    ("outside network", BASE.replace("10.10.10.53", "10.10.11.53"), 9, "outside the management network"),
    ("duplicate address", BASE.replace("10.10.10.53", "10.10.10.52"), 9, "already used by nodes.network"),
    ("invalid hostname", BASE.replace("compute1:", "Compute_1:"), 9, "not a valid hostname"),
    (
        "no controller",
        BASE.replace("roles: [controller]", "roles: [compute]").replace(
            "external: 192.168.100.51}", "external: 192.168.100.51, data: 10.20.20.51}"
        ),
        6,
        "no node has the controller",
    ),
    (
        "two controllers",
        BASE.replace("roles: [compute]", "roles: [compute, controller]"),
        9,
        "exactly one controller",
    ),
    ("compute without data", BASE.replace(", data: 10.20.20.53", ""), 9, "needs a data address"),
    ("unknown release", BASE.replace("release: zed", "release: zedd"), 1, "did you mean 'zed'"),
    ("bad address", BASE.replace("10.20.20.53", "10.20.20.530"), 9, "not a valid IPv4 address"),
    (
        "bad role",
        BASE.replace("roles: [compute]", "roles: [hypervisor]"),
        9,
        "'controller', 'network', 'compute' or 'storage'",
    ),
    (
        "gateway outside",
        BASE.replace("gateway: 192.168.100.1", "gateway: 192.168.1.1"),
        5,
        "outside 192.168.100.0/24",
    ),
    ("overlapping networks", BASE.replace("cidr: 10.20.20.0/24", "cidr: 10.10.0.0/16"), 4, "overlaps"),
    (
        "override of unrendered file",
        BASE + "overrides: {/etc/cinder/cinder.conf: {DEFAULT: {debug: true}}}\n",
        10,
        "no host here gets /etc/cinder/cinder.conf",
    ),
    ("override of unrendered section", BASE + "nodes_extra: 1\n", 10, "unknown key 'nodes_extra'"),
    (
        "interface twice",
        BASE.replace("data: 10.20.20.53}", "data: 10.20.20.53, interfaces: {data: eth0}}"),
        9,
        "already carries the management network",
    ),
    (
        "missing networks",
        "nodes: {a: {roles: [controller], management: 10.0.0.1}}\n",
        1,
        "required key 'networks'",
    ),
    ("wrong type", BASE.replace("roles: [compute]", "roles: compute"), 9, "wrong type"),
    ("duplicate key", BASE.replace("compute1:", "network:"), 9, "appears twice"),
]


@pytest.mark.parametrize(("name", "text", "line", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_mistake_is_one_line_with_file_line_and_fix(
    tmp_path: Path, name: str, text: str, line: int, fragment: str
) -> None:
    code, lines = validate(tmp_path, text)
    assert code == 2
    assert len(lines) == 1, lines
    assert LINE.match(lines[0]), lines[0]
    assert f"inventory.yaml:{line}:" in lines[0], lines[0]
    assert fragment in lines[0]


def test_override_of_unrendered_section_is_reported(tmp_path: Path) -> None:
    text = BASE + "overrides: {/etc/chrony/chrony.conf: {DEFAULT: {x: 1}}}\n"
    code, lines = validate(tmp_path, text)
    assert code == 2
    assert "not an INI file" in lines[0]


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "file not found" in result.stderr


def test_schema_is_json_with_the_inventory_keys() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert {"release", "networks", "nodes", "tenant_network_type", "virt_type", "overrides"} <= set(
        schema["properties"]
    )
