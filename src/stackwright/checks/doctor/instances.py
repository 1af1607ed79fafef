"""The instances directory: owned by nova, enterable by the qemu user (never mode 777)."""

from __future__ import annotations

from stackwright.checks.doctor.base import Context, Fix, Row, check, ok
from stackwright.checks.doctor.gather import INSTANCES, QEMU_USER


@check("instances-ownership")
def instances_ownership(ctx: Context) -> list[Row]:
    """Creating an instance fails with `Permission denied` on /var/lib/nova/instances (the old
    guides answer `chmod 777 -R instances/`, which lets every local user read and replace guest
    disks: never do that).

    /var/lib/nova/instances must be owned by nova:nova (mode 0755, as the plan makes it),
    writable by nova and enterable by libvirt-qemu; what it holds must belong to nova (or to
    libvirt-qemu / root for the disks and console logs libvirt manages). Fix: give them back to
    nova (`--fix` does `chown nova:nova` and `chmod 0755` on the directory)."""
    rows: list[Row] = []
    for host in ctx.examined("compute"):
        data = ctx.data[host]
        values = data.values("instances")
        stats = {parts[0]: parts[1:] for parts in (v.split() for v in values.get("stat", [])) if parts}
        problems: list[str] = []
        paths: list[str] = []
        mine = stats.get(INSTANCES)
        if mine is None:
            problems.append(f"{INSTANCES} does not exist")
        else:
            owner, group, mode = mine
            if (owner, group) != ("nova", "nova"):
                problems.append(f"{INSTANCES} is owned by {owner}:{group}, not nova:nova")
            if data.value("instances", "nova_writes") != "yes":
                problems.append("nova cannot write into it")
            if data.value("instances", "qemu_enters") != "yes":
                problems.append(f"{QEMU_USER} cannot enter it (mode {mode})")
        for entry in values.get("rootowned", []):
            problems.append(f"{entry} is owned by root")
            paths.append(entry)
        for entry in values.get("odd", []):
            who, _, path = entry.partition(" ")
            problems.append(f"{path} is owned by {who}")
        if not problems:
            rows.append(ok("instances-ownership", host, f"{INSTANCES} nova:nova, enterable by {QEMU_USER}"))
            continue
        fix = f"chown nova:nova {INSTANCES} && chmod 0755 {INSTANCES}"
        for path in paths:
            fix += f" && chown nova:nova {path}"
        rows.append(
            Row(
                "instances-ownership",
                host,
                "fail",
                "; ".join(problems) + ": instances fail with 'Permission denied'",
                f"give it back to nova: `{fix}` — never chmod 777",
                Fix(host, fix, f"{INSTANCES} given back to nova:nova (0755)") if mine is not None else None,
            )
        )
    return rows
