"""The order in which a host's roles are converged (zed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.releases.zed import common
from stackwright.steps import Step

if TYPE_CHECKING:
    from stackwright.releases.base import Release


def host_steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    steps: list[Step] = []
    steps += common.base(host, release, pw)
    steps += common.network_config(host, release, pw)  # last: it can cut the host off
    return steps
