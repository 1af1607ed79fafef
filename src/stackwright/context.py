"""What a template may know about a host: derived once from the inventory (pure).

Templates see `host` (a HostContext) and `pw` (the passwords). Anything that needs
probing a real machine (can KVM run guests? does the kernel have an OVS datapath?)
comes in as `HostFacts`, from preflight; offline, the inventory's choice or a
documented default stands in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from stackwright.inventory import Inventory, Node
from stackwright.tls import NodeCert, TlsFront


@dataclass(frozen=True)
class HostFacts:
    """Facts preflight resolves on the host; `None` means 'not probed' (offline plan)."""

    virt_type: str | None = None  # "kvm" | "qemu"
    ovs_datapath: str | None = None  # "system" | "netdev"
    # Inside a container (systemd-detect-virt --container): /sys/fs/cgroup is read-only
    # there, so libvirt must not create cgroup v1 controllers (DESIGN §5).
    containerized: bool = False


@dataclass(frozen=True)
class Interface:
    network: str
    name: str
    address: IPv4Address
    prefixlen: int
    gateway: IPv4Address | None

    @property
    def cidr_address(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    @property
    def netmask(self) -> str:
        return str(IPv4Network(f"0.0.0.0/{self.prefixlen}").netmask)


PACKAGE_CACHE_PORT = 3142  # apt-cacher-ng's
# While the engine installs packages with services held (engine/apt.py), this variable is set and
# node preparation's systemctl stand-in (releases/modern/apt_node.py) turns maintainer scripts'
# daemon-reloads into this marker; the engine reloads once after apt.
SERVICES_HELD_ENV = "STACKWRIGHT_SERVICES_HELD"
DEFERRED_DAEMON_RELOAD = "/var/lib/stackwright/daemon-reload.deferred"


@dataclass(frozen=True)
class HostContext:
    name: str
    node: Node
    inventory: Inventory
    facts: HostFacts
    # Every node's recorded SSH host keys (LoadedInventory.host_keys): compute nodes trust their
    # peers' keys from it.
    host_keys: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # The TLS front's certificate (LoadedInventory.tls): the controller serves it.
    tls: TlsFront | None = None
    # This compute node's live-migration certificate (LoadedInventory.migration_certs).
    migration_cert: NodeCert | None = None

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.node.roles)

    @property
    def is_controller(self) -> bool:
        return self.node.has("controller")

    @property
    def is_network(self) -> bool:
        return self.node.has("network")

    @property
    def is_compute(self) -> bool:
        return self.node.has("compute")

    @property
    def is_storage(self) -> bool:
        return self.node.has("storage")

    @property
    def is_package_cache(self) -> bool:
        return self.inventory.package_cache_host == self.name

    @property
    def apt_proxy(self) -> str | None:
        """Where this node's apt gets packages from with a `package_cache`: the cache itself over
        loopback on the cache node, the cache node's management address elsewhere; None without one
        (apt as the node has it)."""
        cache = self.inventory.package_cache_host
        if cache is None:
            return None
        address = "127.0.0.1" if cache == self.name else str(self.inventory.nodes[cache].management)
        return f"http://{address}:{PACKAGE_CACHE_PORT}"

    @property
    def management_ip(self) -> str:
        return str(self.node.management)

    @property
    def data_ip(self) -> str | None:
        return str(self.node.data) if self.node.data else None

    @property
    def external_ip(self) -> str | None:
        return str(self.node.external) if self.node.external else None

    @property
    def interfaces(self) -> tuple[Interface, ...]:
        nets = dict(self.inventory.networks.items())
        return tuple(
            Interface(
                network=net,
                name=self.node.interface(net),
                address=address,
                prefixlen=nets[net].cidr.prefixlen,
                gateway=nets[net].gateway,
            )
            for net, address in self.node.addresses().items()
        )

    def interface(self, network: str) -> Interface:
        return next(i for i in self.interfaces if i.network == network)

    @property
    def controller_name(self) -> str:
        return self.inventory.controller_name

    @property
    def controller_ip(self) -> str:
        """The controller's management address: DB, RabbitMQ, APIs, NTP."""
        return str(self.inventory.controller.management)

    @property
    def controller_public_ip(self) -> str:
        """Where users reach the APIs and the VNC proxy: the controller's external address if any."""
        c = self.inventory.controller
        return str(c.external or c.management)

    @property
    def tls_front(self) -> bool:
        """The controller's HAProxy serves every public endpoint over HTTPS (the APIs themselves
        then listen on the management address only)."""
        return self.inventory.tls.enabled

    @property
    def public_url_base(self) -> str:
        """scheme://address of the public endpoints, without a port."""
        return self.inventory.public_url_base

    @property
    def internal_tls(self) -> bool:
        """The front serves the internal endpoints too (https on the management address): the APIs
        and the dashboard listen on loopback behind it, every node trusts the cloud's CA."""
        return self.inventory.internal_tls

    @property
    def internal_url_base(self) -> str:
        """scheme://address of the internal endpoints (the management network), without a port."""
        return self.inventory.internal_url_base

    @property
    def backend_ip(self) -> str:
        """Where the front hands requests to the APIs and the dashboard: loopback when it serves the
        management address itself, else the management address."""
        return "127.0.0.1" if self.internal_tls else self.controller_ip

    @property
    def dashboard_ip(self) -> str:
        """Where Apache serves the dashboard: behind the TLS front (backend_ip), else on the
        controller's public address."""
        return self.backend_ip if self.tls_front else self.controller_public_ip

    @property
    def api_listen_ip(self) -> str:
        """Where the controller's APIs listen: behind the TLS front (backend_ip), else everywhere."""
        return self.backend_ip if self.tls_front else "0.0.0.0"

    @property
    def virt_type(self) -> str:
        """kvm or qemu; `auto` offline renders kvm, preflight decides for real."""
        if self.facts.virt_type:
            return self.facts.virt_type
        chosen = self.inventory.virt_type_of(self.name)
        return "kvm" if chosen == "auto" else chosen

    @property
    def ovs_datapath(self) -> str:
        return self.facts.ovs_datapath or "system"

    @property
    def containerized(self) -> bool:
        return self.facts.containerized

    @property
    def management_network(self) -> IPv4Network:
        return self.inventory.networks.management.cidr

    @property
    def management_hosts_pattern(self) -> str:
        """The management network as a MariaDB account host: '10.10.10.0/255.255.255.0'."""
        net = self.management_network
        return f"{net.network_address}/{net.netmask}"

    @property
    def bridged_data(self) -> bool:
        """The data address sits on br-phy (holding the data NIC): userspace-OVS tunnels need it."""
        return self.ovs_datapath == "netdev" and self.data_ip is not None

    @property
    def tenant_network_type(self) -> str:
        return self.inventory.tenant_network_type

    @property
    def region(self) -> str:
        return self.inventory.region

    @property
    def compute_names(self) -> list[str]:
        return self.inventory.names_with("compute")


def host_contexts(
    inventory: Inventory,
    facts: Mapping[str, HostFacts] | None = None,
    host_keys: Mapping[str, tuple[tuple[str, str], ...]] | None = None,
    tls: TlsFront | None = None,
    migration_certs: Mapping[str, NodeCert] | None = None,
) -> dict[str, HostContext]:
    facts = facts or {}
    return {
        name: HostContext(
            name=name,
            node=node,
            inventory=inventory,
            facts=facts.get(name, HostFacts()),
            host_keys=host_keys or {},
            tls=tls,
            migration_cert=(migration_certs or {}).get(name),
        )
        for name, node in inventory.nodes.items()
    }
