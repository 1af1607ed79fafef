"""A compute node: libvirt (the guide's qemu.conf, libvirtd's TLS listener for live migration,
its default network removed), Open vSwitch with the neutron agent, and nova-compute."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.ceph import CINDER_SECRET_NAME, cluster, has_storage
from stackwright.context import HostContext
from stackwright.releases.modern import ceph as ceph_role
from stackwright.releases.modern import neutron, nova, nova_ssh
from stackwright.releases.modern.files import rendered
from stackwright.releases.modern.guards import SECRETS_DIR
from stackwright.releases.modern.sockets import listening, rebind
from stackwright.sinks import cephx_key
from stackwright.steps import Command, Directory, File, Service, Step

if TYPE_CHECKING:
    from stackwright.releases.base import Release

QEMU_CONF = "/etc/libvirt/qemu.conf"
LIBVIRTD_CONF = "/etc/libvirt/libvirtd.conf"
LIBVIRTD_DEFAULT = "/etc/default/libvirtd"
SOCKET_DROPIN = "/etc/systemd/system/libvirtd.socket.d/stackwright.conf"
RO_SOCKET_DROPIN = "/etc/systemd/system/libvirtd-ro.socket.d/stackwright.conf"
TLS_SOCKET_DROPIN = "/etc/systemd/system/libvirtd-tls.socket.d/stackwright.conf"
TCP_DROPIN_DIR = "/etc/systemd/system/libvirtd-tcp.socket.d"
BR_NETFILTER = "/etc/modules-load.d/neutron-br_netfilter.conf"
INSTANCES_DIR = "/var/lib/nova/instances"
LIBVIRT_TLS_PORT = 16514
LIBVIRT_TCP_PORT = 16509  # the seed's listener: nothing may listen there now
# libvirt's default certificate paths (libvirtd serves and, migrating, connects to its peers with
# them), and QEMU's (default_tls_x509_cert_dir): QEMU runs as libvirt-qemu and reads its own.
LIBVIRT_CA = "/etc/pki/CA/cacert.pem"
LIBVIRT_CERTS = (
    ("/etc/pki/libvirt/servercert.pem", "/etc/pki/libvirt/private/serverkey.pem"),
    ("/etc/pki/libvirt/clientcert.pem", "/etc/pki/libvirt/private/clientkey.pem"),
)
QEMU_PKI = "/etc/pki/qemu"
QEMU_GROUP = "libvirt-qemu"
# What the SASL listener (stackwright before TLS migration) left: its credentials, its password
# database and the TCP socket's drop-in.
SASL_LEFTOVERS = (
    "/etc/sasl2/libvirt.conf",
    "/etc/libvirt/passwd.db",
    "/etc/libvirt/auth.conf",
    f"{SECRETS_DIR}/libvirt-sasl.password",
    f"{TCP_DROPIN_DIR}/stackwright.conf",
)


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
        *(("ethtool",) if host.ovs_datapath == "netdev" else ()),
        *ceph_packages(host),
    )


def ceph_packages(host: HostContext) -> tuple[str, ...]:
    """qemu's RBD driver (userspace librbd: no kernel module) opens volumes with what the libvirt
    secret and the disk's XML say; nova-compute itself needs the Ceph client (`rbd import`:
    ceph-common, 11 packages and 60 MB on Debian 13) only when servers' disks are in Ceph too."""
    if not has_storage(host.inventory):
        return ()
    if host.inventory.ceph.vm_disks == "rbd":
        return ("qemu-block-extra", *ceph_role.client_packages())
    return ("qemu-block-extra",)


def steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        *bridge_netfilter(host),
        *libvirt(host, release, pw),
        *ceph_client(host, release, pw),
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
    """True when the unix sockets are root:libvirt 0660, TLS listens on management only and
    nothing listens on libvirt's TCP port."""
    return (
        'test "$(stat -c %a:%G /run/libvirt/libvirt-sock /run/libvirt/libvirt-sock-ro 2>/dev/null'
        " | paste -sd ' ')\" = '660:libvirt 660:libvirt'"
        f" && {listening(LIBVIRT_TLS_PORT, (host.management_ip,))} && {listening(LIBVIRT_TCP_PORT, ())}"
    )


def migration_certificates(host: HostContext) -> list[Step]:
    """The node's certificate, key and CA where libvirtd and QEMU look for them."""
    cert = host.migration_cert
    if cert is None:
        raise ValueError(f"{host.name} is a compute node but the plan was given no migration certificate")
    qemu = (
        ("ca-cert.pem", cert.ca_pem, False),
        ("server-cert.pem", cert.cert_pem, False),
        ("server-key.pem", cert.key_pem, True),
        ("client-cert.pem", cert.cert_pem, False),
        ("client-key.pem", cert.key_pem, True),
    )
    return [
        Directory("/etc/pki"),
        Directory("/etc/pki/CA"),
        Directory("/etc/pki/libvirt"),
        Directory("/etc/pki/libvirt/private", mode=0o700),
        Directory(QEMU_PKI, mode=0o750, group=QEMU_GROUP),
        File(LIBVIRT_CA, cert.ca_pem),
        *(File(cert_path, cert.cert_pem) for cert_path, _ in LIBVIRT_CERTS),
        *(File(key_path, cert.key_pem, mode=0o600, secret=True) for _, key_path in LIBVIRT_CERTS),
        *(
            File(f"{QEMU_PKI}/{name}", text, mode=0o640, group=QEMU_GROUP, secret=secret)
            for name, text, secret in qemu
        ),
    ]


def certificate_paths() -> tuple[str, ...]:
    """The files libvirtd reads when it starts: a new certificate restarts it."""
    return (LIBVIRT_CA, *(path for pair in LIBVIRT_CERTS for path in pair))


def libvirt(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    daemon_files = (LIBVIRTD_CONF, QEMU_CONF, LIBVIRTD_DEFAULT, *certificate_paths())
    leftovers = " ".join(SASL_LEFTOVERS)
    return [
        Command(
            "remove the SASL migration credentials and the TCP listener's drop-in (TLS replaced them)",
            (
                "sh",
                "-c",
                f"rm -f {leftovers}\n"
                f"if [ -d {TCP_DROPIN_DIR} ]; then rmdir --ignore-fail-on-non-empty {TCP_DROPIN_DIR}; fi",
            ),
            unless=" && ".join(f"! test -e {path}" for path in SASL_LEFTOVERS),
        ),
        *migration_certificates(host),
        rendered(release, host, pw, QEMU_CONF, mode=0o600, format="text"),
        rendered(release, host, pw, LIBVIRTD_CONF, format="text"),
        rendered(release, host, pw, LIBVIRTD_DEFAULT, template="libvirtd.default.j2", format="text"),
        rendered(release, host, pw, SOCKET_DROPIN, template="libvirtd.socket.conf.j2", format="text"),
        rendered(release, host, pw, RO_SOCKET_DROPIN, template="libvirtd-ro.socket.conf.j2", format="text"),
        rendered(release, host, pw, TLS_SOCKET_DROPIN, template="libvirtd-tls.socket.conf.j2", format="text"),
        # Debian's libvirtd is socket-activated (`--listen` is refused then); guests keep running
        # while it stops for the moment the rebind takes.
        rebind(
            "libvirtd sockets: unix ones root:libvirt 0660, TLS on the management address, no TCP",
            "libvirtd.service",
            ("libvirtd.socket", "libvirtd-ro.socket", "libvirtd-tls.socket"),
            sockets_bound(host),
            also_stop=("libvirtd-tcp.socket",),
            start_service=True,
        ),
        Service("libvirtd-tls.socket"),
        Service("libvirtd-tcp.socket", enabled=False, running=False),
        Service("libvirtd", restart_when=daemon_files),
        # nova manages its guests; libvirt-guests would hold host shutdown 300 s (DESIGN §5b).
        Service("libvirt-guests", enabled=False, running=False),
        Command(
            "remove libvirt's default network (neutron provides the guests' networks)",
            ("sh", "-c", "virsh net-destroy default >/dev/null 2>&1 || true\nvirsh net-undefine default"),
            unless="! virsh net-uuid default >/dev/null 2>&1",
        ),
    ]


LIBVIRT_SECRET_XML = f"{SECRETS_DIR}/libvirt-ceph-secret.xml"
LIBVIRT_SECRET_VALUE = f"{SECRETS_DIR}/libvirt-ceph-secret.key"


def secret_matches(uuid: str) -> str:
    """True when libvirt holds client.cinder's key under the uuid (what qemu authenticates with)."""
    return f'test "$(virsh secret-get-value {uuid} 2>/dev/null)" = "$(cat {LIBVIRT_SECRET_VALUE})"'


def define_secret(uuid: str) -> str:
    """libvirt's secret defined and set to client.cinder's key from the files apply wrote."""
    return (
        f"virsh -q secret-define {LIBVIRT_SECRET_XML} >/dev/null && "
        f"virsh -q secret-set-value --secret {uuid} --file {LIBVIRT_SECRET_VALUE} >/dev/null"
    )


def ceph_client(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    """ceph.conf, and libvirt's secret holding client.cinder's key: qemu opens volumes (and with
    vm_disks: rbd, servers' disks) in Ceph with it; nova-compute gets the keyring itself only when
    it keeps servers' disks there. Not private: doctor compares it with the passwords file's key."""
    ceph = cluster(host.inventory, pw)
    if ceph is None:
        return []
    uuid = ceph.libvirt_secret_uuid
    xml = (
        "<secret ephemeral='no' private='no'>\n"
        f"  <uuid>{uuid}</uuid>\n"
        f"  <usage type='ceph'><name>{CINDER_SECRET_NAME}</name></usage>\n"
        "</secret>\n"
    )
    cinder = ceph_role.client_by_name("client.cinder")
    return [
        *ceph_role.client(host, release, pw),
        *([ceph_role.client_keyring(cinder, pw, group="nova")] if ceph.vm_disks == "rbd" else []),
        File(LIBVIRT_SECRET_XML, xml, mode=0o600),
        File(LIBVIRT_SECRET_VALUE, cephx_key(pw[cinder.key_name], cinder.key_name), mode=0o600, secret=True),
        Command(
            "libvirt secret with client.cinder's key (qemu's access to Ceph)",
            ("sh", "-c", define_secret(uuid)),
            unless=secret_matches(uuid),
        ),
    ]
