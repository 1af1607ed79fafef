"""Shared fixtures for the offline (core) tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackwright.releases.modern.apt_node import (
    BYTE_COMPILE_APT,
    COMPILE_SCRIPT,
    DPKG_EXCLUDES,
    NO_BYTE_COMPILE,
    PY3COMPILE_STAND_IN,
    SYSTEMCTL_STAND_IN,
)
from stackwright.secrets import CEPHX_KEYS, SECRET_NAMES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SEED = EXAMPLES / "seed.yaml"
AIO = EXAMPLES / "aio.yaml"
STORAGE = EXAMPLES / "storage.yaml"
# A well-formed cephx key (allowlists.CEPHX_KEY) for tests that write a passwords file by hand.
CEPHX_SAMPLE = "AQ" + "B" * 35 + "A=="
# what a node writes before its first apt run, in order (releases/modern/apt_node.py)
APT_SETUP = [
    DPKG_EXCLUDES,
    NO_BYTE_COMPILE,
    PY3COMPILE_STAND_IN,
    SYSTEMCTL_STAND_IN,
    COMPILE_SCRIPT,
    BYTE_COMPILE_APT,
]


@pytest.fixture
def passwords() -> dict[str, str]:
    """Distinct, recognisable values so a leak is easy to spot."""
    return {
        name: f"AQ{f'Sekret{index:02d}x':A<35}A=="
        if name in CEPHX_KEYS
        else f"Sekret{index:02d}x{name.replace('_', '')[:10]}"
        for index, name in enumerate(SECRET_NAMES)
    }
