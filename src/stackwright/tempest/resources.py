"""What a Tempest run needs in the cloud, made before it and removed after: the test guest's
images and two flavors, all named `stackwright-tempest-*`; and a check that the run left nothing
else behind (Tempest makes and removes a project, users and their resources per test class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stackwright.cloud import identity_v3
from stackwright.polling import poll
from stackwright.smoke.glance import ensure_guest_images, guest_image_names
from stackwright.smoke.image import GuestImage
from stackwright.tempest.conf import TempestCloud
from stackwright.yamlsource import UserError

if TYPE_CHECKING:
    from openstack.connection import Connection

PREFIX = "stackwright-tempest"
# flavor_ref and the bigger flavor_ref_alt that resize tests move a server to
FLAVORS: dict[str, dict[str, int]] = {
    f"{PREFIX}-1": {"vcpus": 1, "ram": 256, "disk": 1},
    f"{PREFIX}-2": {"vcpus": 1, "ram": 320, "disk": 2},
}


@dataclass(frozen=True)
class Snapshot:
    """The ids of what the cloud holds, by kind (admin's view of every project)."""

    ids: dict[str, frozenset[str]]

    def new_in(self, later: Snapshot) -> dict[str, list[str]]:
        return {
            kind: sorted(later.ids.get(kind, frozenset()) - ids)
            for kind, ids in self.ids.items()
            if later.ids.get(kind, frozenset()) - ids
        }


def snapshot(conn: Connection) -> Snapshot:
    listings: dict[str, Any] = {
        "projects": lambda: identity_v3(conn).projects(),
        "users": lambda: identity_v3(conn).users(),
        "servers": lambda: conn.compute.servers(all_projects=True),
        "networks": lambda: conn.network.networks(),
        "routers": lambda: conn.network.routers(),
        "ports": lambda: conn.network.ports(),
        "floating IPs": lambda: conn.network.ips(),
        "security groups": lambda: _security_groups(conn),
        "images": lambda: conn.image.images(),
        "flavors": lambda: conn.compute.flavors(is_public=None),
    }
    if conn.has_service("volumev3"):
        listings["volumes"] = lambda: conn.block_storage.volumes(all_projects=True)
        listings["volume snapshots"] = lambda: conn.block_storage.snapshots(all_projects=True)
    return Snapshot({kind: frozenset(str(r.id) for r in listing()) for kind, listing in listings.items()})


def _security_groups(conn: Connection) -> list[Any]:
    """Every security group but the "default" ones of projects that exist: neutron makes one on a
    project's first network call (nova's service project does when it moves a server), not Tempest."""
    projects = {str(p.id) for p in identity_v3(conn).projects()}
    return [
        group
        for group in conn.network.security_groups()
        if not (group.name == "default" and str(group.project_id) in projects)
    ]


def prepare(conn: Connection, guest: GuestImage, notes: list[str]) -> TempestCloud:
    public = [n for n in conn.network.networks(is_router_external=True)]
    if not public:
        raise UserError(
            "the cloud has no external network — set networks.external.floating (the floating-IP "
            "range) in the inventory and run `stackwright apply`: Tempest reaches its servers that way"
        )
    image_id = ensure_guest_images(conn, guest, PREFIX, notes)
    flavor_ids = []
    for name, spec in FLAVORS.items():
        flavor = conn.compute.find_flavor(name)
        if flavor is not None and (flavor.vcpus, flavor.ram, flavor.disk) != tuple(spec.values()):
            conn.compute.delete_flavor(flavor)
            flavor = None
        if flavor is None:
            flavor = conn.compute.create_flavor(name=name, is_public=True, **spec)
        flavor_ids.append(str(flavor.id))
    return TempestCloud(
        image_id=image_id,
        flavor_id=flavor_ids[0],
        flavor_alt_id=flavor_ids[1],
        public_network_id=str(public[0].id),
        public_network_name=str(public[0].name),
        network_extensions=tuple(str(e.alias) for e in conn.network.extensions()),
    )


def remove(conn: Connection) -> list[str]:
    """Remove the run's images and flavors; returns what could not be removed (with why)."""
    problems: list[str] = []
    for name in FLAVORS:
        try:
            flavor = conn.compute.find_flavor(name)
            if flavor is not None:
                conn.compute.delete_flavor(flavor)
        except Exception as exc:  # reported, and the rest still removed
            problems.append(f"flavor {name}: {exc}")
    for name in guest_image_names(PREFIX):
        try:
            for image in list(conn.image.images(name=name)):
                conn.image.delete_image(str(image.id), ignore_missing=True)
        except Exception as exc:
            problems.append(f"image {name}: {exc}")
    return problems


# Tempest names what it makes `tempest-<TestClass>-<random>` ([DEFAULT] resource_name_prefix).
TEMPEST_PREFIX = "tempest-"
SWEEP_WAIT_S = 180.0


def sweep(conn: Connection, leftovers: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """Delete what the run left that Tempest made (new since the run began *and* named by Tempest:
    an operator's own servers made meanwhile are not touched): servers first (bounded wait),
    then volumes, security groups, users and projects. Returns (what was removed, what could not be)."""
    removed: list[str] = []
    problems: list[str] = []

    def tempest_made(resource: Any) -> bool:
        return str(getattr(resource, "name", "") or "").startswith(TEMPEST_PREFIX)

    servers = [
        server
        for server in conn.compute.servers(all_projects=True)
        if str(server.id) in leftovers.get("servers", ()) and tempest_made(server)
    ]
    for server in servers:
        try:
            conn.compute.delete_server(server)
        except Exception as exc:  # reported; the others are still deleted
            problems.append(f"server {server.id}: {exc}")
    wanted = {str(server.id) for server in servers}

    def remaining() -> set[str]:
        return wanted & {str(s.id) for s in conn.compute.servers(all_projects=True)}

    still = poll(remaining, within_s=SWEEP_WAIT_S, every_s=5, done=lambda left: not left) if wanted else set()
    removed += [f"server {sid}" for sid in sorted(wanted - still)]
    problems += [f"server {sid}: still there {SWEEP_WAIT_S:.0f} s after its delete" for sid in sorted(still)]
    identity = identity_v3(conn)

    def new_and_tempests(kind: str) -> Any:
        return lambda r: str(r.id) in leftovers.get(kind, ()) and tempest_made(r)

    projects = {str(p.id) for p in identity.projects() if new_and_tempests("projects")(p)}

    def swept_group(group: Any) -> bool:
        # Neutron made the "default" group of each Tempest project on its first network call
        if group.name == "default":
            return str(group.project_id) in projects
        return bool(new_and_tempests("security groups")(group))

    listings: list[tuple[str, Any, Any, Any]] = []
    if leftovers.get("volumes"):
        # cascade: with the snapshots Tempest made of them; their servers are gone by now
        listings.append(
            (
                "volume",
                lambda: conn.block_storage.volumes(all_projects=True),
                lambda volume: conn.block_storage.delete_volume(volume, cascade=True),
                new_and_tempests("volumes"),
            )
        )
    listings += [
        ("security group", conn.network.security_groups, conn.network.delete_security_group, swept_group),
        ("user", identity.users, identity.delete_user, new_and_tempests("users")),
        ("project", identity.projects, identity.delete_project, lambda p: str(p.id) in projects),
    ]
    for kind, listing, delete, chosen in listings:
        for resource in listing():
            if chosen(resource):
                try:
                    delete(resource)
                    removed.append(f"{kind} {resource.name}")
                except Exception as exc:
                    problems.append(f"{kind} {resource.id}: {exc}")
    return removed, problems
