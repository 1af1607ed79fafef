"""The README's generated sections (troubleshooting from the doctor checks' docstrings, the
firewall's port matrix from stackwright.firewall) are current."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("readme_sections", ROOT / "scripts" / "readme_sections.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_generated_sections_are_current() -> None:
    script = load_script()
    readme = (ROOT / "README.md").read_text()
    assert script.rendered(readme) == readme, (
        "README.md's generated sections are stale: run `.venv/bin/python scripts/readme_sections.py`"
    )


def test_port_matrix_names_every_role_s_openings() -> None:
    text = load_script().ports()
    assert "| controller (controller) | tcp 3306 | 10.10.10.0/24: MariaDB |" in text
    assert "| compute1 (compute) | tcp 16514 | 10.10.10.54/32: libvirtd" in text
    assert "| network (network) | GRE (IP protocol 47) |" in text


def test_section_names_every_check_and_never_777() -> None:
    from stackwright.checks.doctor import CHECKS

    text = load_script().troubleshooting()
    for ident in CHECKS:
        assert f"### `{ident}`" in text
    assert "never do that" in text  # the seed's chmod 777 is named only as what not to do
