"""libvirtd on compute nodes: running, and its socket accepting nova-compute's connection."""

from __future__ import annotations

from stackwright.checks.doctor.base import Context, Fix, Row, check, ok
from stackwright.checks.doctor.gather import LIBVIRT_SOCK, LIBVIRT_SOCKETS
from stackwright.checks.doctor.services import unit_states


@check("libvirtd")
def libvirtd(ctx: Context) -> list[Row]:
    """Instances fail with `No valid host was found` and nova-compute.log says
    `Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory`
    (or `Connection refused`): libvirtd is not running.

    On every compute node, libvirtd.service or its socket unit must be active and
    /run/libvirt/libvirt-sock must accept a connection; the cause quotes what nova-compute logged.
    Fix: start the sockets and libvirtd (`--fix` does); running guests are not touched."""
    rows: list[Row] = []
    for host in ctx.examined("compute"):
        data = ctx.data[host]
        states = unit_states(data)
        connect = data.value("libvirt", "connect", "not tried")
        sock = data.value("libvirt", "sock", "missing")
        service, socket_unit = states.get("libvirtd", "unknown"), states.get("libvirtd.socket", "unknown")
        if connect == "ok":
            rows.append(ok("libvirtd", host, f"{LIBVIRT_SOCK} accepts connections (libvirtd {service})"))
            continue
        why = "is missing" if sock == "missing" else f"refuses connections ({connect})"
        logged = data.value("libvirt", "logged") or data.value("libvirt", "lost")
        cause = f"libvirtd is {service}, libvirtd.socket is {socket_unit}: {LIBVIRT_SOCK} {why}"
        if logged:
            cause += f"; nova-compute logged: {logged}"
        start = f"systemctl start {' '.join(LIBVIRT_SOCKETS)} && systemctl start libvirtd"
        rows.append(
            Row(
                "libvirtd",
                host,
                "fail",
                cause,
                f"`{start}` (and `systemctl enable libvirtd`); check `journalctl -u libvirtd` if it stops",
                Fix(host, start, "started libvirtd and its sockets"),
            )
        )
    return rows
