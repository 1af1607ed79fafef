"""What the deployable releases (Zed on Debian 12, Epoxy on Debian 13, ...) share: Debian's own
OpenStack packages, uwsgi APIs, cells v2, Placement, ML2 with the Open vSwitch agent.

A role is a short list of named step builders (`controller.py`, `network.py`, `compute.py`,
`common.py`); `templates/` holds one template per file produced. Where releases differ, the code
reads the release's row of `release_table.py` (`release.traits` in Python, `release` in
templates), which is the one place that says what a release changes.
"""

from __future__ import annotations

from pathlib import Path

from stackwright.release_table import ReleaseTraits
from stackwright.releases.base import Release

TEMPLATES = Path(__file__).parent / "templates"


def modern_release(traits: ReleaseTraits) -> Release:
    from stackwright.releases.modern.cluster import cluster_after
    from stackwright.releases.modern.host import host_steps

    return Release(traits=traits, templates_dir=TEMPLATES, host_steps=host_steps, cluster_after=cluster_after)
