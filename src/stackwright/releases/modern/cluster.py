"""Steps that run on one host once others converged (every modern release)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright import firewall
from stackwright.context import host_contexts
from stackwright.inventory import Inventory
from stackwright.releases.modern.guards import as_user
from stackwright.releases.modern.nftables import RULESET, UNIT
from stackwright.releases.modern.nova_ssh import NOVA_KNOWN_HOSTS
from stackwright.sinks import shell_word, sql_string
from stackwright.steps import AfterSteps, Command, HostPlan, Step, Wait

if TYPE_CHECKING:
    from stackwright.releases.base import Release


def compute_node_registered(name: str) -> str:
    """A shell test: this nova-compute has reported its node to the cell database."""
    query = f"SELECT COUNT(*) FROM nova.compute_nodes WHERE deleted = 0 AND host = {sql_string(name)}"
    return f'test "$(mysql --batch --skip-column-names -e {shell_word(query)})" -ge 1'


def registered_hosts_mapped() -> str:
    """A shell test: no registered compute node lacks its cell mapping (discover_hosts has nothing
    to do). Queries, not `nova-manage cell_v2 list_hosts` (1.4 s of start-up on every re-apply);
    compute nodes of the inventory not deployed yet do not count."""
    query = (
        "SELECT COUNT(DISTINCT host) FROM nova.compute_nodes WHERE deleted = 0 AND host NOT IN "
        "(SELECT host FROM nova_api.host_mappings)"
    )
    return f'test "$(mysql --batch --skip-column-names -e "{query}" 2>/dev/null)" = 0'


def cluster_after(
    inventory: Inventory, release: Release, pw: Mapping[str, str], hosts: Mapping[str, HostPlan]
) -> AfterSteps:
    computes = inventory.names_with("compute")
    firewalls = _peer_firewalls(inventory, hosts)
    if not computes:
        return firewalls
    return (*_discover_hosts(inventory, computes), *_peer_host_keys(computes, hosts), *firewalls)


def _peer_firewalls(inventory: Inventory, hosts: Mapping[str, HostPlan]) -> AfterSteps:
    """When a node joins, the nodes whose firewalls name it (tunnel, migration, metadata peers)
    reload theirs with its addresses, also when this run is limited to the new node."""
    after = []
    contexts = host_contexts(inventory)
    for name, plan in hosts.items():
        ruleset, unit = plan.files().get(RULESET), plan.files().get(UNIT)
        peers = firewall.peers(contexts[name])
        if ruleset is not None and unit is not None and peers:
            loader = next(s for s in plan.services() if s.name == "stackwright-firewall")
            after.append((name, peers, (ruleset, unit, loader)))
    return tuple(after)


def _peer_host_keys(computes: list[str], hosts: Mapping[str, HostPlan]) -> AfterSteps:
    """When compute nodes join, the others learn their SSH host keys (nova copies instances between
    them over SSH): each other compute node's known_hosts for nova, written once they converged."""
    after = []
    for name in computes:
        known = hosts[name].files().get(NOVA_KNOWN_HOSTS)
        peers = tuple(peer for peer in computes if peer != name)
        if known is not None and peers:
            after.append((name, peers, (known,)))
    return tuple(after)


def _discover_hosts(inventory: Inventory, computes: list[str]) -> AfterSteps:
    controller = inventory.controller_name
    waits_for = tuple(name for name in computes if name != controller)
    waits = tuple(
        Wait(f"{name} registered with nova", compute_node_registered(name), timeout_s=180, about_host=name)
        for name in computes
    )
    # Cells v2: a compute node serves no instance until it is mapped to a cell.
    discover = Command(
        "map new compute nodes to cell1 (nova-manage cell_v2 discover_hosts)",
        as_user("nova", "nova-manage cell_v2 discover_hosts --verbose"),
        unless=registered_hosts_mapped(),
    )
    steps: tuple[Step, ...] = (*waits, discover)
    return ((controller, waits_for, steps),)
