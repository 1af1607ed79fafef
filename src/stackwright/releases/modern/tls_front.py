"""The TLS front: HAProxy on the controller's external address serves every public endpoint over
HTTPS and hands each request to its service on the management address.

HAProxy, as kolla-ansible and OpenStack-Ansible do, rather than each service's own TLS: one
certificate in one place for Keystone, Nova, Placement, Glance, Neutron, the noVNC proxy (a
websocket) and the dashboard; one TLS configuration (TLS 1.2 at least); and plain HTTP on the
external address answered by a redirect for the dashboard, by nothing for the APIs. Glance runs as
an eventlet server and noVNC as websockify, which have no uwsgi socket options to share anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.dashboard import has_dashboard
from stackwright.releases.modern.files import rendered
from stackwright.releases.modern.guards import applied_when_unchanged
from stackwright.steps import File, Service, Step, Sysctl

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
DASHBOARD_PORT = 443


def packages(host: HostContext) -> tuple[str, ...]:
    return ("haproxy", "ca-certificates") if host.is_controller and host.tls_front else ()


def trust(host: HostContext) -> list[Step]:
    """The cloud's CA in the controller's trust, before any service starts (clients load the
    system bundle once, when they make their first TLS connection)."""
    if not (host.is_controller and host.tls_front and host.tls is not None):
        return []
    return [
        File(CA_TRUST, host.tls.ca_pem, format="text"),
        applied_when_unchanged(
            "the controller trusts the cloud's CA",
            "ca-trust",
            (CA_TRUST,),
            "update-ca-certificates --fresh >/dev/null",
        ),
    ]


def steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    if not (host.is_controller and host.tls_front):
        return []
    if host.tls is None:
        raise ValueError("the TLS front is on but the plan was given no certificate (LoadedInventory.tls)")
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
            apis=APIS,
            dashboard=has_dashboard(host.inventory) and release.traits.dashboard,
            pem=FRONT_PEM,
        ),
        Service("haproxy", restart_when=(HAPROXY_CFG, FRONT_PEM)),
    ]
