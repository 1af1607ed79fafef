"""Every release stackwright knows, and how each differs from the one before: one table.

A deployable release (Debian's own OpenStack packages: uwsgi APIs, cells v2, Placement, ML2 with
Open vSwitch) is the shared knowledge in `releases/modern/` read through one row of this table:
its templates and steps read a row's fields wherever the releases disagree, and no release name
appears in that code. Adding the next release is one more `replace(...)` of the row
before it, plus whatever new difference it brings (a field here, read where it matters).

    >>> EPOXY.debian, EPOXY.components["nova"], EPOXY.rabbitmq_quorum_queues
    ('trixie', 31, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class ReleaseTraits:
    name: str
    openstack: str  # the upstream series, e.g. "2025.1"
    # The Debian codename whose packages it installs; None: render only (nothing installs it today).
    debian: str | None
    debian_version: str = ""
    description: str = ""
    # Major version of each project's Debian package (nova-common 2:31.0.0-... -> 31): preflight
    # refuses a host whose installed OpenStack is another release (no in-place jumps).
    components: dict[str, int] = field(default_factory=dict)
    # RabbitMQ 4 deprecates transient non-exclusive queues (oslo.messaging's classic reply and
    # fanout queues): quorum queues for every queue, streams for fanout, stable queue names.
    rabbitmq_quorum_queues: bool = False
    # Horizon on the controller (both deployable releases; the render-only Grizzly row has none).
    dashboard: bool = False
    # The newest compute API microversion its nova serves (nova/api/openstack/api_version_request.py
    # _MAX_API_VERSION): Tempest is told it, so tests of later microversions skip instead of failing.
    nova_max_microversion: str = ""
    # The same for its cinder's block-storage API (cinder/api/openstack/api_version_request.py).
    cinder_max_microversion: str = ""
    # Why stackwright deploys no `storage` role (Ceph) on this release; "" when it does.
    no_storage: str = ""


GRIZZLY = ReleaseTraits(
    name="grizzly",
    openstack="2013.1",
    debian=None,
    description="the guide's Grizzly files and values (Ubuntu 12.04), for side-by-side reading; "
    "apply refuses it",
    no_storage="the Grizzly rendering covers the guide's three nodes only",
)

ZED = ReleaseTraits(
    name="zed",
    openstack="2022.2",
    debian="bookworm",
    debian_version="12",
    description="OpenStack Zed from Debian 12's own packages",
    components={"nova": 26, "neutron": 21, "keystone": 22, "glance": 25, "placement": 8},
    dashboard=True,
    nova_max_microversion="2.93",
    no_storage="Debian 12 carries Ceph 16.2 (Pacific), end of life upstream since 2023 and never "
    "tested with stackwright",
)

# What Epoxy changes against Zed: nothing else differs in what stackwright renders or runs.
EPOXY = replace(
    ZED,
    name="epoxy",
    openstack="2025.1",
    debian="trixie",
    debian_version="13",
    description="OpenStack Epoxy from Debian 13's own packages",
    components={"nova": 31, "neutron": 26, "keystone": 27, "glance": 30, "placement": 13, "cinder": 26},
    rabbitmq_quorum_queues=True,  # RabbitMQ 4.0 (Zed's Debian 12 has 3.10)
    nova_max_microversion="2.100",
    cinder_max_microversion="3.71",
    no_storage="",  # Debian 13's Ceph 18.2 (Reef)
)

# Newest first: the first is the default of a new inventory.
DEPLOYABLE: dict[str, ReleaseTraits] = {t.name: t for t in (EPOXY, ZED)}
RENDER_ONLY: dict[str, ReleaseTraits] = {GRIZZLY.name: GRIZZLY}
ALL: dict[str, ReleaseTraits] = {**DEPLOYABLE, **RENDER_ONLY}
KNOWN_RELEASES: tuple[str, ...] = tuple(ALL)
DEFAULT_RELEASE: str = next(iter(DEPLOYABLE))
