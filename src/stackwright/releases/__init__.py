"""Release knowledge: what each OpenStack release installs, writes and runs.

Each release is a subpackage (`zed`, `grizzly`) exposing `RELEASE`, a `Release` object.
Importing this package stays cheap; a release's module is imported only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

KNOWN_RELEASES: tuple[str, ...] = ("zed", "grizzly")

if TYPE_CHECKING:
    from stackwright.releases.base import Release


def get_release(name: str) -> Release:
    """The release called `name`; callers validate the name first (KNOWN_RELEASES)."""
    if name not in KNOWN_RELEASES:
        raise KeyError(name)
    module = importlib.import_module(f"stackwright.releases.{name}")
    release: Release = module.RELEASE
    return release
