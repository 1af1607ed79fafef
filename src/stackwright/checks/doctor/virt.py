"""Hardware virtualization: `virt_type = kvm` only where KVM really runs guests."""

from __future__ import annotations

from stackwright.checks.doctor.base import Context, Row, check, ok


def effective_virt_type(lines: list[str]) -> tuple[str, str]:
    """(value, where) from `virt_type=<file> <value>` lines in nova-compute's reading order;
    nova's default is kvm."""
    value, where = "kvm", "nova's default (no virt_type set)"
    for line in lines:
        path, _, setting = line.partition(" ")
        if setting.strip():
            value, where = setting.strip(), path
    return value, where


@check("virt-type-kvm")
def virt_type_kvm(ctx: Context) -> list[Row]:
    """Instances stay in `spawning` or fail with `invalid argument: could not find capabilities for
    domaintype=kvm` / `KVM is not supported`, or guests hang at boot: nova-compute uses
    `virt_type = kvm` where KVM cannot run guests.

    On every compute node, [libvirt] virt_type as nova-compute reads it (nova.conf, then
    nova-compute.conf, which overrides it; kvm when unset) is compared with a real KVM probe
    (a one-instruction test guest run through /dev/kvm: flags and /dev/kvm are not enough).
    Fix: virt_type qemu (or auto) for that node in the inventory, then `stackwright apply`."""
    rows: list[Row] = []
    for host in ctx.examined("compute"):
        data = ctx.data[host]
        value, where = effective_virt_type(data.values("virt").get("virt_type", []))
        kvm = (data.preflight.get("kvm") or ["no the KVM probe did not run"])[0]
        kvm_ok = kvm.startswith("ok")
        reason = kvm.partition(" ")[2]
        if value == "kvm" and not kvm_ok:
            planned = (
                ctx.plan.hosts[host].files().get("/etc/nova/nova.conf") if host in ctx.plan.hosts else None
            )
            hand_edit = planned is not None and "virt_type = kvm" not in planned.content
            fix = (
                "`stackwright apply` writes back the planned virt_type (a hand edit set kvm)"
                if hand_edit
                else f"set `virt_type: qemu` (or auto) for {host} in the inventory, then `stackwright apply`"
            )
            rows.append(
                Row(
                    "virt-type-kvm",
                    host,
                    "fail",
                    f"virt_type = kvm ({where}), but KVM cannot run guests here: {reason}",
                    fix,
                )
            )
        else:
            note = f"virt_type = {value} ({where})" + (f"; KVM: {reason}" if value == "kvm" else "")
            rows.append(ok("virt-type-kvm", host, note))
    return rows
