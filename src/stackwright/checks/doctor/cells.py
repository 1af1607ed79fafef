"""Cells v2: every compute node mapped to a cell (discover_hosts ran for it)."""

from __future__ import annotations

from stackwright.checks.doctor.base import Context, Fix, Row, check, ok

DISCOVER = 'su -s /bin/sh -c "nova-manage cell_v2 discover_hosts --by-service --verbose" nova'


@check("cell-mapping")
def cell_mapping(ctx: Context) -> list[Row]:
    """`No valid host was found` although the compute service is `up` and the hypervisor is
    listed, or `Host 'compute1' is not mapped to any cell`: discover_hosts never ran for it.

    On the controller, nova_api.host_mappings must hold every compute node that registered in the
    cell database (nova.compute_nodes). Fix: `nova-manage cell_v2 discover_hosts --by-service`
    on the controller (`--fix` does; `--by-service` also maps a node whose mapping was lost)."""
    controller = ctx.inventory.controller_name
    data = ctx.data.get(controller)
    computes = [h for h in ctx.inventory.names_with("compute") if h in ctx.hosts]
    if data is None or data.error or not computes:
        return []
    values = data.values("cells")
    errors = [v for v in values.get("mapped", []) + values.get("registered", []) if v.startswith("ERROR")]
    if errors:
        return [
            Row(
                "cell-mapping",
                host,
                "warn",
                f"cannot read the nova databases: {errors[0][:200]}",
                "is mariadb up?",
            )
            for host in computes
        ]
    mapped, registered = set(values.get("mapped", [])), set(values.get("registered", []))
    rows: list[Row] = []
    for host in computes:
        if host in mapped:
            rows.append(ok("cell-mapping", host, "mapped to a cell"))
        elif host in registered:
            rows.append(
                Row(
                    "cell-mapping",
                    host,
                    "fail",
                    f"{host} registered its compute node but is not mapped to any cell: the scheduler never "
                    "places an instance there (No valid host was found)",
                    f"on {controller}: `nova-manage cell_v2 discover_hosts --by-service --verbose` (as nova)",
                    Fix(controller, DISCOVER, f"mapped {host} to its cell (discover_hosts --by-service)"),
                )
            )
        else:
            rows.append(
                Row(
                    "cell-mapping",
                    host,
                    "fail",
                    f"nova-compute on {host} never registered a compute node, so it cannot be mapped",
                    "see service-down and compute-connectivity for that host",
                )
            )
    return rows
