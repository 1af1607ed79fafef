"""The order in which a host's roles are converged (every modern release).

One host, one plan: a node holding several roles (the all-in-one holds all three) gets
each file once, rendered with all its roles in view, and one package installation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.releases.modern import (
    apt_node,
    ceph,
    common,
    compute,
    controller,
    guards,
    network,
    nftables,
    tls_front,
)
from stackwright.steps import File, Packages, Step

if TYPE_CHECKING:
    from stackwright.releases.base import Release


def packages(host: HostContext) -> tuple[str, ...]:
    names = [*apt_node.packages(host), *common.packages(host), *nftables.packages(host)]
    if host.is_controller:
        names += controller.packages(host)
    names += tls_front.packages(host)
    if host.is_network:
        names += network.packages(host)
    if host.is_compute:
        names += compute.packages(host)
    if host.is_storage:
        names += ceph.packages(host)
    return tuple(dict.fromkeys(names))


def host_steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    steps = apt_node.preparation(host)  # before the first Packages step: converged before apt runs
    if host.is_package_cache:
        # the cache first, behind the firewall like every service of ours, then apt through it
        first = apt_node.packages(host) + nftables.packages(host)
        steps += [Packages(first), *guards.state_directories(), *nftables.steps(host, release, pw)]
        steps += apt_node.cache(host, release, pw)
    steps += [Packages(packages(host))]
    steps += guards.state_directories()
    steps += nftables.steps(host, release, pw)  # before any service of ours listens
    steps += common.base(host, release, pw)
    steps += tls_front.trust(host)
    steps += tls_front.steps(host, release, pw)  # before the services behind it (tls_front.py)
    if host.is_storage:
        # before the controller's part on an all-in-one: cinder-volume awaits its pools
        steps += ceph.steps(host, release, pw)
    if host.is_controller:
        steps += controller.steps(host, release, pw)
    if host.is_network:
        steps += network.steps(host, release, pw)
    if host.is_compute:
        steps += compute.steps(host, release, pw)
    steps += common.network_config(host, release, pw)  # last: it can cut the host off
    return once_each(steps)


def once_each(steps: Iterable[Step]) -> list[Step]:
    """Keep the first of identical steps (a file two roles share); a path twice with
    different content is a bug in the release, not something to guess about."""
    kept: list[Step] = []
    files: dict[str, File] = {}
    for step in steps:
        if isinstance(step, File):
            if step.path in files:
                if files[step.path] != step:
                    raise ValueError(f"two different versions of {step.path} in one host's plan")
                continue
            files[step.path] = step
        elif step in kept:
            continue
        kept.append(step)
    return kept
