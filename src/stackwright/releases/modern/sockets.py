"""Rebinding a socket-activated service (libvirtd, epmd) to the addresses its drop-ins name.

A socket cannot be (re)started while its service runs ("Socket service ... already active,
refusing"), so the service stops for the moment it takes:

    rebind("epmd on ...", "epmd.service", ("epmd.socket",), listening(4369, addrs))
"""

from __future__ import annotations

from collections.abc import Iterable

from stackwright.steps import Command


def listening(port: int, addresses: Iterable[str]) -> str:
    """A shell test: TCP `port` listens on exactly `addresses` (none: nothing listens there)."""
    expected = " ".join(sorted(f"{address}:{port}" for address in addresses))
    return (
        f"test \"$(ss -Hltn 'sport = :{port}' | awk '{{print $4}}' | LC_ALL=C sort | paste -sd ' ')\""
        f" = '{expected}'"
    )


def rebind(
    description: str,
    service: str,
    sockets: tuple[str, ...],
    bound: str,
    *,
    also_stop: tuple[str, ...] = (),
    start_service: bool = False,
) -> Command:
    """Reload units, stop `service` (and `also_stop`), restart `sockets`, optionally start the
    service again; skipped while the shell test `bound` holds and systemd has no unit to reload."""
    script = [
        "set -e",
        "systemctl daemon-reload",
        f"systemctl stop {' '.join((service, *also_stop))}",
        f"systemctl restart {' '.join(sockets)}",
        *([f"systemctl start {service}"] if start_service else []),
    ]
    return Command(
        description,
        ("sh", "-c", "\n".join(script)),
        unless=f"{bound} && ! systemctl show -P NeedDaemonReload {' '.join(sockets)} | grep -qx yes",
    )
