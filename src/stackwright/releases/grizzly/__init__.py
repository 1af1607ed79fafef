"""OpenStack Grizzly on Ubuntu 12.04, as the guide wrote it: render only (nothing can install it today)."""

from __future__ import annotations

from pathlib import Path

from stackwright.release_table import GRIZZLY
from stackwright.releases.base import Release
from stackwright.releases.grizzly.host import host_steps

RELEASE = Release(traits=GRIZZLY, templates_dir=Path(__file__).parent / "templates", host_steps=host_steps)
