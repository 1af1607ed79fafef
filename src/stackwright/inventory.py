"""The inventory: what a user writes, validated into a typed model.

Shape (the seed's three nodes)::

    release: zed
    networks:
      management: {cidr: 10.10.10.0/24}
      data:       {cidr: 10.20.20.0/24}
      external:   {cidr: 192.168.100.0/24, gateway: 192.168.100.1}
    nodes:
      controller: {roles: [controller], management: 10.10.10.51, external: 192.168.100.51}
      ...

Every mistake becomes a `UserError` naming file, line, problem and fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stackwright.allowlists import (
    HttpProxy,
    InterfaceName,
    LocalFile,
    NodeName,
    OsdDevice,
    Region,
    SshHost,
    SshUser,
    TimeZone,
    shown,
)
from stackwright.overrides import Overrides
from stackwright.release_table import ALL as ALL_RELEASES
from stackwright.release_table import DEFAULT_RELEASE, KNOWN_RELEASES
from stackwright.yamlsource import Loc, Located, UserError, UserErrors, read_located

if TYPE_CHECKING:
    from stackwright.tls import NodeCert, TlsFront

NETWORK_NAMES: tuple[str, ...] = ("management", "data", "external")
Role = Literal["controller", "network", "compute", "storage"]
ROLES: tuple[str, ...] = get_args(Role)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Network(_Strict):
    """One L3 network every node on it shares."""

    cidr: IPv4Network = Field(description="The network, e.g. 10.10.10.0/24.")
    gateway: IPv4Address | None = Field(
        default=None, description="Router address; the lab puts it (or the network's .1) on its bridge."
    )
    floating: IPv4Network | None = Field(
        default=None,
        description="external only: the floating-IP pool inside the network (e.g. 192.168.100.128/25); "
        "apply creates the external network `public` with it.",
    )

    @field_validator("cidr", mode="before")
    @classmethod
    def _needs_prefix(cls, value: Any) -> Any:
        if isinstance(value, str) and "/" not in value:
            raise ValueError(f"'{value}' has no prefix length — write it like {value}/24")
        return value

    @field_validator("cidr")
    @classmethod
    def _has_room(cls, value: IPv4Network) -> IPv4Network:
        if value.prefixlen > 30:
            raise ValueError(f"{value} leaves no room for hosts — use a larger network such as /24")
        return value

    @property
    def lab_address(self) -> IPv4Address:
        """The address the lab's bridge for this network holds: the gateway, or the first host."""
        return self.gateway or next(self.cidr.hosts())


class Networks(_Strict):
    management: Network = Field(description="API, database, RPC and SSH traffic (guide: eth0).")
    data: Network | None = Field(default=None, description="Tunnel endpoints (guide: eth1).")
    external: Network | None = Field(
        default=None, description="Public/API side and floating IPs (br-ex on the network node)."
    )

    def items(self) -> Iterator[tuple[str, Network]]:
        for name in NETWORK_NAMES:
            net = getattr(self, name)
            if net is not None:
                yield name, net


class Ssh(_Strict):
    host: SshHost | None = Field(default=None, description="Address or name to SSH to; default: management.")
    user: SshUser = "root"
    port: int = Field(default=22, ge=1, le=65535)


class Firewall(_Strict):
    enabled: bool = Field(
        default=True, description="An nftables firewall on every node, from its roles (README: Firewall)."
    )
    ssh_from: list[IPv4Network] = Field(
        default_factory=list,
        description="Networks besides management that may SSH to the nodes (the operator's: 203.0.113.7/32).",
    )


class Tls(_Strict):
    enabled: bool = Field(
        default=True,
        description="HTTPS on the controller's external address for every API, the console and the "
        "dashboard (README: TLS).",
    )
    cert: LocalFile | None = Field(
        default=None,
        description="Your own certificate (PEM, relative to the inventory); default: one from the "
        "cloud's private CA, made in tls/ beside the inventory.",
    )
    key: LocalFile | None = Field(default=None, description="The private key of `cert` (PEM).")
    ca: LocalFile | None = Field(default=None, description="The CA certificate that issued `cert` (PEM).")
    internal: bool = Field(
        default=False,
        description="HTTPS on the management network too: the front serves the internal endpoints on "
        "the controller's management address, the APIs listen on 127.0.0.1, every node trusts the CA "
        "(README: TLS).",
    )


class PackageCache(_Strict):
    host: NodeName = Field(
        description="The node that runs the fleet's apt cache (apt-cacher-ng on port 3142 of its "
        "management address); every other node installs its packages through it (README: Package cache)."
    )
    upstream_proxy: HttpProxy | None = Field(
        default=None,
        description="An HTTP proxy the cache node reaches the Debian mirror through (http://host:port); "
        "default: the mirror directly.",
    )


class Ceph(_Strict):
    vm_disks: Literal["local", "rbd"] = Field(
        default="local",
        description="Where Nova keeps servers' ephemeral disks: `local` files on the compute node, or "
        "`rbd` in the Ceph pool `vms` (live migration then copies no disk; README: Block storage).",
    )


class Node(_Strict):
    roles: list[Role] = Field(min_length=1, description="Any of controller, network, compute, storage.")
    management: IPv4Address
    data: IPv4Address | None = None
    external: IPv4Address | None = None
    interfaces: dict[Literal["management", "data", "external"], InterfaceName] = Field(
        default_factory=dict,
        description="Interface name per network; default eth0, eth1, eth2 in network order.",
    )
    virt_type: Literal["kvm", "qemu", "auto"] | None = Field(
        default=None, description="Overrides the cluster-wide virt_type for this node."
    )
    ssh: Ssh = Field(default_factory=Ssh)
    osd_devices: list[OsdDevice] = Field(
        default_factory=list,
        description="storage nodes: each device (or file) Ceph may use whole for one OSD, e.g. [/dev/sdb]; "
        "its content is destroyed on first apply.",
    )
    overrides: Overrides = Field(default_factory=dict)

    def addresses(self) -> dict[str, IPv4Address]:
        """{"management": 10.10.10.53, "data": 10.20.20.53} in network order."""
        return {n: a for n in NETWORK_NAMES if (a := getattr(self, n)) is not None}

    def interface(self, network: str) -> str:
        if network in self.interfaces:
            return self.interfaces[network]
        return f"eth{list(self.addresses()).index(network)}"

    def has(self, role: str) -> bool:
        return role in self.roles


class Inventory(_Strict):
    release: str = Field(default=DEFAULT_RELEASE, description=f"One of: {', '.join(KNOWN_RELEASES)}.")
    networks: Networks
    tenant_network_type: Literal["gre", "vxlan"] = "gre"
    virt_type: Literal["auto", "kvm", "qemu"] = "auto"
    region: Region = Field(
        default="RegionOne",
        description="Keystone region: a letter, then letters, digits, _ and - (64 at most).",
    )
    timezone: TimeZone = Field(
        default="UTC",
        description="The dashboard's default time zone, an IANA name (Europe/Berlin).",
    )
    overrides: Overrides = Field(
        default_factory=dict,
        description="Options set on top of rendered INI files: {path: {section: {option: value}}}.",
    )
    firewall: Firewall = Field(default_factory=Firewall)
    tls: Tls = Field(default_factory=Tls)
    package_cache: PackageCache | None = Field(
        default=None,
        description="A node that caches Debian packages for the others: `package_cache: controller`, or "
        "{host: controller, upstream_proxy: http://10.10.10.1:3142}.",
    )
    ceph: Ceph = Field(default_factory=Ceph, description="Options of the `storage` nodes' Ceph cluster.")
    nodes: dict[NodeName, Node] = Field(min_length=1)

    @field_validator("package_cache", mode="before")
    @classmethod
    def _cache_node_alone(cls, value: Any) -> Any:
        return {"host": value} if isinstance(value, str) else value

    @property
    def controller_name(self) -> str:
        return next(name for name, node in self.nodes.items() if node.has("controller"))

    @property
    def controller(self) -> Node:
        return self.nodes[self.controller_name]

    @property
    def public_url_base(self) -> str:
        """scheme://address users reach the cloud at: https through the TLS front on the
        controller's external address (http when TLS is off; management without an external one)."""
        controller = self.controller
        scheme = "https" if self.tls.enabled else "http"
        return f"{scheme}://{controller.external or controller.management}"

    @property
    def internal_tls(self) -> bool:
        """The TLS front serves the internal endpoints too (`tls.internal`, which needs TLS on)."""
        return self.tls.enabled and self.tls.internal

    @property
    def internal_url_base(self) -> str:
        """scheme://address the services reach each other at: the controller's management address,
        https through the TLS front when `tls.internal`, else plain http."""
        scheme = "https" if self.internal_tls else "http"
        return f"{scheme}://{self.controller.management}"

    @property
    def package_cache_host(self) -> str | None:
        return self.package_cache.host if self.package_cache is not None else None

    def names_with(self, role: str) -> list[str]:
        return [name for name, node in self.nodes.items() if node.has(role)]

    def virt_type_of(self, name: str) -> str:
        return self.nodes[name].virt_type or self.virt_type


@dataclass(frozen=True)
class LoadedInventory:
    """A validated inventory and where it came from (for messages and for files beside it)."""

    model: Inventory
    path: Path
    source: Located
    # Each node's SSH host keys as the known_hosts file beside the inventory records them
    # (`stackwright trust`, `lab up`): {"compute1": (("ssh-ed25519", "AAAAC3..."),)}. Compute nodes
    # trust each other's keys from here (nova copies instances between them over SSH).
    host_keys: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # The TLS front's certificate, CA and key (tls.py); None when the inventory turns TLS off.
    tls: TlsFront | None = None
    # Each compute node's live-migration certificate from the cloud's CA (tls.py).
    migration_certs: Mapping[str, NodeCert] = field(default_factory=dict)

    def error(self, message: str, loc: Loc) -> UserError:
        return UserError(message, file=str(self.path), line=self.source.line_of(loc))


def select_hosts(loaded: LoadedInventory, spec: str | None, option: str) -> list[str]:
    """The nodes a `--limit`/`--host` list names ("compute1,network"), in the order given; every
    node when `spec` is empty. An unknown name is one UserError naming it and the known ones."""
    names = list(loaded.model.nodes)
    if not spec:
        return names
    wanted = list(dict.fromkeys(h.strip() for h in spec.split(",") if h.strip()))
    unknown = [h for h in wanted if h not in names]
    if unknown or not wanted:
        given = ", ".join(shown(h) for h in unknown) or shown(spec)
        raise UserError(f"{option} {given}: no such node — the inventory has {', '.join(names)}")
    return wanted


def load_inventory(path: Path) -> LoadedInventory:
    """Read, parse and validate; raises UserErrors with one line per mistake."""
    source = read_located(path)
    if not isinstance(source.data, dict):
        raise UserError(
            "the inventory must be a YAML mapping with 'networks' and 'nodes' — see examples/seed.yaml",
            file=str(path),
            line=1,
        )
    try:
        model = Inventory.model_validate(source.data)
    except ValidationError as exc:
        errors = [
            UserError(_explain(err, source.data), file=str(path), line=source.line_of(_loc(err)))
            for err in _without_typo_echoes(exc.errors())
        ]
        raise UserErrors(errors) from None
    loaded = LoadedInventory(model=model, path=path, source=source, host_keys=recorded_host_keys(model, path))
    problems = list(check_topology(loaded))
    if problems:
        raise UserErrors(problems)
    from stackwright.tls import front_material, migration_material

    return replace(loaded, tls=front_material(model, path), migration_certs=migration_material(model, path))


def recorded_host_keys(model: Inventory, path: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    """The keys the known_hosts beside the inventory records for each node (plain entries under
    the address SSH reaches the node at; hashed entries and markers are not read)."""
    try:
        lines = (path.parent / "known_hosts").read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return {}
    recorded: dict[str, list[tuple[str, str]]] = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or line.startswith(("#", "@")):
            continue
        for name in fields[0].split(","):
            recorded.setdefault(name, []).append((fields[1], fields[2]))
    found: dict[str, tuple[tuple[str, str], ...]] = {}
    for node_name, node in model.nodes.items():
        address = node.ssh.host or str(node.management)
        key_name = address if node.ssh.port == 22 else f"[{address}]:{node.ssh.port}"
        if key_name in recorded:
            found[node_name] = tuple(recorded[key_name])
    return found


def _without_typo_echoes(errors: list[Any]) -> list[Any]:
    """A misspelt key shows up twice (unknown 'managment', missing 'management'): keep one."""
    typos: set[Loc] = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            loc = _loc(err)
            for guess in difflib.get_close_matches(str(loc[-1]), _allowed_keys(loc), n=1, cutoff=0.6):
                typos.add((*loc[:-1], guess))
    return [e for e in errors if not (e["type"] == "missing" and _loc(e) in typos)]


def _loc(err: Any) -> Loc:
    # pydantic adds "[key]" after a dict key that failed and "function-..." after validators.
    return tuple(
        p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]"))
    )


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys the model accepts at the mapping that holds `loc`'s last key."""
    annotation: Any = Inventory
    for part in loc[:-1]:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    if get_origin(annotation) is dict:
        key_type = get_args(annotation)[0]
        if get_origin(key_type) is Literal:
            return [str(a) for a in get_args(key_type)]
    return []


def _unwrap(annotation: Any) -> Any:
    """Optional[X] -> X."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if len(args) == 1 and get_origin(annotation) is not list and get_origin(annotation) is not dict:
        return args[0]
    return annotation


def _value_at(data: Any, loc: Loc) -> Any:
    for part in loc:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and part < len(data)
        if in_dict or in_list:
            data = data[part]
        else:
            return None
    return data


_EXAMPLES = {
    "ip_v4_address": "write it like 10.10.10.51",
    "ip_v4_network": "write it like 10.10.10.0/24 (host bits zero)",
}


def _explain(err: Any, data: Any) -> str:
    loc = _loc(err)
    where = _dotted(loc)
    kind = err["type"]
    value = _value_at(data, loc)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc)
        guess = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        fix = f"did you mean '{guess[0]}'?" if guess else f"allowed here: {', '.join(allowed)}"
        return f"{where}: unknown key '{key}' — {fix}"
    if kind == "missing":
        return f"{where}: required key '{loc[-1]}' is missing — add it"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{where}: {shown(value)} is not allowed — use one of {expected}"
    if kind in _EXAMPLES:
        return f"{where}: {shown(value)} is not a valid {err['msg'].split('valid ')[-1]} — {_EXAMPLES[kind]}"
    if kind == "string_pattern_mismatch" and len(loc) >= 1:
        return f"{where}: {shown(value)} does not match the required format — {err['msg']}"
    if kind in ("too_short",) and loc and loc[-1] == "roles":
        return f"{where}: a node needs at least one role — add controller, network, compute or storage"
    if kind == "too_short":
        return f"{where}: must not be empty — add at least one entry"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{where}: {shown(value)} has the wrong type — {err['msg'].lower()}"
    if kind == "value_error":
        return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"
    return f"{where}: {err['msg']} — fix this value"


def check_topology(inv: LoadedInventory) -> Iterator[UserError]:
    """Cross-field checks pydantic cannot express, in the order a user would fix them.

    Node checks wait until the networks are right: a wrong CIDR would otherwise be
    echoed by every address inside it.
    """
    network_errors = list(_check_release_and_networks(inv))
    yield from network_errors
    if not network_errors:
        yield from _check_nodes(inv)
    yield from _check_tls(inv)
    yield from _check_package_cache(inv)
    yield from _check_storage(inv)


def _check_storage(inv: LoadedInventory) -> Iterator[UserError]:
    model = inv.model
    storage = model.names_with("storage")
    if storage and model.release in ALL_RELEASES and ALL_RELEASES[model.release].no_storage:
        yield inv.error(
            f"nodes.{storage[0]}.roles: release {model.release} gets no storage role — "
            f"{ALL_RELEASES[model.release].no_storage}; use release: epoxy, or drop the role",
            ("nodes", storage[0], "roles"),
        )
    for name, node in model.nodes.items():
        where = ("nodes", name, "osd_devices")
        if node.has("storage") and not node.osd_devices:
            yield inv.error(
                f"nodes.{name}: a storage node needs at least one OSD device — add 'osd_devices: [/dev/sdb]'",
                ("nodes", name),
            )
        if node.osd_devices and not node.has("storage"):
            yield inv.error(
                f"nodes.{name}.osd_devices: only storage nodes run OSDs — add 'storage' to its roles, "
                "or remove osd_devices",
                where,
            )
        twice = sorted({d for d in node.osd_devices if node.osd_devices.count(d) > 1})
        if twice:
            yield inv.error(
                f"nodes.{name}.osd_devices: {', '.join(twice)} listed twice — one OSD per device", where
            )
    if model.ceph.vm_disks == "rbd" and not storage:
        yield inv.error(
            "ceph.vm_disks: rbd keeps servers' disks in Ceph, and no node has the storage role — add a "
            "storage node, or set vm_disks: local",
            ("ceph", "vm_disks"),
        )


def _check_package_cache(inv: LoadedInventory) -> Iterator[UserError]:
    cache = inv.model.package_cache
    if cache is not None and cache.host not in inv.model.nodes:
        yield inv.error(
            f"package_cache: {cache.host!r} is not a node of this inventory — name one of "
            f"{', '.join(inv.model.nodes)}",
            ("package_cache", "host"),
        )


def _check_tls(inv: LoadedInventory) -> Iterator[UserError]:
    tls = inv.model.tls
    given = [name for name in ("cert", "key", "ca") if getattr(tls, name) is not None]
    if given and len(given) < 3:
        missing = ", ".join(n for n in ("cert", "key", "ca") if n not in given)
        yield inv.error(f"tls: {missing} missing — give cert, key and ca together, or none", ("tls",))
    controllers = inv.model.names_with("controller")
    if tls.enabled and controllers and inv.model.nodes[controllers[0]].external is None:
        yield inv.error(
            f"tls: the TLS front needs an external address on {controllers[0]} (the APIs keep their "
            "ports on management) — add `external:` to it, or set tls: {enabled: false}",
            ("tls",),
        )
    if tls.internal and not tls.enabled:
        yield inv.error(
            "tls.internal: the internal endpoints are served by the TLS front, which tls.enabled: false "
            "turns off — enable TLS, or drop internal",
            ("tls", "internal"),
        )


def _check_release_and_networks(inv: LoadedInventory) -> Iterator[UserError]:
    model = inv.model
    if model.release not in KNOWN_RELEASES:
        guess = difflib.get_close_matches(model.release, KNOWN_RELEASES, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"known releases: {', '.join(KNOWN_RELEASES)}"
        yield inv.error(f"release: unknown release '{model.release}' — {hint}", ("release",))

    nets = dict(model.networks.items())
    names = list(nets)
    for i, a in enumerate(names):
        net = nets[a]
        if net.gateway is not None and net.gateway not in net.cidr:
            yield inv.error(
                f"networks.{a}.gateway: {net.gateway} is outside {net.cidr} — use an address inside it",
                ("networks", a, "gateway"),
            )
        if net.floating is not None:
            yield from _check_floating(inv, a, net)
        for b in names[i + 1 :]:
            if net.cidr.overlaps(nets[b].cidr):
                yield inv.error(
                    f"networks.{b}: {nets[b].cidr} overlaps networks.{a} ({net.cidr}) — "
                    "give each network its own range",
                    ("networks", b, "cidr"),
                )


def _check_floating(inv: LoadedInventory, name: str, net: Network) -> Iterator[UserError]:
    assert net.floating is not None
    where = ("networks", name, "floating")
    if name != "external":
        yield inv.error(
            f"networks.{name}.floating: floating IPs live on the external network only — move it to "
            "networks.external.floating",
            where,
        )
    elif not net.floating.subnet_of(net.cidr):
        yield inv.error(
            f"networks.external.floating: {net.floating} is not inside {net.cidr} — use a range inside it, "
            f"e.g. {_upper_half(net.cidr)}",
            where,
        )
    else:
        taken = {net.gateway, net.lab_address} | {
            n.external for n in inv.model.nodes.values() if n.external is not None
        }
        inside = sorted(str(a) for a in taken if a is not None and a in net.floating)
        if inside:
            yield inv.error(
                f"networks.external.floating: {net.floating} holds {', '.join(inside)} (a node or the "
                "gateway) — pick a range no node or gateway uses",
                where,
            )


def _upper_half(cidr: IPv4Network) -> str:
    halves = list(cidr.subnets(prefixlen_diff=1))
    return str(halves[-1]) if halves else str(cidr)


def _check_nodes(inv: LoadedInventory) -> Iterator[UserError]:
    model = inv.model
    nets = dict(model.networks.items())
    seen: dict[IPv4Address, str] = {
        net.gateway: f"networks.{n}.gateway" for n, net in nets.items() if net.gateway
    }
    for name, node in model.nodes.items():
        where = ("nodes", name)
        if len(set(node.roles)) != len(node.roles):
            yield inv.error(f"nodes.{name}.roles: a role is listed twice — list it once", (*where, "roles"))
        for net_name, address in node.addresses().items():
            if net_name not in nets:
                yield inv.error(
                    f"nodes.{name}.{net_name}: the inventory defines no '{net_name}' network — "
                    f"add networks.{net_name} with its cidr",
                    (*where, net_name),
                )
                continue
            cidr = nets[net_name].cidr
            if address not in cidr:
                yield inv.error(
                    f"nodes.{name}.{net_name}: {address} is outside the {net_name} network {cidr} — "
                    f"use an address inside {cidr}",
                    (*where, net_name),
                )
            elif address in (cidr.network_address, cidr.broadcast_address):
                yield inv.error(
                    f"nodes.{name}.{net_name}: {address} is the network or broadcast address of "
                    f"{cidr} — use a host address",
                    (*where, net_name),
                )
            elif address in seen:
                yield inv.error(
                    f"nodes.{name}.{net_name}: {address} is already used by {seen[address]} — "
                    "give each node its own address",
                    (*where, net_name),
                )
            seen.setdefault(address, f"nodes.{name}.{net_name}")
        for net_name in node.interfaces:
            if net_name not in node.addresses():
                yield inv.error(
                    f"nodes.{name}.interfaces.{net_name}: the node has no {net_name} address — "
                    f"add nodes.{name}.{net_name} or remove this interface",
                    (*where, "interfaces", net_name),
                )
        ifnames: dict[str, str] = {}
        for net_name in node.addresses():
            ifname = node.interface(net_name)
            if ifname in ifnames:
                yield inv.error(
                    f"nodes.{name}.interfaces.{net_name}: interface {ifname} already carries the "
                    f"{ifnames[ifname]} network — give each network its own interface",
                    (*where, "interfaces", net_name),
                )
            ifnames[ifname] = net_name
        if (node.has("compute") or node.has("network")) and node.data is None:
            role = "compute" if node.has("compute") else "network"
            yield inv.error(
                f"nodes.{name}: a {role} node needs a data address (its tunnel endpoint) — "
                f"add 'data: <address in {nets['data'].cidr if 'data' in nets else 'networks.data'}>'",
                where,
            )
        if node.has("network") and node.external is None:
            yield inv.error(
                f"nodes.{name}: a network node needs an external address (br-ex) — add 'external: ...'",
                where,
            )

    controllers = model.names_with("controller")
    if not controllers:
        yield inv.error(
            "nodes: no node has the controller role — add 'controller' to one node's roles", ("nodes",)
        )
    elif len(controllers) > 1:
        yield inv.error(
            f"nodes: {len(controllers)} controllers ({', '.join(controllers)}) — stackwright deploys "
            "exactly one controller (no HA yet); keep the role on one node",
            ("nodes", controllers[1], "roles"),
        )
    if not model.names_with("network"):
        yield inv.error(
            "nodes: no node has the network role (L3/DHCP agents) — add 'network' to one node's roles",
            ("nodes",),
        )
