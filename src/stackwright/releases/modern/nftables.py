"""The node's firewall (stackwright.firewall's ruleset) as steps: a guard that apply's own SSH
connection stays allowed, the ruleset file, and the unit that loads it at boot."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright import firewall
from stackwright.context import HostContext
from stackwright.releases.modern.files import rendered
from stackwright.releases.modern.guards import APPLIED_DIR, SECRETS_DIR
from stackwright.steps import Command, File, Service, Step

if TYPE_CHECKING:
    from stackwright.releases.base import Release

RULESET = f"{SECRETS_DIR}/firewall.nft"
UNIT = "/etc/systemd/system/stackwright-firewall.service"
LOADED_DIGEST = f"{APPLIED_DIR}/firewall-loaded.sha256"

# Is the client of this SSH connection (apply's own) one the ruleset lets in? Without SSH (a local
# run) nothing can be cut off.
_CLIENT_ALLOWED = """import ipaddress, os, sys
client = os.environ.get("SSH_CONNECTION", "").split()[:1]
nets = [ipaddress.ip_network(n) for n in sys.argv[1:]]
sys.exit(0 if not client or any(ipaddress.ip_address(client[0]) in n for n in nets) else 1)
"""


def packages(host: HostContext) -> tuple[str, ...]:
    return ("nftables",) if host.inventory.firewall.enabled else ()


def ssh_guard(host: HostContext) -> Command:
    sources = [str(n) for n in firewall.ssh_sources(host)]
    message = (
        f"{host.name}: its firewall would cut off this apply's SSH connection: SSH is allowed from"
        f" {', '.join(sources)} only — add the address apply connects from to firewall.ssh_from in the"
        " inventory, or connect from the management network"
    )
    return Command(
        "refuse a firewall that would cut off this SSH connection",
        ("sh", "-c", f"echo {shlex.quote(message)} >&2; exit 1"),
        unless=f"python3 -c {shlex.quote(_CLIENT_ALLOWED)} {' '.join(sources)}",
    )


def steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    if not host.inventory.firewall.enabled:
        return [
            Command(
                "keep stackwright's firewall from loading at boot (firewall: enabled: false)",
                ("systemctl", "disable", "stackwright-firewall"),
                unless="! systemctl -q is-enabled stackwright-firewall 2>/dev/null",
            ),
            Command(
                "remove stackwright's firewall table (firewall: enabled: false)",
                ("nft", "delete", "table", "inet", firewall.TABLE),
                unless=f"! nft list table inet {firewall.TABLE} >/dev/null 2>&1",
            ),
        ]
    return [
        ssh_guard(host),
        File(RULESET, firewall.ruleset(host), mode=0o600),
        rendered(release, host, pw, UNIT, template="stackwright-firewall.service.j2", format="text"),
        Service("stackwright-firewall", restart_when=(RULESET, UNIT)),
    ]
