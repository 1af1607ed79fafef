"""The guide's files per role (grizzly, render only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.steps import Step

if TYPE_CHECKING:
    from stackwright.releases.base import Release


def host_steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return []
