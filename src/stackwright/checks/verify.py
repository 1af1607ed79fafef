"""verify: is the cloud the inventory describes up? (openstacksdk, read-only)

Checks, each a `VerifyLine` with an id, ok, a message and (when failing) a hint:

- `nova:<binary>@<host>`: nova-conductor and nova-scheduler on the controller, nova-compute on
  every compute node: up and enabled. Their rows make the seed's "smiley face" table
  (`nova-manage service list`: `:-)` up, `XXX` down) — `smiley_table`.
- `agent:<type>@<host>`: the Open vSwitch agent on every network and compute node; the L3, DHCP
  and metadata agents on every network node: alive and administratively up.
- `hypervisor:<host>`: every compute node is a hypervisor (state up where reported).
- `api:<service>`: an authenticated, cheap call to identity, compute, network, image, placement
  (and volumev3 with storage nodes).
- `cinder:<binary>@<host>`: cinder-scheduler and cinder-volume (RBD backend `ceph`) up and enabled.
- `endpoint:<service>:<interface>`: every catalog endpoint of those services answers a plain GET
  (any HTTP status below 500). Only inventory addresses are contacted; an endpoint elsewhere fails
  without being contacted.

The `check_*` functions are pure (rows in, lines out); `verify` gathers the rows with openstacksdk;
`show_verify` prints with Rich.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from stackwright.cloud import identity_v3
from stackwright.dashboard import has_dashboard, login_url
from stackwright.inventory import Inventory
from stackwright.maintenance import DRAIN_REASON

if TYPE_CHECKING:
    from openstack.connection import Connection
    from rich.console import Console

ENDPOINT_TIMEOUT_S = 10.0
SERVICE_TYPES: tuple[str, ...] = ("identity", "compute", "network", "image", "placement")
# The Debian unit behind each API (for hints).
API_UNITS = {
    "identity": "keystone",
    "compute": "nova-api",
    "network": "neutron-api",
    "image": "glance-api",
    "placement": "placement-api",
    "volumev3": "cinder-api",
}
# Cinder's services with storage nodes, all on the controller (cinder-volume as host@backend).
CINDER_SERVICES = (("cinder-scheduler", ""), ("cinder-volume", "@ceph"))
CONTROLLER_SERVICES = ("nova-conductor", "nova-scheduler")
OVS_AGENT = "Open vSwitch agent"
NETWORK_AGENTS = (OVS_AGENT, "L3 agent", "DHCP agent", "Metadata agent")
AGENT_UNITS = {
    OVS_AGENT: "neutron-openvswitch-agent",
    "L3 agent": "neutron-l3-agent",
    "DHCP agent": "neutron-dhcp-agent",
    "Metadata agent": "neutron-metadata-agent",
}


@dataclass(frozen=True)
class ServiceRow:
    """One line of `nova-manage service list` / `openstack compute service list`."""

    binary: str
    host: str
    zone: str = "internal"
    status: str = "enabled"  # enabled | disabled
    state: str = "up"  # up | down
    updated_at: str = ""
    id: str = ""
    disabled_reason: str = ""

    @property
    def face(self) -> str:
        return ":-)" if self.state == "up" else "XXX"


@dataclass(frozen=True)
class AgentRow:
    agent_type: str
    host: str
    alive: bool
    admin_up: bool = True
    id: str = ""


@dataclass(frozen=True)
class HypervisorRow:
    name: str
    state: str | None = None  # up | down (None: this API version does not say)
    status: str | None = None  # enabled | disabled


@dataclass(frozen=True)
class EndpointRow:
    service_type: str
    interface: str
    url: str
    region: str | None = None


@dataclass(frozen=True)
class VerifyLine:
    id: str
    ok: bool
    message: str
    hint: str | None = None
    service: ServiceRow | None = None  # nova services: a row of the smiley table


def short(host: str) -> str:
    return host.split(".")[0]


# ---------------------------------------------------------------------------------------------
# pure checks

_SMILEY_FORMAT = "%-16s %-36s %-16s %-10s %-5s %-10s"  # nova-manage service list (the seed's guide)


def smiley_table(rows: Iterable[ServiceRow]) -> list[str]:
    """The seed's table: `nova-manage service list` with `:-)` for up and `XXX` for down."""
    lines = [_SMILEY_FORMAT % ("Binary", "Host", "Zone", "Status", "State", "Updated_At")]
    for row in sorted(rows, key=lambda r: (r.binary, r.host)):
        lines.append(_SMILEY_FORMAT % (row.binary, row.host, row.zone, row.status, row.face, row.updated_at))
    return [line.rstrip() for line in lines]


def expected_services(inventory: Inventory) -> list[tuple[str, str]]:
    controller = inventory.controller_name
    return [(binary, controller) for binary in CONTROLLER_SERVICES] + [
        ("nova-compute", name) for name in inventory.names_with("compute")
    ]


def _service_hint(binary: str, host: str) -> str:
    log = f"/var/log/nova/{binary}.log"
    if binary == "nova-compute":
        return (
            f"on {host}: `systemctl status nova-compute` and {log} (RabbitMQ reachable? libvirtd up?); "
            "a new node also needs `nova-manage cell_v2 discover_hosts` on the controller"
        )
    return f"on {host}: `systemctl status {binary}` and {log} (database and RabbitMQ reachable?)"


def check_nova_services(rows: list[ServiceRow], inventory: Inventory) -> list[VerifyLine]:
    lines: list[VerifyLine] = []
    used: set[int] = set()
    for binary, host in expected_services(inventory):
        found = [i for i, r in enumerate(rows) if r.binary == binary and short(r.host) == host]
        ident = f"nova:{binary}@{host}"
        if not found:
            lines.append(
                VerifyLine(ident, False, f"{binary} on {host}: not registered", _service_hint(binary, host))
            )
            continue
        used.update(found)
        row = rows[found[0]]
        lines.append(_service_line(ident, row, in_inventory=True))
    for i, row in enumerate(rows):
        if i not in used:
            lines.append(_service_line(f"nova:{row.binary}@{short(row.host)}", row, in_inventory=False))
    return lines


def _service_line(ident: str, row: ServiceRow, *, in_inventory: bool) -> VerifyLine:
    where = f"{row.binary} on {row.host}" + ("" if in_inventory else " (not in the inventory)")
    message = f"{where}: {row.face} {row.state}, {row.status}"
    if row.state == "up" and row.status == "enabled":
        return VerifyLine(ident, True, message, service=row)
    if not in_inventory and row.state != "up":
        hint = f"a leftover service: remove it with `openstack compute service delete {row.id or '<id>'}`"
    elif row.status != "enabled" and row.disabled_reason.startswith(DRAIN_REASON):
        hint = (
            f"drained for maintenance: `stackwright undrain FILE {short(row.host)}` puts it back in service"
        )
    elif row.status != "enabled":
        hint = f"enable it: `openstack compute service set --enable {row.host} {row.binary}`"
    else:
        hint = _service_hint(row.binary, short(row.host))
    return VerifyLine(ident, False, message, hint, service=row)


def expected_agents(inventory: Inventory) -> list[tuple[str, str]]:
    wanted: list[tuple[str, str]] = []
    for name, node in inventory.nodes.items():
        types = NETWORK_AGENTS if node.has("network") else (OVS_AGENT,) if node.has("compute") else ()
        wanted += [(agent_type, name) for agent_type in types]
    return wanted


def _agent_hint(agent_type: str, host: str) -> str:
    unit = AGENT_UNITS.get(agent_type, "the agent")
    hint = f"on {host}: `systemctl status {unit}` and /var/log/neutron/{unit}.log"
    if agent_type == OVS_AGENT:
        hint += " (ovs-vswitchd running? br-int/br-tun/br-ex with datapath_type=netdev?)"
    elif agent_type == "Metadata agent":
        hint += " (metadata_secret the same as nova's?)"
    return hint


def check_agents(rows: list[AgentRow], inventory: Inventory) -> list[VerifyLine]:
    lines: list[VerifyLine] = []
    used: set[int] = set()
    for agent_type, host in expected_agents(inventory):
        found = [i for i, r in enumerate(rows) if r.agent_type == agent_type and short(r.host) == host]
        ident = f"agent:{agent_type}@{host}"
        if not found:
            elsewhere = sorted({short(r.host) for r in rows if r.agent_type == agent_type})
            note = f" (it runs on {', '.join(elsewhere)})" if elsewhere else ""
            lines.append(
                VerifyLine(
                    ident,
                    False,
                    f"{agent_type} on {host}: not registered{note}",
                    _agent_hint(agent_type, host),
                )
            )
            continue
        used.update(found)
        row = rows[found[0]]
        state = ("alive" if row.alive else "dead") + ("" if row.admin_up else ", admin down")
        ok = row.alive and row.admin_up
        hint = None
        if not row.admin_up:
            hint = f"enable it: `openstack network agent set --enable {row.id or '<id>'}`"
        elif not row.alive:
            hint = _agent_hint(agent_type, host)
        lines.append(VerifyLine(ident, ok, f"{agent_type} on {host}: {state}", hint))
    for i, row in enumerate(rows):
        if i in used or row.alive:
            continue
        lines.append(
            VerifyLine(
                f"agent:{row.agent_type}@{short(row.host)}",
                False,
                f"{row.agent_type} on {row.host} (not expected there): dead",
                f"a leftover agent: remove it with `openstack network agent delete {row.id or '<id>'}`",
            )
        )
    return lines


def check_hypervisors(rows: list[HypervisorRow], inventory: Inventory) -> list[VerifyLine]:
    lines: list[VerifyLine] = []
    for host in inventory.names_with("compute"):
        ident = f"hypervisor:{host}"
        row = next((r for r in rows if short(r.name) == host), None)
        if row is None:
            listed = ", ".join(sorted(r.name for r in rows)) or "none"
            lines.append(
                VerifyLine(
                    ident,
                    False,
                    f"{host} is not a hypervisor (listed: {listed})",
                    f"run `nova-manage cell_v2 discover_hosts --verbose` on the controller; "
                    f"check nova-compute on {host} registered (nova-compute.log)",
                )
            )
            continue
        bad = [v for v in (row.state, row.status) if v is not None and v not in ("up", "enabled")]
        details = ", ".join(v for v in (row.state, row.status) if v) or "listed"
        lines.append(
            VerifyLine(
                ident,
                not bad,
                f"hypervisor {row.name}: {details}",
                None if not bad else f"on {host}: `systemctl status nova-compute libvirtd`",
            )
        )
    return lines


def inventory_addresses(inventory: Inventory) -> set[IPv4Address]:
    return {address for node in inventory.nodes.values() for address in node.addresses().values()}


def probe_url(url: str) -> str:
    """An endpoint URL with catalog templates ($(project_id)s, %(tenant_id)s) cut off."""
    for marker in ("$(", "%("):
        if marker in url:
            url = url[: url.index(marker)]
    return url


def endpoint_target(url: str, inventory: Inventory) -> str | None:
    """Why `url` must not be contacted (not an inventory address), or None if it may be."""
    host = urlsplit(url).hostname or ""
    try:
        address = ip_address(host)
    except ValueError:
        if short(host) in inventory.nodes:
            return None
        return f"{host} is not an inventory address"
    if address in inventory_addresses(inventory):
        return None
    return f"{address} is not an address of an inventory node"


def service_types(inventory: Inventory) -> tuple[str, ...]:
    return SERVICE_TYPES + (("volumev3",) if inventory.names_with("storage") else ())


@dataclass(frozen=True)
class VolumeServiceRow:
    binary: str
    host: str  # cinder-volume: host@backend
    status: str
    state: str


def check_cinder_services(rows: list[VolumeServiceRow], inventory: Inventory) -> list[VerifyLine]:
    lines: list[VerifyLine] = []
    controller = inventory.controller_name
    for binary, suffix in CINDER_SERVICES:
        host = controller + suffix
        ident = f"cinder:{binary}@{host}"
        row = next((r for r in rows if r.binary == binary and r.host == host), None)
        hint = f"on {controller}: `systemctl status {binary}` and /var/log/cinder/{binary}.log" + (
            " (Ceph reachable with client.cinder's key?)" if binary == "cinder-volume" else ""
        )
        if row is None:
            lines.append(VerifyLine(ident, False, f"{binary} on {host}: not registered", hint))
            continue
        ok = row.state == "up" and row.status == "enabled"
        lines.append(
            VerifyLine(ident, ok, f"{binary} on {host}: {row.state}, {row.status}", None if ok else hint)
        )
    return lines


def gather_volume_services(conn: Connection) -> list[VolumeServiceRow]:
    return [
        VolumeServiceRow(_str(s.binary), _str(s.host), _str(s.status), _str(s.state))
        for s in conn.block_storage.services()
    ]


def check_endpoints(
    rows: list[EndpointRow],
    inventory: Inventory,
    get: Callable[[str], tuple[int | None, str]],
) -> list[VerifyLine]:
    """`get(url)` -> (HTTP status or None, error text); only called for inventory addresses."""
    lines: list[VerifyLine] = []
    for service_type in service_types(inventory):
        mine = [r for r in rows if r.service_type == service_type and r.region in (None, inventory.region)]
        interfaces = {r.interface for r in mine}
        for interface in ("public", "internal"):
            if interface not in interfaces:
                lines.append(
                    VerifyLine(
                        f"endpoint:{service_type}:{interface}",
                        False,
                        f"{service_type}: no {interface} endpoint in region {inventory.region}",
                        "the controller role registers the endpoints: re-run `stackwright apply`",
                    )
                )
        for row in sorted(mine, key=lambda r: r.interface):
            ident = f"endpoint:{service_type}:{row.interface}"
            url = probe_url(row.url)
            refused = endpoint_target(url, inventory)
            if refused:
                lines.append(
                    VerifyLine(
                        ident,
                        False,
                        f"{service_type} {row.interface} {row.url}: not contacted, {refused}",
                        "fix the endpoint URL in the catalog (re-run apply)",
                    )
                )
                continue
            status, error = get(url)
            if status is not None and status < 500:
                lines.append(VerifyLine(ident, True, f"{service_type} {row.interface} {url}: HTTP {status}"))
            else:
                what = f"HTTP {status}" if status is not None else error
                unit = API_UNITS[service_type]
                lines.append(
                    VerifyLine(
                        ident,
                        False,
                        f"{service_type} {row.interface} {url}: {what}",
                        f"on the controller: `systemctl status {unit}` and its log",
                    )
                )
    return lines


def check_dashboard(inventory: Inventory, get: Callable[[str], tuple[int | None, str]]) -> VerifyLine:
    """Horizon's login page answers 200 (it renders without a session: Django and its settings load)."""
    url = login_url(inventory)
    status, error = get(url)
    if status == 200:
        return VerifyLine("dashboard", True, f"dashboard {url}: HTTP 200")
    return VerifyLine(
        "dashboard",
        False,
        f"dashboard {url}: {f'HTTP {status}' if status is not None else error}",
        "on the controller: `systemctl status apache2`; `stackwright doctor` shows its last errors",
    )


# ---------------------------------------------------------------------------------------------
# gathering (openstacksdk)


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]


def http_get(
    url: str, timeout: float = ENDPOINT_TIMEOUT_S, *, cafile: Path | None = None
) -> tuple[int | None, str]:
    """A plain GET, bypassing any proxy from the environment; (status, "") or (None, error).
    https is verified against the system's CAs, or against `cafile` (the cloud's CA) when given."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(urllib.request.Request(url, method="GET"), timeout=timeout) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"no answer ({reason})"


def http_getter(cafile: Path | None) -> Callable[[str], tuple[int | None, str]]:
    """http_get that trusts the cloud's CA (tls.client_ca)."""
    return lambda url: http_get(url, cafile=cafile)


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def gather_services(conn: Connection) -> list[ServiceRow]:
    return [
        ServiceRow(
            binary=_str(s.binary),
            host=_str(s.host),
            zone=_str(s.availability_zone) or "internal",
            status=_str(s.status),
            state=_str(s.state),
            updated_at=_str(s.updated_at),
            id=_str(s.id),
            disabled_reason=_str(s.disabled_reason),
        )
        for s in conn.compute.services()
    ]


def gather_agents(conn: Connection) -> list[AgentRow]:
    return [
        AgentRow(
            _str(a.agent_type), _str(a.host), bool(a.is_alive), a.is_admin_state_up is not False, _str(a.id)
        )
        for a in conn.network.agents()
    ]


def gather_hypervisors(conn: Connection) -> list[HypervisorRow]:
    return [
        HypervisorRow(_str(h.name), h.state or None, h.status or None)
        for h in conn.compute.hypervisors(details=True)
    ]


def gather_endpoints(conn: Connection) -> list[EndpointRow]:
    identity = identity_v3(conn)
    types = {s.id: _str(s.type) for s in identity.services()}
    return [
        EndpointRow(types.get(e.service_id, "?"), _str(e.interface), _str(e.url), e.region_id or None)
        for e in identity.endpoints()
    ]


def _api_calls(conn: Connection, inventory: Inventory) -> dict[str, Callable[[], object]]:
    calls: dict[str, Callable[[], object]] = {
        "identity": lambda: list(identity_v3(conn).regions()),
        "compute": lambda: next(iter(conn.compute.flavors(limit=1)), None),
        "network": lambda: next(iter(conn.network.networks(limit=1)), None),
        "image": lambda: next(iter(conn.image.images(limit=1)), None),
        "placement": lambda: next(iter(conn.placement.resource_providers()), None),
    }
    if inventory.names_with("storage"):
        calls["volumev3"] = lambda: next(iter(conn.block_storage.volumes(limit=1)), None)
    return calls


def verify(
    conn: Connection, inventory: Inventory, *, get: Callable[[str], tuple[int | None, str]] = http_get
) -> list[VerifyLine]:
    """Every check; never raises for a cloud problem (each becomes a failing line with a hint)."""
    lines: list[VerifyLine] = []
    try:
        conn.authorize()
    except Exception as exc:
        return [
            VerifyLine(
                "api:identity",
                False,
                f"cannot get a token from {conn.config.get_auth_args().get('auth_url')}: {_error_text(exc)}",
                "is keystone running on the controller (`systemctl status keystone`)? does admin_password in "
                "passwords.yaml match the cloud's admin user?",
            )
        ]

    for service_type, call in _api_calls(conn, inventory).items():
        started = time.monotonic()
        try:
            call()
        except Exception as exc:
            lines.append(
                VerifyLine(
                    f"api:{service_type}",
                    False,
                    f"{service_type} API: {_error_text(exc)}",
                    f"on the controller: `systemctl status {API_UNITS[service_type]}`",
                )
            )
        else:
            took = (time.monotonic() - started) * 1000
            lines.append(
                VerifyLine(f"api:{service_type}", True, f"{service_type} API answers ({took:.0f} ms)")
            )

    gatherers: list[tuple[str, Callable[[], list[VerifyLine]]]] = [
        ("nova services", lambda: check_nova_services(gather_services(conn), inventory)),
        ("neutron agents", lambda: check_agents(gather_agents(conn), inventory)),
        ("hypervisors", lambda: check_hypervisors(gather_hypervisors(conn), inventory)),
        ("endpoints", lambda: check_endpoints(gather_endpoints(conn), inventory, get)),
        ("dashboard", lambda: [check_dashboard(inventory, get)] if has_dashboard(inventory) else []),
    ]
    if inventory.names_with("storage"):
        gatherers.append(
            ("cinder services", lambda: check_cinder_services(gather_volume_services(conn), inventory))
        )
    for what, gather in gatherers:
        try:
            lines += gather()
        except Exception as exc:
            lines.append(
                VerifyLine(
                    f"list:{what.replace(' ', '-')}",
                    False,
                    f"cannot list {what}: {_error_text(exc)}",
                    "see the API lines above; the controller's logs say more",
                )
            )
    return lines


def all_ok(lines: Iterable[VerifyLine]) -> bool:
    return all(line.ok for line in lines)


# ---------------------------------------------------------------------------------------------
# view


def show_verify(lines: list[VerifyLine], console: Console) -> None:
    """The smiley-face table, then every check (✓/✗) with the hint under each failure."""
    rows = [line.service for line in lines if line.service is not None]
    if rows:
        console.print("[bold]nova services[/bold]")
        for text in smiley_table(rows):
            style = "red" if " XXX " in f"{text} " else None
            console.print(text, style=style, markup=False, highlight=False)
        console.print()
    for line in lines:
        if line.service is not None and line.ok:
            continue
        mark = "[green]✓[/green]" if line.ok else "[red]✗[/red]"
        console.print(f"{mark} ", end="")
        console.print(line.message, markup=False, highlight=False)
        if not line.ok and line.hint:
            console.print(f"    hint: {line.hint}", style="yellow", markup=False, highlight=False)
    failed = sum(not line.ok for line in lines)
    summary = "[green]all checks passed[/green]" if not failed else f"[red]{failed} check(s) failed[/red]"
    console.print(f"{len(lines)} checks: {summary}")
