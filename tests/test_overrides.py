"""Overrides: laid over rendered INI files, globally and per host; unknown targets reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.render import apply_ini_overrides, ini_sections
from stackwright.yamlsource import UserErrors
from tests.conftest import SEED

INI = """\
# comment kept
[DEFAULT]
debug = false
# another

[libvirt]
virt_type = kvm
"""


def test_override_replaces_in_place_and_keeps_comments() -> None:
    out = apply_ini_overrides(INI, {"DEFAULT": {"debug": True}, "libvirt": {"cpu_mode": "none"}})
    assert "debug = true" in out and "debug = false" not in out
    assert "# comment kept" in out and "# another" in out
    assert out.index("cpu_mode = none") > out.index("[libvirt]")


def test_override_adds_option_at_end_of_its_section() -> None:
    out = apply_ini_overrides(INI, {"DEFAULT": {"log_dir": "/var/log/x"}})
    lines = out.splitlines()
    assert lines.index("log_dir = /var/log/x") < lines.index("[libvirt]")
    assert lines.index("log_dir = /var/log/x") > lines.index("debug = false")


def test_ini_sections_in_file_order() -> None:
    assert ini_sections(INI) == ["DEFAULT", "libvirt"]
    assert ini_sections("a = 1\n[x]\n") == ["DEFAULT", "x"]


def _with_overrides(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(SEED.read_text() + extra)
    return path


def _first_ini_file(passwords: dict[str, str]) -> tuple[str, str]:
    plan = plan_cluster(load_inventory(SEED), passwords)
    for file in plan.hosts["compute1"].files().values():
        if file.format == "ini":
            return file.path, ini_sections(file.content)[-1]
    pytest.skip("no INI file rendered for compute1 yet")


def test_host_override_beats_global(tmp_path: Path, passwords: dict[str, str]) -> None:
    path, section = _first_ini_file(passwords)
    inventory = _with_overrides(
        tmp_path,
        f"overrides:\n  {path}: {{{section}: {{sw_probe: global}}}}\n",
    )
    text = inventory.read_text().replace(
        "    data: 10.20.20.53\n",
        f"    data: 10.20.20.53\n    overrides:\n      {path}: {{{section}: {{sw_probe: mine}}}}\n",
    )
    inventory.write_text(text)
    plan = plan_cluster(load_inventory(inventory), passwords)
    assert "sw_probe = mine" in plan.hosts["compute1"].files()[path].content
    for host, host_plan in plan.hosts.items():
        if host != "compute1" and path in host_plan.files():
            assert "sw_probe = global" in host_plan.files()[path].content


def test_unknown_section_is_reported_with_its_line(tmp_path: Path, passwords: dict[str, str]) -> None:
    path, _ = _first_ini_file(passwords)
    inventory = _with_overrides(tmp_path, f"overrides:\n  {path}:\n    no_such_section: {{x: 1}}\n")
    with pytest.raises(UserErrors) as caught:
        plan_cluster(load_inventory(inventory), passwords)
    (error,) = caught.value.errors
    assert "section [no_such_section] is not in the rendered file" in str(error)
    assert error.line == len(SEED.read_text().splitlines()) + 3
