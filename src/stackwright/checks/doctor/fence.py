"""The node's fence: stackwright's nftables table loaded, and as it was loaded; every service
listening where the plan puts it."""

from __future__ import annotations

import ipaddress
import re

from stackwright import firewall
from stackwright.checks.doctor.base import Context, Fix, Row, check, ok
from stackwright.context import host_contexts
from stackwright.releases.modern.nftables import LOADED_DIGEST

WILDCARDS = ("0.0.0.0", "::", "*")


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


def listeners_script() -> str:
    """Every TCP listener of the host's own network namespace: `listen=ADDRESS:PORT PROCESS`."""
    return "echo '@@sw:listen'\nss -Hltnp 2>/dev/null | awk '{print \"listen=\" $4 \" \" $6}'\n"


def _split(local: str) -> tuple[str, int]:
    address, _, port = local.rpartition(":")
    return address.strip("[]").split("%", 1)[0], int(port)


def _process(users: str) -> str:
    found = re.search(r'\("([^"]+)"', users)
    return found.group(1) if found else "a process"


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@check("listen-address")
def listen_address(ctx: Context) -> list[Row]:
    """A service answers on an address where it should not: on every address, or on a network it
    does not serve (a package's default listener came back, a server was started by hand).

    On every node each TCP listener outside loopback must be one the plan puts there: a port the
    node's firewall opens, on the address it opens it on (or on the node's address in the network
    its clients come from); SSH, and the APIs when the inventory turns TLS off, on every address;
    RabbitMQ's Erlang distribution and epmd on the controller's management address. The firewall
    still fences such a listener where it is loaded; no safe fix: stop or re-bind the process named."""
    rows: list[Row] = []
    contexts = host_contexts(ctx.inventory)
    for host in ctx.examined():
        allowed = firewall.listeners(contexts[host])
        found = ctx.data[host].values("listen").get("listen", [])
        if not found:
            continue  # ss did not run (not probed): nothing to say
        stray: list[str] = []
        for line in found:
            local, _, users = line.partition(" ")
            address, port = _split(local)
            if _loopback(address):
                continue
            wildcard = address in WILDCARDS
            if not any(
                port in listener.ports
                and (listener.addresses is None or (not wildcard and address in listener.addresses))
                for listener in allowed
            ):
                where = f"every address, port {port}" if wildcard else f"{address}:{port}"
                stray.append(f"{_process(users)} on {where}")
        if not stray:
            rows.append(
                ok("listen-address", host, f"{len(found)} TCP listeners, each where the plan puts it")
            )
            continue
        rows.append(
            Row(
                "listen-address",
                host,
                "fail",
                f"listening where the plan does not put it: {', '.join(sorted(set(stray)))}",
                "stop the process or bind it to its address (`ss -ltnp` on the node names it); "
                "for stackwright's own services `stackwright apply` writes their addresses again",
            )
        )
    return rows
