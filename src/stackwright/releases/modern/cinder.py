"""Cinder on the controller (with storage nodes): the API (uwsgi, as Debian ships it), the scheduler
and cinder-volume with the RBD driver; and the keyrings Glance and Cinder reach Ceph with.

cinder-volume runs on the controller, not on a storage node: with RBD it holds no data (librbd
talks to the OSDs; qemu reaches the volumes itself), so it needs the database, RabbitMQ and
Keystone next to it rather than the disks, and the storage nodes stay Ceph's alone (no OpenStack
service competing with the OSDs for memory, no database credentials on them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.ceph import cluster
from stackwright.context import HostContext
from stackwright.releases.modern import ceph as ceph_role
from stackwright.releases.modern.api import listen_default
from stackwright.releases.modern.files import rendered
from stackwright.releases.modern.guards import as_user, marker
from stackwright.steps import AwaitHost, Command, Service, Step

if TYPE_CHECKING:
    from stackwright.releases.base import Release

CINDER_CONF = "/etc/cinder/cinder.conf"
CINDER_API_UWSGI = "/etc/cinder/cinder-api-uwsgi.ini"
CINDER_API_LISTEN = "/etc/default/cinder-api"
CINDER_PORT = 8776


def packages() -> tuple[str, ...]:
    return ("cinder-api", "cinder-scheduler", "cinder-volume", *ceph_role.client_packages())


def steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    ceph = cluster(host.inventory, pw)
    assert ceph is not None  # only with storage nodes
    return [
        rendered(release, host, pw, CINDER_CONF, group="cinder", ceph=ceph),
        rendered(release, host, pw, CINDER_API_UWSGI),
        listen_default(release, host, "cinder-api", CINDER_PORT, CINDER_API_UWSGI, host.api_listen_ip),
        ceph_role.client_keyring(ceph_role.client_by_name("client.cinder"), pw, group="cinder"),
        Command(
            "Cinder database schema",
            as_user("cinder", "cinder-manage db sync"),
            once_marker=marker(release, "cinder-db-sync"),
        ),
        Service("cinder-api", restart_when=(CINDER_CONF, CINDER_API_UWSGI, CINDER_API_LISTEN)),
        Service("cinder-scheduler", restart_when=(CINDER_CONF,)),
        # Its driver connects to the cluster once, at start: after the pools and its user exist.
        AwaitHost(ceph.first_monitor, ceph_role.CEPH_READY),
        Service("cinder-volume", restart_when=(CINDER_CONF, ceph_role.CEPH_CONF)),
    ]


def glance_keyring(host: HostContext, pw: Mapping[str, str]) -> list[Step]:
    """Glance's key to the `images` pool (glance-api.conf names the store when there is a cluster)."""
    if cluster(host.inventory, pw) is None:
        return []
    return [ceph_role.client_keyring(ceph_role.client_by_name("client.glance"), pw, group="glance")]
