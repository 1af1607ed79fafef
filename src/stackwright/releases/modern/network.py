"""The network node: Open vSwitch with br-ex holding the external NIC, and the agents
that give project networks their DHCP, routers and metadata proxy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.releases.modern import neutron
from stackwright.steps import Step

if TYPE_CHECKING:
    from stackwright.releases.base import Release


def packages(host: HostContext) -> tuple[str, ...]:
    return (*neutron.l2_packages(), *neutron.network_packages())


def steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        *neutron.l2_agent(host, release, pw),
        *neutron.network_agents(host, release, pw),
    ]
