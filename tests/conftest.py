"""Shared fixtures for the offline (core) tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackwright.secrets import SECRET_NAMES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SEED = EXAMPLES / "seed.yaml"
AIO = EXAMPLES / "aio.yaml"


@pytest.fixture
def passwords() -> dict[str, str]:
    """Distinct, recognisable values so a leak is easy to spot."""
    return {
        name: f"Sekret{index:02d}x{name.replace('_', '')[:10]}" for index, name in enumerate(SECRET_NAMES)
    }
