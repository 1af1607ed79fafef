"""Release name -> `Release` (the steps and templates the planner uses)."""

from __future__ import annotations

import functools

from stackwright.release_table import ALL, DEPLOYABLE
from stackwright.releases.base import Release


@functools.cache
def get_release(name: str) -> Release:
    """The release called `name`; callers validate the name first (KNOWN_RELEASES)."""
    if name in DEPLOYABLE:
        from stackwright.releases.modern import modern_release

        return modern_release(DEPLOYABLE[name])
    if name in ALL:
        from stackwright.releases.grizzly import RELEASE

        return RELEASE
    raise KeyError(name)
