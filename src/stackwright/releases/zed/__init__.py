"""OpenStack Zed on Debian 12 (bookworm): nova 26, neutron 21, keystone 22, glance 25, placement 8."""

from __future__ import annotations

from pathlib import Path

from stackwright.releases.base import Release
from stackwright.releases.zed.cluster import cluster_after
from stackwright.releases.zed.host import host_steps

RELEASE = Release(
    name="zed",
    debian="bookworm",
    templates_dir=Path(__file__).parent / "templates",
    host_steps=host_steps,
    description="OpenStack Zed from Debian 12's own packages",
    cluster_after=cluster_after,
)
