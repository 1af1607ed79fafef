"""The guide's files per role (grizzly, render only).

The OpenStack Grizzly Install Guide (OVS multi-node, Ubuntu 12.04) edits these files on
each node; every file here is rendered from one template named after it, with the
guide's values taken from the inventory (addresses, tenant_network_type) and the
passwords (the guide's `service_pass`, `novaPass`, `helloOpenStack`, ...). A host with
several roles gets each file once: the first role that names a path renders it, and
the templates look at all of the host's roles (e.g. local_ip on any agent host).

Nothing here can be applied (`Release.debian is None`): it is for reading side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from stackwright.context import HostContext
from stackwright.steps import File, OvsBridge, Packages, Step

if TYPE_CHECKING:
    from stackwright.releases.base import Release


@dataclass(frozen=True)
class GuideFile:
    """One file the guide writes or edits, and the template that renders it."""

    path: str
    template: str
    format: Literal["ini", "text"] = "text"
    secret: bool = False
    mode: int = 0o644
    group: str = "root"


def _ini(path: str, template: str, *, secret: bool = False) -> GuideFile:
    """An INI file; one holding passwords is 0640 root:<service> (the service is /etc/<service>/)."""
    if not secret:
        return GuideFile(path, template, "ini")
    return GuideFile(path, template, "ini", secret=True, mode=0o640, group=path.split("/")[2])


NTP_CONF = GuideFile("/etc/ntp.conf", "ntp.conf.j2")
SYSCTL_CONF = GuideFile("/etc/sysctl.conf", "sysctl.conf.j2")
INTERFACES = GuideFile("/etc/network/interfaces", "interfaces.j2")
OVS_PLUGIN_INI = _ini(
    "/etc/quantum/plugins/openvswitch/ovs_quantum_plugin.ini", "ovs_quantum_plugin.ini.j2", secret=True
)
QUANTUM_CONF = _ini("/etc/quantum/quantum.conf", "quantum.conf.j2", secret=True)
QUANTUM_API_PASTE = _ini("/etc/quantum/api-paste.ini", "quantum-api-paste.ini.j2", secret=True)
NOVA_API_PASTE = _ini("/etc/nova/api-paste.ini", "nova-api-paste.ini.j2", secret=True)
NOVA_CONF = _ini("/etc/nova/nova.conf", "nova.conf.j2", secret=True)

# Every node (the guide's "Preparing the node" and "Networking" steps).
COMMON_FILES: tuple[GuideFile, ...] = (NTP_CONF, SYSCTL_CONF, INTERFACES)
COMMON_PACKAGES: tuple[str, ...] = ("ntp", "vlan", "bridge-utils")

CONTROLLER_FILES: tuple[GuideFile, ...] = (
    _ini("/etc/mysql/my.cnf", "my.cnf.j2"),
    _ini("/etc/keystone/keystone.conf", "keystone.conf.j2", secret=True),
    _ini("/etc/glance/glance-api-paste.ini", "glance-api-paste.ini.j2", secret=True),
    _ini("/etc/glance/glance-registry-paste.ini", "glance-registry-paste.ini.j2", secret=True),
    _ini("/etc/glance/glance-api.conf", "glance-api.conf.j2", secret=True),
    _ini("/etc/glance/glance-registry.conf", "glance-registry.conf.j2", secret=True),
    OVS_PLUGIN_INI,
    QUANTUM_API_PASTE,
    QUANTUM_CONF,
    NOVA_API_PASTE,
    NOVA_CONF,
)
CONTROLLER_PACKAGES: tuple[str, ...] = (
    "mysql-server",
    "python-mysqldb",
    "rabbitmq-server",
    "keystone",
    "glance",
    "quantum-server",
    "nova-api",
    "nova-cert",
    "novnc",
    "nova-consoleauth",
    "nova-scheduler",
    "nova-novncproxy",
    "nova-doc",
    "nova-conductor",
)

NETWORK_FILES: tuple[GuideFile, ...] = (
    QUANTUM_API_PASTE,
    OVS_PLUGIN_INI,
    _ini("/etc/quantum/metadata_agent.ini", "metadata_agent.ini.j2", secret=True),
    QUANTUM_CONF,
    GuideFile("/etc/sudoers.d/quantum_sudoers", "quantum_sudoers.j2", mode=0o440),
)
NETWORK_PACKAGES: tuple[str, ...] = (
    "openvswitch-switch",
    "openvswitch-datapath-dkms",
    "quantum-plugin-openvswitch-agent",
    "quantum-dhcp-agent",
    "quantum-l3-agent",
    "quantum-metadata-agent",
)

COMPUTE_FILES: tuple[GuideFile, ...] = (
    GuideFile("/etc/libvirt/qemu.conf", "qemu.conf.j2"),
    GuideFile("/etc/libvirt/libvirtd.conf", "libvirtd.conf.j2"),
    GuideFile("/etc/init/libvirt-bin.conf", "libvirt-bin.conf.j2"),
    GuideFile("/etc/default/libvirt-bin", "default-libvirt-bin.j2"),
    OVS_PLUGIN_INI,
    QUANTUM_CONF,
    NOVA_API_PASTE,
    _ini("/etc/nova/nova-compute.conf", "nova-compute.conf.j2"),
    NOVA_CONF,
)
COMPUTE_PACKAGES: tuple[str, ...] = (
    "cpu-checker",
    "kvm",
    "libvirt-bin",
    "pm-utils",
    "openvswitch-switch",
    "openvswitch-datapath-dkms",
    "quantum-plugin-openvswitch-agent",
    "nova-compute-kvm",
)


def role_files(host: HostContext) -> list[GuideFile]:
    """The host's files in guide order (common, controller, network, compute), each path once."""
    groups: list[tuple[GuideFile, ...]] = [COMMON_FILES]
    if host.is_controller:
        groups.append(CONTROLLER_FILES)
    if host.is_network:
        groups.append(NETWORK_FILES)
    if host.is_compute:
        groups.append(COMPUTE_FILES)
    chosen: dict[str, GuideFile] = {}
    for group in groups:
        for guide_file in group:
            chosen.setdefault(guide_file.path, guide_file)
    return list(chosen.values())


def role_packages(host: HostContext) -> tuple[str, ...]:
    groups: list[tuple[str, ...]] = [COMMON_PACKAGES]
    if host.is_controller:
        groups.append(CONTROLLER_PACKAGES)
    if host.is_network:
        groups.append(NETWORK_PACKAGES)
    if host.is_compute:
        groups.append(COMPUTE_PACKAGES)
    names: list[str] = []
    for group in groups:
        names.extend(n for n in group if n not in names)
    return tuple(names)


def ovs_bridges(host: HostContext) -> list[OvsBridge]:
    """br-int on agent hosts; br-ex holding the external NIC on the network node."""
    bridges: list[OvsBridge] = []
    if host.is_network or host.is_compute:
        bridges.append(OvsBridge("br-int"))
    if host.is_network and host.external_ip:
        bridges.append(OvsBridge("br-ex", ports=(host.interface("external").name,)))
    return bridges


def host_steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    steps: list[Step] = [Packages(role_packages(host))]
    steps += ovs_bridges(host)
    for guide_file in role_files(host):
        steps.append(
            File(
                guide_file.path,
                release.render(guide_file.template, host, pw).rstrip("\n") + "\n",
                mode=guide_file.mode,
                group=guide_file.group,
                secret=guide_file.secret,
                format=guide_file.format,
            )
        )
    return steps
