"""tempest.conf from the inventory and what `resources.py` made for the run (pure).

>>> tempest_conf(inventory, passwords, TempestCloud(image_id=..., ...), log_file=...)
'# Written by stackwright verify --tempest ...\\n[DEFAULT]\\n...'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from stackwright.cloud import public_auth_url
from stackwright.dashboard import dashboard_url, has_dashboard
from stackwright.inventory import Inventory
from stackwright.release_table import ALL
from stackwright.releases.modern.nova import SCHEDULER_FILTERS
from stackwright.render import render_template

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# A /16 for the projects' networks Tempest makes, unlike any address the lab or a node uses.
PROJECT_CIDRS = ("10.100.0.0/16", "172.30.0.0/16", "10.200.0.0/16")
BUILD_TIMEOUT_S = 600

# What Tempest may test, by its service name: what the inventory deploys (every other service
# Tempest knows is false, so its tests skip with "<service> not available").
DEPLOYED = {"nova": True, "neutron": True, "glance": True}
NOT_DEPLOYED = ("swift",)


@dataclass(frozen=True)
class TempestCloud:
    """What the run uses in the cloud (made by resources.py)."""

    image_id: str
    flavor_id: str
    flavor_alt_id: str
    public_network_id: str
    public_network_name: str
    # The aliases of the Networking API's extensions the cloud has: Tempest tests exactly those
    # (with `all` it expects extensions a cloud may rightly lack, such as metering or dvr).
    network_extensions: tuple[str, ...] = ()


def project_cidr(inventory: Inventory) -> str:
    used = [net.cidr for _, net in inventory.networks.items()]
    for candidate in map(IPv4Network, PROJECT_CIDRS):
        if not any(candidate.overlaps(net) for net in used):
            return str(candidate)
    raise ValueError("every project network range Tempest could use overlaps an inventory network")


def services(inventory: Inventory) -> dict[str, bool]:
    # horizon: Tempest's own test_dashboard_basic_ops logs in through [dashboard] dashboard_url.
    # cinder: volumes with storage nodes (Ceph RBD behind Cinder).
    return {
        **DEPLOYED,
        "cinder": bool(inventory.names_with("storage")),
        "horizon": has_dashboard(inventory),
        **dict.fromkeys(NOT_DEPLOYED, False),
    }


def microversion(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def tempest_conf(
    inventory: Inventory,
    passwords: Mapping[str, str],
    cloud: TempestCloud,
    *,
    release: str,
    log_file: Path,
    ca_file: Path | None = None,
) -> str:
    traits = ALL[release]
    return render_template(
        TEMPLATES,
        "tempest.conf.j2",
        cloud_name="stackwright",
        release=release,
        log_file=str(log_file),
        admin_password=passwords["admin_password"],
        auth_url=public_auth_url(inventory),
        region=inventory.region,
        ca_file=str(ca_file) if ca_file else "",
        image_id=cloud.image_id,
        flavor_id=cloud.flavor_id,
        flavor_alt_id=cloud.flavor_alt_id,
        compute_nodes=len(inventory.names_with("compute")),
        build_timeout=BUILD_TIMEOUT_S,
        public_network_id=cloud.public_network_id,
        public_network_name=cloud.public_network_name,
        network_extensions=",".join(sorted(cloud.network_extensions)) or "all",
        project_network_cidr=project_cidr(inventory),
        services=services(inventory),
        dashboard_url=dashboard_url(inventory) if has_dashboard(inventory) else "",
        scheduler_filters=SCHEDULER_FILTERS,
        nova_max_microversion=traits.nova_max_microversion,
        cinder_max_microversion=traits.cinder_max_microversion,
        rbd_vm_disks=bool(inventory.names_with("storage")) and inventory.ceph.vm_disks == "rbd",
        fqdn_hostnames=microversion(traits.nova_max_microversion) >= (2, 94),
    )
