"""The node's own firewall: stackwright's nftables table loaded, and as it was loaded."""

from __future__ import annotations

from stackwright import firewall
from stackwright.checks.doctor.base import Context, Fix, Row, check, ok
from stackwright.releases.modern.nftables import LOADED_DIGEST


def firewall_script() -> str:
    table = f"inet {firewall.TABLE}"
    return (
        "echo '@@sw:firewall'\n"
        f"if nft list table {table} >/dev/null 2>&1; then\n"
        f'  echo "live=$(nft list table {table} | sha256sum | cut -c1-64)"\n'
        "else echo live=missing; fi\n"
        f'echo "loaded=$(cut -c1-64 {LOADED_DIGEST} 2>/dev/null)"\n'
    )


@check("firewall")
def firewall_loaded(ctx: Context) -> list[Row]:
    """A port that should be closed answers (or one that should answer does not) after someone ran
    `nft flush ruleset`, Debian's nftables.service, or edited the rules by hand.

    On every node (when the inventory's firewall is enabled), the table `inet stackwright` must be
    loaded and unchanged since stackwright-firewall.service loaded it (its sha256 is recorded at
    load). The safe fix loads the ruleset again, which also removes rules added by hand."""
    rows: list[Row] = []
    if not ctx.inventory.firewall.enabled:
        return rows
    for host in ctx.examined():
        values = ctx.data[host].values("firewall")
        live = (values.get("live") or ["missing"])[0]
        loaded = (values.get("loaded") or [""])[0]
        if live == "missing":
            cause = f"the firewall table inet {firewall.TABLE} is not loaded: every port of {host} is open"
        elif live != loaded:
            cause = "the firewall's rules changed since they were loaded (a rule added or removed by hand)"
        else:
            rows.append(ok("firewall", host, f"inet {firewall.TABLE} loaded, unchanged"))
            continue
        rows.append(
            Row(
                "firewall",
                host,
                "fail",
                cause,
                "`systemctl restart stackwright-firewall` loads /etc/stackwright/firewall.nft again; "
                "do not run Debian's nftables.service (its `flush ruleset` removes every table)",
                Fix(host, "systemctl restart stackwright-firewall", "load the firewall's ruleset again"),
            )
        )
    return rows
