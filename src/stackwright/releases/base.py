"""What a release provides to the planner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackwright.context import HostContext
from stackwright.inventory import Inventory
from stackwright.release_table import ReleaseTraits
from stackwright.render import render_template
from stackwright.steps import AfterSteps, HostPlan, Step


@dataclass(frozen=True)
class Release:
    """One OpenStack release on one Debian release.

    `host_steps(host, release, passwords)` returns the host's ordered steps for all its roles.
    `cluster_after(inventory, release, passwords, host_plans)` returns ClusterPlan.after.
    `traits` is the release's row of `release_table.py` (what differs between releases); templates see
    it as `release`.
    """

    traits: ReleaseTraits
    templates_dir: Path
    host_steps: Callable[[HostContext, Release, Mapping[str, str]], list[Step]]
    # Steps that run on one host after others converged, e.g. discover_hosts on the controller.
    cluster_after: (
        Callable[[Inventory, Release, Mapping[str, str], Mapping[str, HostPlan]], AfterSteps] | None
    ) = None

    @property
    def name(self) -> str:
        return self.traits.name

    @property
    def debian(self) -> str | None:
        """The Debian codename whose packages it installs; None means render only."""
        return self.traits.debian

    @property
    def description(self) -> str:
        return self.traits.description

    @property
    def applicable(self) -> bool:
        return self.debian is not None

    def render(self, template: str, host: HostContext, pw: Mapping[str, str], **extra: Any) -> str:
        return render_template(self.templates_dir, template, host=host, pw=pw, release=self.traits, **extra)
