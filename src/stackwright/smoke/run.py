"""verify --smoke: the guide's "first VM", against a real cloud (openstacksdk).

Everything it makes is named with the `stackwright-smoke` prefix and found by that name, so a run
is idempotent and a later run (or `cleanup`) removes what an interrupted run left behind:

- as admin: project `stackwright-smoke`, user `stackwright-smoke` (role `member`; its password is
  generated per run and kept in memory only), the external network `stackwright-smoke-external`
  (flat, physnet `external`, `router:external`) on the inventory's external CIDR with an
  allocation pool that avoids the nodes, the gateway and the lab bridge address (an existing
  external network on that physnet is reused instead, and left alone at cleanup), the guest's image
  (a raw whole disk: SYSLINUX, kernel and initramfs, see `smoke.image`), a small flavor;
- in the smoke project: network + subnet (a /24 that collides with no inventory network), router
  with the external gateway and the subnet attached, security group allowing ICMP, and the server
  (booted by the smoke user, with a config drive: nova-compute makes it with genisoimage).

Then: wait (bounded) for ACTIVE, then read the console log until it shows the address Neutron
assigned to the server's port (`STACKWRIGHT-SMOKE lease <ip>`) and the server's own id fetched
from the metadata service (`STACKWRIGHT-SMOKE uuid <id>`); with a `ui_check` (verify --ui), a
browser then logs into the dashboard as the smoke user and reads the lease line off the server's
VNC console (smoke.browser). Each phase is timed. Everything is removed at the end unless `keep`.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, Any

from stackwright.cloud import identity_v3, resending_dropped
from stackwright.inventory import Inventory
from stackwright.polling import poll
from stackwright.smoke.console import ConsoleReport, parse_console
from stackwright.smoke.glance import ensure_guest_images, guest_image_names
from stackwright.smoke.image import MARK, GuestImage
from stackwright.smoke.volumes import (
    VolumeFailure,
    attach_and_check,
    create_volume,
    delete_volumes,
    detach,
)
from stackwright.yamlsource import UserError

if TYPE_CHECKING:
    from openstack.connection import Connection
    from rich.console import Console

    from stackwright.smoke.browser import UiReport

PREFIX = "stackwright-smoke"
PROJECT = PREFIX
USER = PREFIX
NETWORK = f"{PREFIX}-net"
SUBNET = f"{PREFIX}-subnet"
EXTERNAL = f"{PREFIX}-external"
EXTERNAL_SUBNET = f"{PREFIX}-external-subnet"
ROUTER = f"{PREFIX}-router"
SECURITY_GROUP = PREFIX
FLAVOR = PREFIX
SERVER = PREFIX
# With storage nodes: the volume attached to SERVER, and the server booted from a volume.
VOLUME = f"{PREFIX}-volume"
BOOT_VOLUME = f"{PREFIX}-boot-volume"
VOLUME_SERVER = f"{PREFIX}-from-volume"
PHYSNET = "external"
FLAVOR_SPEC = {"vcpus": 1, "ram": 256, "disk": 1}
DOMAIN_ID = "default"
MEMBER_ROLES = ("member", "_member_")

# Candidate tenant networks, first one that overlaps no inventory network wins.
TENANT_CIDRS = ("10.99.0.0/24", "10.98.0.0/24", "172.31.99.0/24", "192.168.199.0/24")
POOL_MAX = 64  # addresses in the external allocation pool (the router's gateway needs one)

ACTIVE_TIMEOUT_S = 300.0
LEASE_TIMEOUT_S = 300.0  # DESIGN §5b: the first VM after a neutron-api restart once took 130 s
UUID_TIMEOUT_S = 200.0  # the guest tries 20 × (≤ 5 s + 3 s) after its lease
DELETE_TIMEOUT_S = 120.0
POLL_S = 3.0


# ---------------------------------------------------------------------------------------------
# pure parts


def pick_tenant_cidr(inventory: Inventory) -> IPv4Network:
    taken = [net.cidr for _, net in inventory.networks.items()]
    for text in TENANT_CIDRS:
        cidr = IPv4Network(text)
        if not any(cidr.overlaps(other) for other in taken):
            return cidr
    raise UserError(f"every smoke tenant network ({', '.join(TENANT_CIDRS)}) overlaps an inventory network")


def external_gateway(inventory: Inventory) -> IPv4Address:
    external = inventory.networks.external
    if external is None:
        raise UserError("the smoke test needs networks.external (the router's gateway) — add it")
    return external.lab_address


def external_pool(inventory: Inventory) -> tuple[IPv4Address, IPv4Address]:
    """The allocation pool on the external network: the longest run of addresses no node, gateway
    or lab bridge uses (ties: the highest), at most `POOL_MAX` from its top."""
    external = inventory.networks.external
    if external is None:
        raise UserError("the smoke test needs networks.external (the router's gateway) — add it")
    reserved = {external.lab_address} | {
        node.external for node in inventory.nodes.values() if node.external is not None
    }
    if external.gateway is not None:
        reserved.add(external.gateway)
    best: tuple[int, int, int] | None = None  # (length, end, start) as integers
    start: int | None = None
    hosts = [int(a) for a in external.cidr.hosts()]
    for value in [*hosts, None]:
        free = value is not None and IPv4Address(value) not in reserved
        if free and start is None:
            start = value
        elif not free and start is not None:
            end = (value if value is not None else hosts[-1] + 1) - 1
            run = (end - start + 1, end, start)
            if best is None or run[:2] > best[:2]:
                best = run
            start = None
    if best is None or best[0] < 2:
        raise UserError(
            f"networks.external {external.cidr} has fewer than 2 free addresses in a row for the "
            "smoke test's router — use a larger external network"
        )
    _length, end, first = best
    return IPv4Address(max(first, end - POOL_MAX + 1)), IPv4Address(end)


@dataclass(frozen=True)
class ConsoleVerdict:
    finished: bool  # nothing more to wait for (success or a definite failure)
    ok: bool
    message: str
    hint: str | None = None


def judge_console(report: ConsoleReport, server_id: str, fixed_ip: str | None) -> ConsoleVerdict:
    """What the console says so far about the lease and the metadata uuid."""
    if report.lease is None:
        if report.lease_failed:
            return ConsoleVerdict(True, False, "the guest got no DHCP lease", _DHCP_HINT)
        return ConsoleVerdict(False, False, report.summary(), _DHCP_HINT)
    if fixed_ip is not None and str(report.lease) != fixed_ip:
        return ConsoleVerdict(
            True,
            False,
            f"the guest leased {report.lease}, but Neutron assigned {fixed_ip} to its port",
            "another DHCP server answers on the tenant network? check `openstack port list`",
        )
    if report.uuid is not None:
        if report.uuid != server_id.lower():
            return ConsoleVerdict(
                True,
                False,
                f"the metadata service answered uuid {report.uuid}, not this server's {server_id}",
                "nova metadata maps the request to another instance: check the metadata agent's logs",
            )
        return ConsoleVerdict(True, True, f"lease {report.lease}, uuid {report.uuid}")
    if report.uuid_failed is not None:
        return ConsoleVerdict(
            True, False, f"lease {report.lease}, metadata failed {report.uuid_failed}", _METADATA_HINT
        )
    return ConsoleVerdict(False, False, report.summary(), _METADATA_HINT)


_DHCP_HINT = (
    "on the network node: `systemctl status neutron-dhcp-agent neutron-openvswitch-agent` and their logs; "
    "on the compute node: neutron-openvswitch-agent.log ('Device ... not defined on plugin'?) and the "
    "tunnel (ovs-vsctl show: a gre/vxlan port to the network node)"
)
_METADATA_HINT = (
    "the router's metadata proxy and neutron-metadata-agent on the network node (metadata_secret the same "
    "as nova's, nova_metadata_host = the controller), and nova-api's metadata service (port 8775)"
)


def generate_password(length: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:400]


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    ok: bool
    message: str = ""


@dataclass
class SmokeReport:
    phases: list[Phase] = field(default_factory=list)
    ok: bool = False
    error: str | None = None
    hint: str | None = None
    server_id: str | None = None
    compute_host: str | None = None
    fixed_ip: str | None = None
    lease: str | None = None
    uuid: str | None = None
    console_tail: str = ""
    kept: bool = False
    cleanup_errors: list[str] = field(default_factory=list)
    ui: UiReport | None = None

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)


class SmokeFailure(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@contextmanager
def _phase(report: SmokeReport, name: str, say: Callable[[str], None]) -> Iterator[list[str]]:
    """Times a phase; the block may append a message to the yielded list."""
    notes: list[str] = []
    started = time.monotonic()
    say(f"{name} …")
    try:
        yield notes
    except SmokeFailure as exc:
        report.phases.append(Phase(name, time.monotonic() - started, False, exc.message))
        raise
    except Exception as exc:
        report.phases.append(Phase(name, time.monotonic() - started, False, error_text(exc)))
        raise
    report.phases.append(Phase(name, time.monotonic() - started, True, "; ".join(notes)))


# ---------------------------------------------------------------------------------------------
# the run


@dataclass(frozen=True)
class UiTarget:
    """What the browser check needs: the smoke user's login and the server it looks for."""

    username: str
    password: str
    server_id: str
    server_name: str
    marker: str  # a line the guest printed on its screen


UiCheck = Callable[[UiTarget], "UiReport"]


@dataclass
class _Made:
    project_id: str = ""
    user_id: str = ""
    password: str = ""
    network_id: str = ""
    subnet_id: str = ""
    external_id: str = ""
    router_id: str = ""
    security_group_id: str = ""
    image_id: str = ""
    flavor_id: str = ""


def run_smoke(
    conn: Connection,
    inventory: Inventory,
    guest: GuestImage,
    keep: bool = False,
    *,
    progress: Callable[[str], None] | None = None,
    active_timeout: float = ACTIVE_TIMEOUT_S,
    lease_timeout: float = LEASE_TIMEOUT_S,
    uuid_timeout: float = UUID_TIMEOUT_S,
    ui_check: UiCheck | None = None,
    volumes: bool = True,
) -> SmokeReport:
    """Boot the smoke guest and prove its lease and metadata (and with storage nodes, unless not
    `volumes`, its volumes: smoke.volumes); never raises for a cloud problem."""
    say = progress or (lambda _m: None)
    report = SmokeReport()
    made = _Made()
    tenant_cidr = pick_tenant_cidr(inventory)
    pool = external_pool(inventory)
    try:
        with _phase(report, "leftovers of an earlier run", say) as notes:
            gone = _delete_servers(conn)
            if gone:
                notes.append(f"deleted {gone} server(s)")
        with _phase(report, "project and user", say):
            _ensure_identity(conn, made)
        with _phase(report, "networks, router, security group", say) as notes:
            _ensure_external(conn, inventory, made, pool, notes)
            _ensure_tenant(conn, made, tenant_cidr)
            _ensure_router(conn, made)
            _ensure_security_group(conn, made)
        with _phase(report, "images and flavor", say) as notes:
            _ensure_images(conn, guest, made, notes)
            _ensure_flavor(conn, made)
        with _phase(report, "server ACTIVE", say) as notes:
            server_id = _boot(conn, made)
            report.server_id = server_id
            _wait_active(conn, server_id, active_timeout, report)
            notes.append(f"on {report.compute_host}")
        with _phase(report, "DHCP lease on the console", say) as notes:
            report.fixed_ip = _fixed_ip(conn, server_id)
            _wait_console(conn, server_id, report, lease_timeout, want_uuid=False)
            notes.append(f"{report.lease} (Neutron: {report.fixed_ip})")
        with _phase(report, "metadata uuid on the console", say) as notes:
            _wait_console(conn, server_id, report, uuid_timeout, want_uuid=True)
            notes.append(str(report.uuid))
        if volumes and inventory.names_with("storage"):
            _volume_phases(conn, made, server_id, report, say, active_timeout, lease_timeout)
        if ui_check is not None:
            with _phase(report, "dashboard login → instance → console text (browser)", say) as notes:
                marker = f"{MARK} lease {report.lease}"
                report.ui = ui_check(UiTarget(USER, made.password, server_id, SERVER, marker))
                if not report.ui.ok:
                    raise SmokeFailure(report.ui.error or "the browser check failed", report.ui.hint)
                took = report.ui.console_s or 0.0
                notes.append(f"{marker!r} read off the console {took:.1f} s after opening the login page")
        report.ok = True
    except (SmokeFailure, VolumeFailure) as exc:
        report.error, report.hint = exc.message, exc.hint
    except Exception as exc:
        report.error = error_text(exc)
        report.hint = "an API call failed: run `stackwright verify` for the services' state"
    finally:
        if keep:
            report.kept = True
        else:
            started = time.monotonic()
            say("cleanup …")
            report.cleanup_errors = cleanup(conn)
            report.phases.append(
                Phase(
                    "cleanup",
                    time.monotonic() - started,
                    not report.cleanup_errors,
                    "; ".join(report.cleanup_errors),
                )
            )
    return report


def _volume_phases(
    conn: Connection,
    made: _Made,
    server_id: str,
    report: SmokeReport,
    say: Callable[[str], None],
    active_timeout: float,
    lease_timeout: float,
) -> None:
    """A volume attached to the smoke server and checked by the guest; a server booted from a
    volume cloned from the image (smoke.volumes)."""
    user = _as_smoke_user(conn, made)
    with _phase(report, "volume in Ceph attached; the guest wrote and read it back", say) as notes:
        started = time.monotonic()
        volume_id = create_volume(user, VOLUME)
        created = time.monotonic() - started
        disk = attach_and_check(user, server_id, volume_id, partial(_console, conn, server_id))
        notes.append(
            f"{disk.dev} (serial {disk.serial}): token read back; volume available after {created:.1f} s, "
            f"seen by the guest {time.monotonic() - started - created:.1f} s later"
        )
    with _phase(report, "volume detached and deleted", say):
        detach(user, server_id, volume_id)
        user.block_storage.delete_volume(volume_id)
        user.block_storage.wait_for_delete(user.block_storage.get_volume(volume_id), interval=2, wait=120)
    with _phase(report, "server booted from a volume cloned from the image", say) as notes:
        started = time.monotonic()
        boot_volume = create_volume(user, BOOT_VOLUME, image_id=made.image_id)
        cloned = time.monotonic() - started
        server = user.compute.create_server(
            name=VOLUME_SERVER,
            flavor_id=made.flavor_id,
            networks=[{"uuid": made.network_id}],
            security_groups=[{"name": SECURITY_GROUP}],
            block_device_mapping=[
                {
                    "boot_index": 0,
                    "uuid": boot_volume,
                    "source_type": "volume",
                    "destination_type": "volume",
                    "delete_on_termination": True,
                }
            ],
        )
        second = SmokeReport()
        _wait_active(conn, str(server.id), active_timeout, second)
        second.fixed_ip = _fixed_ip(conn, str(server.id))
        _wait_console(conn, str(server.id), second, lease_timeout, want_uuid=False)
        notes.append(
            f"volume from the image in {cloned:.1f} s; server on {second.compute_host} leased {second.lease} "
            f"{time.monotonic() - started:.1f} s after the volume was asked for"
        )
        # a proof, not the smoke server: gone with its volume even with --keep (maintenance finds one
        # smoke server per node)
        user.compute.delete_server(str(server.id))
        user.compute.wait_for_delete(server, interval=2, wait=int(DELETE_TIMEOUT_S))


def _as_smoke_user(conn: Connection, made: _Made) -> Connection:
    return resending_dropped(
        conn.connect_as(
            username=USER,
            password=made.password,
            project_id=made.project_id,
            user_domain_id=DOMAIN_ID,
            project_name=None,
            project_domain_name=None,
        )
    )


def _ensure_identity(conn: Connection, made: _Made) -> None:
    identity = identity_v3(conn)
    project = identity.find_project(PROJECT, domain_id=DOMAIN_ID)
    if project is None:
        project = identity.create_project(
            name=PROJECT, domain_id=DOMAIN_ID, description="stackwright smoke test (temporary)"
        )
    made.project_id = str(project.id)
    made.password = generate_password()
    user = identity.find_user(USER, domain_id=DOMAIN_ID)
    if user is None:
        user = identity.create_user(
            name=USER, password=made.password, domain_id=DOMAIN_ID, default_project_id=made.project_id
        )
    else:
        identity.update_user(user, password=made.password, is_enabled=True)
    made.user_id = str(user.id)
    role = next((r for name in MEMBER_ROLES if (r := identity.find_role(name)) is not None), None)
    if role is None:
        raise SmokeFailure(
            "keystone has no 'member' role", "keystone-manage bootstrap creates it: re-run apply"
        )
    identity.assign_project_role_to_user(made.project_id, made.user_id, role)


def _ensure_external(
    conn: Connection,
    inventory: Inventory,
    made: _Made,
    pool: tuple[IPv4Address, IPv4Address],
    notes: list[str],
) -> None:
    net = conn.network.find_network(EXTERNAL)
    if net is None:
        existing = [
            n
            for n in conn.network.networks(is_router_external=True)
            if n.provider_physical_network == PHYSNET
        ]
        if existing:
            made.external_id = str(existing[0].id)
            notes.append(f"reusing the external network {existing[0].name}")
            return
        net = conn.network.create_network(
            name=EXTERNAL,
            provider_network_type="flat",
            provider_physical_network=PHYSNET,
            is_router_external=True,
        )
    made.external_id = str(net.id)
    external = inventory.networks.external
    assert external is not None  # external_pool checked it
    if conn.network.find_subnet(EXTERNAL_SUBNET, network_id=made.external_id) is None:
        conn.network.create_subnet(
            name=EXTERNAL_SUBNET,
            network_id=made.external_id,
            ip_version=4,
            cidr=str(external.cidr),
            gateway_ip=str(external_gateway(inventory)),
            allocation_pools=[{"start": str(pool[0]), "end": str(pool[1])}],
            is_dhcp_enabled=False,
        )
    notes.append(f"external pool {pool[0]}-{pool[1]}")


def _ensure_tenant(conn: Connection, made: _Made, cidr: IPv4Network) -> None:
    net = conn.network.find_network(NETWORK, project_id=made.project_id)
    if net is None:
        net = conn.network.create_network(name=NETWORK, project_id=made.project_id)
    made.network_id = str(net.id)
    subnet = conn.network.find_subnet(SUBNET, network_id=made.network_id)
    if subnet is None:
        subnet = conn.network.create_subnet(
            name=SUBNET,
            network_id=made.network_id,
            project_id=made.project_id,
            ip_version=4,
            cidr=str(cidr),
            is_dhcp_enabled=True,
        )
    made.subnet_id = str(subnet.id)


def _ensure_router(conn: Connection, made: _Made) -> None:
    gateway = {"network_id": made.external_id}
    router = conn.network.find_router(ROUTER, project_id=made.project_id)
    if router is None:
        router = conn.network.create_router(
            name=ROUTER, project_id=made.project_id, external_gateway_info=gateway
        )
    elif (router.external_gateway_info or {}).get("network_id") != made.external_id:
        router = conn.network.update_router(router, external_gateway_info=gateway)
    made.router_id = str(router.id)
    attached = any(
        any(ip.get("subnet_id") == made.subnet_id for ip in (port.fixed_ips or []))
        for port in conn.network.ports(device_id=made.router_id)
    )
    if not attached:
        conn.network.add_interface_to_router(router, subnet=made.subnet_id)


def _ensure_security_group(conn: Connection, made: _Made) -> None:
    group = conn.network.find_security_group(SECURITY_GROUP, project_id=made.project_id)
    if group is None:
        group = conn.network.create_security_group(
            name=SECURITY_GROUP, project_id=made.project_id, description="stackwright smoke test: ICMP"
        )
    made.security_group_id = str(group.id)
    rules = conn.network.security_group_rules(
        security_group_id=made.security_group_id, direction="ingress", protocol="icmp"
    )
    if next(iter(rules), None) is None:
        conn.network.create_security_group_rule(
            security_group_id=made.security_group_id,
            project_id=made.project_id,
            direction="ingress",
            ether_type="IPv4",
            protocol="icmp",
            remote_ip_prefix="0.0.0.0/0",
        )


def _ensure_images(conn: Connection, guest: GuestImage, made: _Made, notes: list[str]) -> None:
    made.image_id = ensure_guest_images(conn, guest, PREFIX, notes)


def _ensure_flavor(conn: Connection, made: _Made) -> None:
    flavor = conn.compute.find_flavor(FLAVOR)
    if flavor is not None and (flavor.vcpus, flavor.ram, flavor.disk) != tuple(FLAVOR_SPEC.values()):
        conn.compute.delete_flavor(flavor)
        flavor = None
    if flavor is None:
        flavor = conn.compute.create_flavor(name=FLAVOR, is_public=True, **FLAVOR_SPEC)
    made.flavor_id = str(flavor.id)


def _boot(conn: Connection, made: _Made) -> str:
    user = _as_smoke_user(conn, made)
    server = user.compute.create_server(
        name=SERVER,
        image_id=made.image_id,
        flavor_id=made.flavor_id,
        networks=[{"uuid": made.network_id}],
        security_groups=[{"name": SECURITY_GROUP}],
        # nova-compute builds a config drive with genisoimage: a compute node without it fails here
        config_drive=True,
    )
    return str(server.id)


def _wait_active(conn: Connection, server_id: str, timeout: float, report: SmokeReport) -> None:
    def look() -> Any:
        server = conn.compute.get_server(server_id)
        report.compute_host = server.compute_host or report.compute_host
        if server.status == "ERROR":
            fault = (server.fault or {}).get("message", "no fault message")
            raise SmokeFailure(
                f"server {server_id} went to ERROR: {fault}",
                "`openstack hypervisor list`; nova-scheduler.log on the controller and nova-compute.log "
                "on the compute node (No valid host: is the compute node a hypervisor with free RAM?)",
            )
        return server

    server = poll(look, within_s=timeout, every_s=POLL_S, done=lambda s: s.status == "ACTIVE")
    if server.status != "ACTIVE":
        raise SmokeFailure(
            f"waited {timeout:.0f} s for server {server_id} to become ACTIVE; it is {server.status} "
            f"(task {server.task_state}, host {server.compute_host or 'none yet'})",
            "nova-compute.log on the compute node (image download, libvirt, port binding)",
        )


def _fixed_ip(conn: Connection, server_id: str) -> str | None:
    for port in conn.network.ports(device_id=server_id):
        for ip in port.fixed_ips or []:
            if ip.get("ip_address"):
                return str(ip["ip_address"])
    return None


def _console(conn: Connection, server_id: str) -> str:
    output = conn.compute.get_server_console_output(server_id)
    return str(output.get("output") or "")


def _wait_console(
    conn: Connection, server_id: str, report: SmokeReport, timeout: float, *, want_uuid: bool
) -> None:
    def look() -> tuple[ConsoleVerdict, bool]:
        """(the verdict so far, whether what we wait for is there)"""
        text = _console(conn, server_id)
        report.console_tail = "\n".join(text.splitlines()[-20:])
        parsed = parse_console(text)
        report.lease = str(parsed.lease) if parsed.lease else None
        report.uuid = parsed.uuid
        verdict = judge_console(parsed, server_id, report.fixed_ip)
        if verdict.finished and not verdict.ok:
            raise SmokeFailure(verdict.message, verdict.hint)
        return verdict, verdict.ok or (not want_uuid and parsed.lease is not None)

    verdict, seen = poll(look, within_s=timeout, every_s=POLL_S, done=lambda looked: looked[1])
    if not seen:
        what = "its metadata uuid" if want_uuid else "a DHCP lease"
        raise SmokeFailure(
            f"waited {timeout:.0f} s for the console of server {server_id} to show {what}: {verdict.message}",
            verdict.hint,
        )


# ---------------------------------------------------------------------------------------------
# cleanup (also of an earlier, interrupted run)


def _delete_servers(conn: Connection) -> int:
    servers = [
        s
        for s in conn.compute.servers(all_projects=True, name=f"^{PREFIX}")
        if s.name in (SERVER, VOLUME_SERVER)
    ]
    for server in servers:
        conn.compute.delete_server(server, ignore_missing=True)
    for server in servers:
        conn.compute.wait_for_delete(server, interval=2, wait=DELETE_TIMEOUT_S)
    return len(servers)


def cleanup(conn: Connection) -> list[str]:
    """Remove everything named with the prefix; returns what could not be removed (never raises)."""
    errors: list[str] = []

    def attempt(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:
            errors.append(f"{what}: {error_text(exc)}")

    attempt("servers", partial(_delete_servers, conn))
    if conn.has_service("volumev3"):
        left: list[str] = []
        attempt("volumes", lambda: left.extend(delete_volumes(conn, PREFIX)))
        errors += [f"volume {name}: not deleted within its wait" for name in left]
    net = conn.network
    routers: list[Any] = []
    attempt("find routers", lambda: routers.extend(net.routers(name=ROUTER)))
    for router in routers:
        for port in list(net.ports(device_id=router.id, device_owner="network:router_interface")):
            attempt(
                f"router interface {port.id}", partial(net.remove_interface_from_router, router, port=port.id)
            )
        attempt(f"router {router.id}", partial(net.delete_router, router, ignore_missing=True))
    for name in (NETWORK, EXTERNAL):
        for network in list(net.networks(name=name)):
            for port in list(net.ports(network_id=network.id)):
                if not str(port.device_owner or "").startswith("network:dhcp"):
                    attempt(f"port {port.id}", partial(net.delete_port, port, ignore_missing=True))
            attempt(f"network {name}", partial(net.delete_network, network, ignore_missing=True))
    for group in list(net.security_groups(name=SECURITY_GROUP)):
        attempt(f"security group {group.id}", partial(net.delete_security_group, group, ignore_missing=True))
    for name in guest_image_names(PREFIX):
        for image in list(conn.image.images(name=name)):
            attempt(f"image {name}", partial(conn.image.delete_image, str(image.id), ignore_missing=True))
    for flavor in [f for f in conn.compute.flavors(is_public=None) if f.name == FLAVOR]:
        attempt(f"flavor {FLAVOR}", partial(conn.compute.delete_flavor, flavor, ignore_missing=True))

    identity = identity_v3(conn)
    project = identity.find_project(PROJECT, domain_id=DOMAIN_ID)
    if project is not None:
        # Neutron made a 'default' security group when the project first used the network API.
        for group in list(net.security_groups(project_id=project.id)):
            attempt(
                f"security group {group.id}", partial(net.delete_security_group, group, ignore_missing=True)
            )
    user = identity.find_user(USER, domain_id=DOMAIN_ID)
    if user is not None:
        attempt(f"user {USER}", partial(identity.delete_user, user, ignore_missing=True))
    if project is not None:
        attempt(f"project {PROJECT}", partial(identity.delete_project, project, ignore_missing=True))
    return errors


# ---------------------------------------------------------------------------------------------
# view


def show_smoke(report: SmokeReport, console: Console) -> None:
    for phase in report.phases:
        mark = "[green]✓[/green]" if phase.ok else "[red]✗[/red]"
        console.print(f"{mark} {phase.seconds:6.1f} s  ", end="")
        console.print(
            phase.name + (f" — {phase.message}" if phase.message else ""), markup=False, highlight=False
        )
    if report.ok:
        console.print(
            f"[green]smoke test passed[/green] in {report.seconds:.1f} s: server {report.server_id} on "
            f"{report.compute_host} leased {report.lease} and read its own id from the metadata service"
        )
    else:
        console.print("[red]smoke test failed:[/red] ", end="")
        console.print(report.error or "unknown error", markup=False, highlight=False)
        if report.hint:
            console.print(f"    hint: {report.hint}", style="yellow", markup=False, highlight=False)
        if report.console_tail:
            console.print("last console lines:", style="dim")
            console.print(report.console_tail, markup=False, highlight=False, style="dim")
    if report.ui is not None:
        for path in report.ui.screenshots:
            console.print(f"screenshot: {path}", markup=False, highlight=False)
    if report.kept:
        console.print(f"kept the {PREFIX} resources (--keep); the next run or cleanup removes them")
