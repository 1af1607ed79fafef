"""The TLS front: HAProxy on the controller's external address serves every public endpoint over
HTTPS and hands each request to its service on the management address.

HAProxy, as kolla-ansible and OpenStack-Ansible do, rather than each service's own TLS: one
certificate in one place for Keystone, Nova, Placement, Glance, Neutron, the noVNC proxy (a
websocket) and the dashboard; one TLS configuration (TLS 1.2 at least); and plain HTTP on the
external address answered by a redirect for the dashboard, by nothing for the APIs. Glance runs as
an eventlet server and noVNC as websockify, which have no uwsgi socket options to share anyway.

With `tls: {internal: true}` the front serves the internal endpoints on the management address too,
the APIs and the dashboard move to 127.0.0.1 behind it, and every node trusts the cloud's CA (the
services' clients, keystoneauth through requests, read Debian's system bundle). Nova's metadata
API (8775) stays plain HTTP on management, as kolla-ansible leaves it by default: only the network
nodes' metadata agents reach it, and they sign every request with the shared metadata secret.

The front comes before the services behind it: with internal TLS, Keystone's bootstrap already
goes through it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.dashboard import has_dashboard
from stackwright.inventory import Inventory
from stackwright.releases.modern.files import rendered
from stackwright.releases.modern.guards import applied_when_unchanged
from stackwright.steps import Command, File, Service, Step, Sysctl

if TYPE_CHECKING:
    from stackwright.releases.base import Release

HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
FRONT_PEM = "/etc/haproxy/stackwright-front.pem"
# The controller trusts the front too: the admin's `openstack` there, doctor's probes of the
# public URLs (Python's default context reads the system bundle update-ca-certificates makes).
CA_TRUST = "/usr/local/share/ca-certificates/stackwright-cloud-ca.crt"
# (name, port): what the front serves on the external address, each from the same port on management.
APIS: tuple[tuple[str, int], ...] = (
    ("keystone", 5000),
    ("nova", 8774),
    ("placement", 8778),
    ("glance", 9292),
    ("neutron", 9696),
    ("novncproxy", 6080),
)
CINDER_API = ("cinder", 8776)  # with storage nodes
DASHBOARD_PORT = 443
DASHBOARD_REDIRECT_PORT = 80
# The units serving each port the front binds: they give the port up to it when the front moves
# onto their address (TLS turned on, or tls.internal).
UNITS = {
    5000: "keystone",
    8774: "nova-api",
    8778: "placement-api",
    9292: "glance-api",
    9696: "neutron-api",
    8776: "cinder-api",
    6080: "nova-novncproxy",
    DASHBOARD_PORT: "apache2",
    DASHBOARD_REDIRECT_PORT: "apache2",
}


def packages(host: HostContext) -> tuple[str, ...]:
    if host.is_controller and host.tls_front:
        return ("haproxy", "ca-certificates")
    return ("ca-certificates",) if host.internal_tls else ()


def trusts_ca(host: HostContext) -> bool:
    """The controller trusts the front's CA (its own clients of the public URLs), and with
    tls.internal every node does (its services reach the internal endpoints through the front)."""
    return host.internal_tls or (host.is_controller and host.tls_front)


def trust(host: HostContext) -> list[Step]:
    """The cloud's CA in the host's trust, before any service starts (clients load the system
    bundle once, when they make their first TLS connection)."""
    if not trusts_ca(host) or host.tls is None:
        return []
    return [
        File(CA_TRUST, host.tls.ca_pem, format="text"),
        applied_when_unchanged(
            "the host trusts the cloud's CA",
            "ca-trust",
            (CA_TRUST,),
            "update-ca-certificates --fresh >/dev/null",
        ),
    ]


def apis(inventory: Inventory) -> tuple[tuple[str, int], ...]:
    """(name, port) of the APIs the front serves: Cinder's too with storage nodes."""
    return APIS + ((CINDER_API,) if inventory.names_with("storage") else ())


def https_endpoints(inventory: Inventory, dashboard: bool) -> list[tuple[str, int]]:
    """(address, port) the front serves over HTTPS (what doctor's tls-front probes): every API,
    and the dashboard's 443, on the public address; every API on management too with tls.internal."""
    controller = inventory.controller
    public = str(controller.external or controller.management)
    ports = [port for _, port in apis(inventory)]
    found = [(public, port) for port in [*ports, *([DASHBOARD_PORT] if dashboard else [])]]
    if inventory.internal_tls:
        found += [(str(controller.management), port) for port in ports]
    return found


def binds(host: HostContext, dashboard: bool) -> list[tuple[str, int]]:
    """(address, port) HAProxy listens on: its HTTPS endpoints and the dashboard's plain-HTTP
    redirect."""
    redirect = [(host.controller_public_ip, DASHBOARD_REDIRECT_PORT)] if dashboard else []
    return https_endpoints(host.inventory, dashboard) + redirect


def free_ports(bound: list[tuple[str, int]]) -> Command:
    """Stop the services still holding an address and port the front is to bind (they listened
    there before TLS, or before tls.internal); their own steps start them again on their new
    address. Skipped while nothing but HAProxy holds one (every apply after the first)."""
    ports = sorted({port for _, port in bound})
    addresses = [*sorted({address for address, _ in bound}), "0.0.0.0", "*", "[::]"]
    sport = " or ".join(f"sport = :{port}" for port in ports)
    local = "|".join(re.escape(address) for address in addresses)
    holders = f"ss -Hltnp '( {sport} )' | awk '$4 ~ /^({local}):/ && !/\"haproxy\"/'"
    units = tuple(dict.fromkeys(UNITS[port] for port in ports))
    return Command(
        "services give the TLS front's addresses up to it",
        ("systemctl", "stop", *units),
        unless=f'test -z "$({holders})"',
    )


def steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    if not host.is_controller:
        return []
    if not host.tls_front:
        # TLS turned off: HAProxy (if an earlier apply installed it) gives the ports back.
        return [Service("haproxy", enabled=False, running=False)]
    if host.tls is None:
        raise ValueError("the TLS front is on but the plan was given no certificate (LoadedInventory.tls)")
    dashboard = has_dashboard(host.inventory) and release.traits.dashboard
    bound = binds(host, dashboard)
    return [
        # HAProxy binds the external address whether or not it is up yet: at boot networkd (or OVS,
        # on a controller that is also the network node, where network_config moves the address to
        # br-ex after this) may bring it up after HAProxy starts (kolla sets the same).
        Sysctl("net.ipv4.ip_nonlocal_bind", "1"),
        File(FRONT_PEM, host.tls.bundle, mode=0o640, group="haproxy", secret=True, format="text"),
        rendered(
            release,
            host,
            pw,
            HAPROXY_CFG,
            format="text",
            apis=apis(host.inventory),
            dashboard=dashboard,
            pem=FRONT_PEM,
        ),
        free_ports(bound),
        Service("haproxy", restart_when=(HAPROXY_CFG, FRONT_PEM)),
    ]
