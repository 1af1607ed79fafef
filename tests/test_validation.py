"""Allow-lists at the model (issue 15, "Why" 1, 3, 4): every string a user writes is fullmatched;
a refused value is one line naming where it is and what to write instead (exit 2)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from stackwright.cli import app
from stackwright.secrets import CEPHX_KEYS, SECRET_NAMES
from tests.conftest import CEPHX_SAMPLE, SEED

runner = CliRunner()
LINE = re.compile(r"error: \S+?(:\d+)?: .+ — .+")


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    target = tmp_path / "seed.yaml"
    shutil.copy(SEED, target)
    good = {n: CEPHX_SAMPLE if n in CEPHX_KEYS else f"Good{n[:6]}123" for n in SECRET_NAMES}
    (tmp_path / "passwords.yaml").write_text(yaml.safe_dump(good))
    (tmp_path / "passwords.yaml").chmod(0o600)
    return target


def validate_with(inventory: Path, change: Mapping[str, object]) -> list[str]:
    """validate after merging `change` (dotted path -> value) into the seed; returns stderr lines."""
    data = yaml.safe_load(inventory.read_text())
    for dotted, value in change.items():
        *parents, last = dotted.split("|")
        target = data
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    inventory.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["validate", str(inventory)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if lines:
        assert result.exit_code == 2, result.output
    return lines


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"region": "RegionOne;echo${IFS}INJECTED;id"},
            "region: 'RegionOne;echo${IFS}INJECTED;id' is not a valid",
        ),
        ({"region": "RegionOne\n[database]"}, "region: 'RegionOne\\n[database]' is not a valid region name"),
        ({"region": "RegionOne\n"}, "region: 'RegionOne\\n' is not a valid region name"),
        ({"nodes|compute1|interfaces": {"data": "eth1\n"}}, "'eth1\\n' is not a valid interface name"),
        ({"nodes|compute1|interfaces": {"data": ".."}}, "'..' is not a valid interface name"),
        ({"nodes|compute1|ssh": {"user": "root;id"}}, "'root;id' is not a valid user name"),
        ({"nodes|compute1|ssh": {"host": "-oProxyCommand=id"}}, "is not a valid host name or address"),
        ({"nodes|compute1|ssh": {"host": "10.10.10.53\n"}}, "is not a valid host name or address"),
        ({"overrides": {"/etc/nova/nova.conf\n": {"DEFAULT": {"debug": True}}}}, "is not a valid file path"),
        ({"overrides": {"/etc/nova/../shadow": {"DEFAULT": {"debug": True}}}}, "is not a valid file path"),
        (
            {"overrides": {"/etc/nova/nova.conf": {"DEFAULT]\n[x": {"debug": True}}}},
            "is not a valid section name",
        ),
        (
            {"overrides": {"/etc/nova/nova.conf": {"DEFAULT": {"debug = true\n[evil]\nfoo": 1}}}},
            "is not a valid option name",
        ),
        (
            {
                "overrides": {
                    "/etc/nova/nova.conf": {"DEFAULT": {"debug": "true\n[database]\nconnection = x"}}
                }
            },
            "cannot be an INI value",
        ),
        ({"overrides": {"/etc/nova/nova.conf": {"DEFAULT": {"debug": " true"}}}}, "cannot be an INI value"),
    ],
)
def test_hostile_string_is_one_line_naming_it(
    inventory: Path, change: dict[str, object], fragment: str
) -> None:
    lines = validate_with(inventory, change)
    assert len(lines) == 1, lines
    assert LINE.fullmatch(lines[0]), lines[0]
    assert fragment in lines[0], lines[0]


def test_node_name_with_a_trailing_newline_is_refused(inventory: Path) -> None:
    """Why 4: `^...$` with re.match accepted "compute1\\n" and rendered a directory `compute1\\n/`."""
    data = yaml.safe_load(inventory.read_text())
    data["nodes"]["compute1\n"] = data["nodes"].pop("compute1")
    inventory.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["validate", str(inventory)])
    assert result.exit_code == 2
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "nodes.compute1\\n: 'compute1\\n' is not a valid hostname" in line and "use 'compute1'" in line


def test_rich_markup_in_a_value_is_printed_not_interpreted(inventory: Path) -> None:
    lines = validate_with(inventory, {"region": "[/red][bold]x"})
    assert len(lines) == 1 and "'[/red][bold]x'" in lines[0]


def test_values_inside_the_allow_lists_still_validate(inventory: Path) -> None:
    change = {
        "region": "Region_2-b",
        "nodes|compute1|interfaces": {"data": "ens5.100"},
        "nodes|compute1|ssh": {"user": "deploy_1", "host": "compute1.example.org", "port": 2222},
        "overrides": {"/etc/nova/nova.conf": {"DEFAULT": {"debug": True, "state_path": "$state_path/x"}}},
    }
    assert validate_with(inventory, change) == []


def test_passwords_file_readable_by_others_is_made_private_with_a_warning(inventory: Path) -> None:
    passwords = inventory.parent / "passwords.yaml"
    previous = inventory.parent / "passwords.yaml.prev"
    previous.write_text(passwords.read_text())
    passwords.chmod(0o644)
    previous.chmod(0o640)
    result = runner.invoke(app, ["validate", str(inventory)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "mode 0644" in warnings[0] and "mode 0640" in warnings[1]
    assert passwords.stat().st_mode & 0o777 == 0o600
    assert previous.stat().st_mode & 0o777 == 0o600
    again = runner.invoke(app, ["validate", str(inventory)])
    assert "warning" not in again.stderr


def test_one_host_list_parser_for_limit_and_host(inventory: Path) -> None:
    from stackwright.inventory import load_inventory, select_hosts
    from stackwright.yamlsource import UserError

    loaded = load_inventory(inventory)
    assert select_hosts(loaded, None, "--limit") == ["controller", "network", "compute1"]
    assert select_hosts(loaded, " compute1, network,compute1 ", "--limit") == ["compute1", "network"]
    with pytest.raises(UserError) as caught:
        select_hosts(loaded, "compute1,ghost\n[x]", "--host")
    assert str(caught.value) == (
        "--host 'ghost\\n[x]': no such node — the inventory has controller, network, compute1"
    )
    with pytest.raises(UserError):
        select_hosts(loaded, " , ", "--limit")
    result = runner.invoke(app, ["plan", str(inventory), "--host", "ghost"])
    assert result.exit_code == 2 and "--host 'ghost': no such node" in result.stderr
