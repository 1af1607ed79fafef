"""systemd-networkd files for a host's interfaces (pure).

Shared by the lab (which writes them when it creates a host) and the `common`
role (which persists them on real servers), so a converged lab host shows no diff.
Files are named `10-<ifname>.network` so they sort before systemd's built-in
`80-container-host0.network` and the like. No default route: the guide's hosts
route only their own networks unless a gateway is given for the external network.
"""

from __future__ import annotations

from stackwright.context import HostContext, Interface

NETWORKD_DIR = "/etc/systemd/network"


def networkd_path(ifname: str) -> str:
    return f"{NETWORKD_DIR}/10-{ifname}.network"


def networkd_file(interface: Interface, *, address: bool = True) -> str:
    lines = [
        "# Managed by stackwright: the "
        f"{interface.network} network ({interface.cidr_address if address else 'no address'})",
        "[Match]",
        f"Name={interface.name}",
        "",
        "[Network]",
        "LinkLocalAddressing=no",
        "IPv6AcceptRA=no",
        "ConfigureWithoutCarrier=yes",
    ]
    if address:
        lines.append(f"Address={interface.cidr_address}")
    return "\n".join(lines) + "\n"


def plain_networkd_files(host: HostContext) -> dict[str, str]:
    """One file per network the node has, its address on the named interface."""
    return {networkd_path(i.name): networkd_file(i) for i in host.interfaces}
