"""Nova: the controller's API, conductor, scheduler and console proxy, and nova-compute.

nova.conf is one file per host, rendered with all the host's roles in view (an
all-in-one node gets the controller's and the compute node's sections in it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.ceph import cluster
from stackwright.context import HostContext
from stackwright.releases.modern.api import listen_default
from stackwright.releases.modern.ceph import CEPH_CONF, CEPH_READY
from stackwright.releases.modern.files import rendered
from stackwright.releases.modern.guards import as_user, marker
from stackwright.steps import AwaitHost, Command, File, Milestone, Service, Step

if TYPE_CHECKING:
    from stackwright.releases.base import Release

NOVA_CONF = "/etc/nova/nova.conf"
NOVA_COMPUTE_CONF = "/etc/nova/nova-compute.conf"
NOVA_COMPUTE_DROPIN = "/etc/systemd/system/nova-compute.service.d/stackwright.conf"
# nova-compute (Type=notify) reports started only once it reached nova-conductor and registered.
# Twenty compute nodes starting at once (benchmarks' fleet stage) queued at the conductor past
# systemd's default 90 s, and systemd killed them; a real fleet rollout does the same.
_NOVA_COMPUTE_TIMEOUT = """\
# Managed by stackwright: nova-compute is ready once nova-conductor answered; many nodes starting
# at once wait their turn there longer than systemd's default 90 s.
[Service]
TimeoutStartSec=300
"""
NOVA_API_UWSGI = "/etc/nova/nova-api-uwsgi.ini"
NOVA_METADATA_UWSGI = "/etc/nova/nova-api-metadata-uwsgi.ini"
CONSOLEPROXY_DEFAULT = "/etc/default/nova-consoleproxy"
NOVA_API_LISTEN = "/etc/default/nova-api"
NOVA_METADATA_LISTEN = "/etc/default/nova-api-metadata"


def controller_packages() -> tuple[str, ...]:
    # nova-api also ships nova-api-metadata; nova-consoleproxy ships nova-novncproxy.
    return ("nova-api", "nova-conductor", "nova-scheduler", "nova-consoleproxy")


CONDUCTOR_READY = "nova-conductor started"


def compute_packages() -> tuple[str, ...]:
    # nova-compute-kvm, not nova-compute-qemu: that one pulls QEMU for every architecture.
    return ("nova-compute", "nova-compute-kvm")


# nova's default scheduler filters plus the host-affinity hints users pass with a server
# (`--hint same_host=ID`, `--hint different_host=ID`), which nova otherwise ignores without a word;
# DevStack enables them too. Tempest's scheduler_enabled_filters says the same list.
SCHEDULER_FILTERS = (
    "ComputeFilter",
    "ComputeCapabilitiesFilter",
    "ImagePropertiesFilter",
    "ServerGroupAntiAffinityFilter",
    "ServerGroupAffinityFilter",
    "SameHostFilter",
    "DifferentHostFilter",
)


def nova_conf(host: HostContext, release: Release, pw: Mapping[str, str]) -> File:
    return rendered(
        release,
        host,
        pw,
        NOVA_CONF,
        group="nova",
        scheduler_filters=SCHEDULER_FILTERS,
        ceph=cluster(host.inventory, pw),
    )


def cell_exists(name: str) -> str:
    # A query, not `nova-manage cell_v2 list_cells`: that costs 1.4 s of Python start-up per re-apply.
    query = f"SELECT COUNT(*) FROM nova_api.cell_mappings WHERE name = '{name}'"
    return f'test "$(mysql --batch --skip-column-names -e "{query}" 2>/dev/null)" = 1'


def controller(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        nova_conf(host, release, pw),
        rendered(release, host, pw, NOVA_API_UWSGI),
        rendered(release, host, pw, NOVA_METADATA_UWSGI),
        listen_default(release, host, "nova-api", 8774, NOVA_API_UWSGI, host.api_listen_ip),
        # Only the network nodes' metadata agents call the metadata API: management only, always.
        listen_default(release, host, "nova-api-metadata", 8775, NOVA_METADATA_UWSGI, host.controller_ip),
        rendered(release, host, pw, CONSOLEPROXY_DEFAULT, template="nova-consoleproxy.j2", format="text"),
        Command(
            "Nova API database schema",
            as_user("nova", "nova-manage api_db sync"),
            once_marker=marker(release, "nova-api-db-sync"),
        ),
        Command(
            "Nova cell0 mapping",
            as_user("nova", "nova-manage cell_v2 map_cell0"),
            unless=cell_exists("cell0"),
        ),
        Command(
            "Nova cell1",
            as_user("nova", "nova-manage cell_v2 create_cell --name=cell1 --verbose"),
            unless=cell_exists("cell1"),
        ),
        Command(
            "Nova database schemas (cell0 and cell1)",
            as_user("nova", "nova-manage db sync"),
            once_marker=marker(release, "nova-db-sync"),
        ),
        Service("nova-api", restart_when=(NOVA_CONF, NOVA_API_UWSGI, NOVA_API_LISTEN)),
        Service("nova-api-metadata", restart_when=(NOVA_CONF, NOVA_METADATA_UWSGI, NOVA_METADATA_LISTEN)),
        Service("nova-conductor", restart_when=(NOVA_CONF,)),
        Service("nova-scheduler", restart_when=(NOVA_CONF,)),
        Milestone(CONDUCTOR_READY),
        Service("nova-novncproxy", restart_when=(NOVA_CONF, CONSOLEPROXY_DEFAULT)),
        # Debian enables every console proxy; only noVNC is configured.
        Service("nova-spicehtml5proxy", enabled=False, running=False),
        Service("nova-serialproxy", enabled=False, running=False),
    ]


def compute(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    ceph = cluster(host.inventory, pw)
    rbd_disks = ceph is not None and ceph.vm_disks == "rbd"
    return [
        nova_conf(host, release, pw),
        rendered(release, host, pw, NOVA_COMPUTE_CONF),
        # nova-compute (Type=notify) waits for the conductor before it reports started: in a
        # whole-cluster run, start it once the controller has started nova-conductor.
        AwaitHost(host.controller_name, CONDUCTOR_READY),
        # With its disks in Ceph it reports the pool's capacity from the start: once the pool exists.
        *([AwaitHost(ceph.first_monitor, CEPH_READY)] if ceph is not None and rbd_disks else []),
        File(NOVA_COMPUTE_DROPIN, _NOVA_COMPUTE_TIMEOUT),  # read at start: no restart needed
        Service(
            "nova-compute",
            restart_when=(NOVA_CONF, NOVA_COMPUTE_CONF, *((CEPH_CONF,) if rbd_disks else ())),
        ),
    ]
