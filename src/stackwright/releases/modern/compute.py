"""A compute node: libvirt (the guide's qemu.conf, libvirtd listening for live migration,
its default network removed), Open vSwitch with the neutron agent, and nova-compute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.releases.modern import neutron, nova, nova_ssh
from stackwright.releases.modern.files import rendered
from stackwright.releases.modern.guards import SECRETS_DIR, applied_when_unchanged
from stackwright.sinks import single_line
from stackwright.steps import Command, Directory, File, Service, Step

if TYPE_CHECKING:
    from stackwright.releases.base import Release

QEMU_CONF = "/etc/libvirt/qemu.conf"
LIBVIRTD_CONF = "/etc/libvirt/libvirtd.conf"
LIBVIRTD_DEFAULT = "/etc/default/libvirtd"
LIBVIRT_SASL_CONF = "/etc/sasl2/libvirt.conf"
LIBVIRT_SASL_DB = "/etc/libvirt/passwd.db"
LIBVIRT_AUTH_CONF = "/etc/libvirt/auth.conf"
SASL_PASSWORD = f"{SECRETS_DIR}/libvirt-sasl.password"
SOCKET_DROPIN = "/etc/systemd/system/libvirtd.socket.d/stackwright.conf"
TCP_SOCKET_DROPIN = "/etc/systemd/system/libvirtd-tcp.socket.d/stackwright.conf"
BR_NETFILTER = "/etc/modules-load.d/neutron-br_netfilter.conf"
INSTANCES_DIR = "/var/lib/nova/instances"
LIBVIRT_PORT = 16509
SASL_USER = "nova"


# Programs nova-compute runs for a feature users reach through the API, and the Debian package that
# ships each (only recommended by nova-compute, so a no-recommends install lacks them): doctor's
# `compute-tools` check looks for them on every compute node.
COMPUTE_TOOLS: dict[str, tuple[str, str]] = {
    "genisoimage": ("genisoimage", "config drives (`openstack server create --config-drive true`)"),
    "qemu-img": ("qemu-utils", "image conversion, snapshots and resizes"),
}


def packages(host: HostContext) -> tuple[str, ...]:
    return (
        *nova.compute_packages(),
        *(package for package, _ in COMPUTE_TOOLS.values()),
        *nova_ssh.packages(),
        *neutron.l2_packages(),
        # saslpasswd2, and the digest-md5 mechanism libvirtd's TCP socket uses.
        "sasl2-bin",
        "libsasl2-modules",
        *(("ethtool",) if host.ovs_datapath == "netdev" else ()),
    )


def steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        *bridge_netfilter(host),
        *libvirt(host, release, pw),
        Directory(INSTANCES_DIR, mode=0o755, owner="nova", group="nova"),
        *nova_ssh.steps(host, pw),
        *neutron.l2_agent(host, release, pw),
        *userspace_ovs_checksums(host, release, pw),
        *nova.compute(host, release, pw),
    ]


VETH_CSUM_SCRIPT = "/usr/local/sbin/stackwright-veth-csum"
VETH_CSUM_UNIT = "/etc/systemd/system/stackwright-veth-csum.service"


def userspace_ovs_checksums(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    """Guest TCP through userspace OVS needs its checksums filled in (see the script's header)."""
    if host.ovs_datapath != "netdev":
        return []
    return [
        rendered(
            release,
            host,
            pw,
            VETH_CSUM_SCRIPT,
            template="stackwright-veth-csum.j2",
            mode=0o755,
            format="text",
        ),
        rendered(
            release, host, pw, VETH_CSUM_UNIT, template="stackwright-veth-csum.service.j2", format="text"
        ),
        Service("stackwright-veth-csum", restart_when=(VETH_CSUM_SCRIPT, VETH_CSUM_UNIT)),
    ]


def bridge_netfilter(host: HostContext) -> list[Step]:
    """iptables_hybrid filters guest traffic on Linux bridges (qbr*): it needs br_netfilter."""
    steps: list[Step] = [File(BR_NETFILTER, "br_netfilter\n")]
    if not host.containerized:  # a container cannot load modules; its host kernel decides
        steps.append(
            Command(
                "load br_netfilter now (modules-load.d loads it at boot)",
                ("modprobe", "br_netfilter"),
                unless="test -d /proc/sys/net/bridge",
            )
        )
    return steps


def sockets_bound(host: HostContext) -> str:
    """True when the unix socket is root:libvirt 0660 and TCP listens on management only."""
    return (
        'test "$(stat -c %a:%G /run/libvirt/libvirt-sock 2>/dev/null)" = 660:libvirt'
        f" && test \"$(ss -Hltn 'sport = :{LIBVIRT_PORT}' | awk '{{print $4}}')\""
        f" = {host.management_ip}:{LIBVIRT_PORT}"
        " && ! systemctl show -P NeedDaemonReload libvirtd.socket libvirtd-tcp.socket | grep -qx yes"
    )


def libvirt(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    daemon_files = (LIBVIRTD_CONF, QEMU_CONF, LIBVIRT_SASL_CONF, LIBVIRTD_DEFAULT)
    return [
        rendered(release, host, pw, QEMU_CONF, mode=0o600, format="text"),
        rendered(release, host, pw, LIBVIRTD_CONF, format="text"),
        rendered(release, host, pw, LIBVIRT_SASL_CONF, template="libvirt-sasl.conf.j2", format="text"),
        rendered(release, host, pw, LIBVIRTD_DEFAULT, template="libvirtd.default.j2", format="text"),
        rendered(release, host, pw, SOCKET_DROPIN, template="libvirtd.socket.conf.j2", format="text"),
        rendered(release, host, pw, TCP_SOCKET_DROPIN, template="libvirtd-tcp.socket.conf.j2", format="text"),
        # Debian 12's libvirtd is socket-activated (`--listen` is refused then). A socket
        # cannot be (re)started while libvirtd.service runs ("Socket service ... already
        # active, refusing"), so libvirtd stops for the moment it takes; guests keep running.
        Command(
            "libvirtd sockets: unix root:libvirt 0660, TCP on the management address",
            (
                "sh",
                "-c",
                "set -e\n"
                "systemctl daemon-reload\n"
                "systemctl stop libvirtd.service\n"
                "systemctl restart libvirtd.socket libvirtd-tcp.socket\n"
                "systemctl start libvirtd.service",
            ),
            unless=sockets_bound(host),
        ),
        Service("libvirtd-tcp.socket"),
        Service("libvirtd", restart_when=daemon_files),
        # nova manages its guests; libvirt-guests would hold host shutdown 300 s (DESIGN §5b).
        Service("libvirt-guests", enabled=False, running=False),
        Command(
            "remove libvirt's default network (neutron provides the guests' networks)",
            ("sh", "-c", "virsh net-destroy default >/dev/null 2>&1 || true\nvirsh net-undefine default"),
            unless="! virsh net-uuid default >/dev/null 2>&1",
        ),
        File(
            SASL_PASSWORD,
            single_line(pw["libvirt_sasl_password"], "libvirt_sasl_password"),
            mode=0o600,
            secret=True,
        ),
        applied_when_unchanged(
            f"libvirt SASL user '{SASL_USER}' for live migration",
            "libvirt-sasl-user",
            (SASL_PASSWORD,),
            f"saslpasswd2 -p -c -a libvirt -f {LIBVIRT_SASL_DB} {SASL_USER} < {SASL_PASSWORD}",
        ),
        rendered(
            release, host, pw, LIBVIRT_AUTH_CONF, template="libvirt-auth.conf.j2", group="nova", format="text"
        ),
    ]
