"""Neutron: the server on the controller, the Open vSwitch agent and its bridges on
network and compute nodes, and the L3, DHCP and metadata agents on the network node.

neutron.conf is one file per host with all the host's roles in view.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Literal

from stackwright.context import HostContext
from stackwright.releases.modern.api import admin_env, answers, listen_default
from stackwright.releases.modern.common import DATA_BRIDGE, EXTERNAL_BRIDGE, PHYSNET_EXTERNAL
from stackwright.releases.modern.files import rendered
from stackwright.releases.modern.guards import SECRETS_DIR, applied_when_unchanged, as_user, marker
from stackwright.steps import AwaitHost, Command, File, Milestone, OvsBridge, Service, Step, Wait

if TYPE_CHECKING:
    from stackwright.releases.base import Release

NEUTRON_CONF = "/etc/neutron/neutron.conf"
# Debian's neutron-api and neutron-rpc-server load this file for core_plugin = ml2.
ML2_CONF = "/etc/neutron/plugins/ml2/ml2_conf.ini"
NEUTRON_API_UWSGI = "/etc/neutron/neutron-api-uwsgi.ini"
# Debian's /etc/init.d/neutron-api names itself neutron-server: it reads /etc/default/neutron-server.
NEUTRON_API_LISTEN = "/etc/default/neutron-server"
OVS_AGENT_INI = "/etc/neutron/plugins/ml2/openvswitch_agent.ini"
L3_AGENT_INI = "/etc/neutron/l3_agent.ini"
DHCP_AGENT_INI = "/etc/neutron/dhcp_agent.ini"
METADATA_AGENT_INI = "/etc/neutron/metadata_agent.ini"
INTEGRATION_BRIDGE = "br-int"
SERVER_READY = "neutron-rpc-server started"


def server_packages() -> tuple[str, ...]:
    return ("neutron-api", "neutron-rpc-server")


def l2_packages() -> tuple[str, ...]:
    return ("openvswitch-switch", "neutron-openvswitch-agent")


# The queues the agents call the server on (plugin RPC, the L3 plugin, state reports).
RPC_QUEUES = ("q-plugin", "q-l3-plugin", "q-reports-plugin")
RPC_QUEUES_CONSUMED = (
    "rabbitmqctl -q list_queues --no-table-headers name consumers"
    f" | awk '$2 > 0 {{print $1}}' | grep -cxE '{'|'.join(RPC_QUEUES)}' | grep -qx {len(RPC_QUEUES)}"
)


def network_packages() -> tuple[str, ...]:
    return ("neutron-l3-agent", "neutron-dhcp-agent", "neutron-metadata-agent")


def neutron_conf(host: HostContext, release: Release, pw: Mapping[str, str]) -> File:
    return rendered(release, host, pw, NEUTRON_CONF, group="neutron")


def server(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        neutron_conf(host, release, pw),
        rendered(release, host, pw, ML2_CONF),
        rendered(release, host, pw, NEUTRON_API_UWSGI),
        listen_default(release, host, "neutron-server", 9696, NEUTRON_API_UWSGI, host.api_listen_ip),
        Command(
            "Neutron database schema",
            as_user(
                "neutron",
                f"neutron-db-manage --config-file {NEUTRON_CONF} --config-file {ML2_CONF} upgrade heads",
            ),
            once_marker=marker(release, "neutron-db-sync"),
        ),
        # Debian leaves both disabled: enabled here, or they are gone after a reboot.
        Service("neutron-api", restart_when=(NEUTRON_CONF, ML2_CONF, NEUTRON_API_UWSGI, NEUTRON_API_LISTEN)),
        Service("neutron-rpc-server", restart_when=(NEUTRON_CONF, ML2_CONF)),
        # Started is not listening: an agent's first call published before the RPC server has
        # declared its queue is dropped and times out (60 s, then a back-off): on Epoxy the
        # network node's L3, DHCP and metadata agents reported in ~100 s after a fresh apply.
        Wait("Neutron's RPC server consumes its queues", RPC_QUEUES_CONSUMED, timeout_s=120),
        Milestone(SERVER_READY),
    ]


EXTERNAL_NETWORK = "public"
# The default subnet pool projects' auto-allocated networks ("Get Me a Network": `openstack server
# create --nic auto`, nova's `networks: auto`) take a /26 from: the first of these that overlaps no
# inventory network (none of them is a range the smoke test or Tempest uses for its own networks).
SUBNET_POOL = "default-ipv4"
SUBNET_POOL_PREFIXES = ("10.128.0.0/16", "172.29.0.0/16", "10.228.0.0/16")
SUBNET_POOL_PREFIXLEN = 26
EXTERNAL_SCRIPT = "/usr/local/lib/stackwright/neutron-external.py"
EXTERNAL_JSON = f"{SECRETS_DIR}/neutron-external.json"


def external_network_json(host: HostContext) -> str | None:
    """The day-0 external network, or None when the inventory names no floating-IP range."""
    external = host.inventory.networks.external
    if external is None or external.floating is None:
        return None
    hosts = list(external.floating.hosts())
    gateway = external.gateway or external.lab_address
    pool = [a for a in hosts if a != gateway]
    document = {
        "network": EXTERNAL_NETWORK,
        "physnet": PHYSNET_EXTERNAL,
        "subnet": f"{EXTERNAL_NETWORK}-subnet",
        "cidr": str(external.cidr),
        "gateway": str(gateway),
        "pool": {"start": str(pool[0]), "end": str(pool[-1])},
    }
    prefix = subnet_pool_prefix(host)
    if prefix is not None:
        document["subnetpool"] = {"name": SUBNET_POOL, "prefix": prefix, "prefixlen": SUBNET_POOL_PREFIXLEN}
    return json.dumps(document, indent=2) + "\n"


def subnet_pool_prefix(host: HostContext) -> str | None:
    used = [net.cidr for _, net in host.inventory.networks.items()]
    for candidate in map(IPv4Network, SUBNET_POOL_PREFIXES):
        if not any(candidate.overlaps(net) for net in used):
            return str(candidate)
    return None


def external_network(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    """The external network routers and floating IPs use, made once Neutron answers (openstacksdk)."""
    spec = external_network_json(host)
    if spec is None:
        return []
    return [
        Wait("Neutron answers", answers(f"{host.internal_url_base}:9696/"), timeout_s=120),
        rendered(
            release, host, pw, EXTERNAL_SCRIPT, template="neutron-external.py.j2", mode=0o700, format="text"
        ),
        File(EXTERNAL_JSON, spec, mode=0o600),
        applied_when_unchanged(
            f"external network '{EXTERNAL_NETWORK}' with the floating-IP pool, the default subnet pool",
            "neutron-external",
            (EXTERNAL_SCRIPT, EXTERNAL_JSON),
            f"python3 {EXTERNAL_SCRIPT} {EXTERNAL_JSON}",
            env=admin_env(host, pw),
        ),
    ]


def bridges(host: HostContext) -> list[Step]:
    """Every bridge the agent's config names exists before the agent starts (DESIGN §5)."""
    datapath: Literal["system", "netdev"] = "netdev" if host.ovs_datapath == "netdev" else "system"
    steps: list[Step] = [OvsBridge(INTEGRATION_BRIDGE, datapath_type=datapath)]
    if host.bridged_data:
        steps.append(OvsBridge(DATA_BRIDGE, datapath_type=datapath, ports=(host.interface("data").name,)))
    if host.is_network:
        steps.append(
            OvsBridge(EXTERNAL_BRIDGE, datapath_type=datapath, ports=(host.interface("external").name,))
        )
    return steps


def l2_agent(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    """Open vSwitch and the neutron OVS agent: the same on network and compute nodes."""
    return [
        # openvswitch-switch is a oneshot wrapper that can report active while its daemons are
        # down (seen on a lab host after package installation): start them by name, then wait.
        Service("ovsdb-server"),
        Service("ovs-vswitchd"),
        Service("openvswitch-switch"),
        Wait("Open vSwitch database", "ovs-vsctl --timeout=2 show", timeout_s=30),
        *bridges(host),
        neutron_conf(host, release, pw),
        rendered(release, host, pw, OVS_AGENT_INI),
        # An agent started before the controller's RabbitMQ and RPC server backs off its
        # reconnects and its first state report times out: on a cold lab the DHCP agent had not
        # registered two minutes after apply. In a whole-cluster run, agents (this one and the
        # network node's, which follow it) start once the RPC server has.
        AwaitHost(host.controller_name, SERVER_READY),
        Service("neutron-openvswitch-agent", restart_when=(NEUTRON_CONF, OVS_AGENT_INI)),
    ]


def network_agents(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        rendered(release, host, pw, L3_AGENT_INI),
        rendered(release, host, pw, DHCP_AGENT_INI),
        rendered(release, host, pw, METADATA_AGENT_INI, group="neutron"),
        Service("neutron-l3-agent", restart_when=(NEUTRON_CONF, L3_AGENT_INI)),
        Service("neutron-dhcp-agent", restart_when=(NEUTRON_CONF, DHCP_AGENT_INI)),
        Service("neutron-metadata-agent", restart_when=(NEUTRON_CONF, METADATA_AGENT_INI)),
    ]
