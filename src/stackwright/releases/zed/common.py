"""Every node: time, forwarding, base tools and its network configuration (the guide's node prep)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.netconfig import plain_networkd_files
from stackwright.steps import File, Packages, Service, Step, Sysctl

if TYPE_CHECKING:
    from stackwright.releases.base import Release

CHRONY_CONF = "/etc/chrony/chrony.conf"


def base(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        Packages(("chrony", "vlan", "bridge-utils")),
        Sysctl("net.ipv4.ip_forward", "1"),
        File(CHRONY_CONF, release.render("chrony.conf.j2", host, pw)),
        Service("chrony", restart_when=(CHRONY_CONF,)),
    ]


def network_config(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    files = plain_networkd_files(host)
    return [File(path, content) for path, content in files.items()] + [
        Service("systemd-networkd", restart_when=tuple(files))
    ]
