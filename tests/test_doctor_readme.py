"""The README's troubleshooting section is generated from the doctor checks' docstrings."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("troubleshooting", ROOT / "scripts" / "troubleshooting.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_troubleshooting_section_is_current() -> None:
    script = load_script()
    readme = (ROOT / "README.md").read_text()
    assert script.START in readme, "no troubleshooting markers: run scripts/troubleshooting.py"
    assert script.rendered(readme) == readme, (
        "README.md's troubleshooting section is stale: run `.venv/bin/python scripts/troubleshooting.py`"
    )


def test_section_names_every_check_and_never_777() -> None:
    from stackwright.checks.doctor import CHECKS

    text = load_script().section()
    for ident in CHECKS:
        assert f"### `{ident}`" in text
    assert "never do that" in text  # the seed's chmod 777 is named only as what not to do
