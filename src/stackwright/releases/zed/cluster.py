"""Steps that run on one host once others converged (zed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.inventory import Inventory
from stackwright.releases.zed.guards import as_user
from stackwright.steps import AfterSteps, Command, Wait

if TYPE_CHECKING:
    from stackwright.releases.base import Release


def compute_nodes_registered(names: list[str]) -> str:
    """A shell test: every named nova-compute has reported its node to the cell database."""
    listed = ", ".join(f"'{name}'" for name in names)
    query = f"SELECT COUNT(DISTINCT host) FROM nova.compute_nodes WHERE deleted = 0 AND host IN ({listed})"
    return f'test "$(mysql --batch --skip-column-names -e "{query}")" = {len(names)}'


def compute_hosts_mapped(names: list[str]) -> str:
    """A shell test: every named compute node is mapped to a cell (discover_hosts done).

    A query, not `nova-manage cell_v2 list_hosts` (1.4 s of start-up on every re-apply)."""
    listed = ", ".join(f"'{name}'" for name in names)
    query = f"SELECT COUNT(DISTINCT host) FROM nova_api.host_mappings WHERE host IN ({listed})"
    return f'test "$(mysql --batch --skip-column-names -e "{query}" 2>/dev/null)" = {len(names)}'


def cluster_after(inventory: Inventory, release: Release, pw: Mapping[str, str]) -> AfterSteps:
    computes = inventory.names_with("compute")
    if not computes:
        return ()
    controller = inventory.controller_name
    waits_for = tuple(name for name in computes if name != controller)
    steps = (
        Wait(
            "every compute node has registered with nova",
            compute_nodes_registered(computes),
            timeout_s=180,
        ),
        # Cells v2: a compute node serves no instance until it is mapped to a cell.
        Command(
            "map new compute nodes to cell1 (nova-manage cell_v2 discover_hosts)",
            as_user("nova", "nova-manage cell_v2 discover_hosts --verbose"),
            unless=compute_hosts_mapped(computes),
        ),
    )
    return ((controller, waits_for, steps),)
