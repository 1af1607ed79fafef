"""Services: units that should run but do not, and services the APIs report down."""

from __future__ import annotations

from stackwright.checks.doctor.base import Context, Fix, HostData, Row, check, ok, tail
from stackwright.checks.verify import AGENT_UNITS

# libvirtd has its own check (`libvirtd`), which knows about its sockets.
KIND_NAMES = {"nova": "nova service", "agent": "neutron agent", "volume": "cinder service"}
OWN_CHECK = {"libvirtd", "libvirtd.socket", "libvirtd-tls.socket"}


def unit_states(data: HostData) -> dict[str, str]:
    """{"nova-compute": "active", "chrony": "skipped", "rabbitmq-server": "inactive (dead)"}."""
    states: dict[str, str] = {}
    block: dict[str, str] = {}
    for line in [*data.lines("units"), ""]:
        if not line.strip():
            if "Id" in block:
                unit = block["Id"].removesuffix(".service")
                state = block.get("ActiveState", "unknown")
                if (
                    state != "active"
                    and block.get("ConditionResult") == "no"
                    and block.get("ConditionTimestamp")
                ):
                    state = "skipped"  # a Condition*= was false (chrony in a container): by design
                elif state != "active":
                    state = f"{state} ({block.get('SubState', '?')})"
                states[unit] = state
            block = {}
            continue
        key, _, value = line.partition("=")
        block[key] = value
    return states


def unit_errors(data: HostData, unit: str) -> list[str]:
    """The last error lines about `unit`: its journal (when not running) and its log file."""
    found = []
    for line in data.lines("logs"):
        name, _, rest = line.partition(" ")
        if name == unit:
            found.append(rest.partition(" ")[2])
    return found


def _because(errors: list[str]) -> str:
    return (
        f"; last errors: {tail(errors, 2)}"
        if errors
        else "; no error in its journal or log (stopped by hand?)"
    )


@check("service-down")
def service_down(ctx: Context) -> list[Row]:
    """A nova service shows `XXX` / `down` in `openstack compute service list`, a neutron agent is
    `dead` (`openstack network agent list`), or a service the host needs is stopped.

    Every unit the plan keeps running must be active (units skipped by a `Condition*=`, such as
    chrony in a container, count as running); services the APIs report down are listed too. The
    cause comes from that host: the unit's state and the last error lines of its journal and log.
    Fix: start the stopped unit (`--fix` does); for a service running but reported down, follow the
    errors (often `compute-connectivity`)."""
    rows: list[Row] = []
    for host in ctx.examined():
        data = ctx.data[host]
        states = unit_states(data)
        bad = 0
        for unit, state in states.items():
            if unit in OWN_CHECK or state in ("active", "skipped"):
                continue
            bad += 1
            rows.append(
                Row(
                    "service-down",
                    host,
                    "fail",
                    f"{unit} is {state}{_because(unit_errors(data, unit))}",
                    f"start it: `systemctl start {unit}` (then `journalctl -u {unit}` if it stops again)",
                    Fix(host, f"systemctl start {unit}", f"started {unit}"),
                )
            )
        for service in ctx.cloud.services if ctx.cloud else []:
            if service.host != host or service.up:
                continue
            unit = AGENT_UNITS.get(service.name, service.name)
            if unit in states and states[unit] not in ("active", "skipped"):
                continue  # already reported as stopped
            bad += 1
            kind = {"nova": "nova service", "agent": "neutron agent", "volume": "cinder service"}[
                service.kind
            ]
            rows.append(
                Row(
                    "service-down",
                    host,
                    "fail",
                    f"the APIs report {kind} {service.name} {service.detail} although {unit} runs"
                    + _because(unit_errors(data, unit)),
                    f"it cannot report in: see compute-connectivity and `journalctl -u {unit}`; "
                    f"`systemctl restart {unit}` once the cause is fixed",
                )
            )
        if not bad:
            up = sum(1 for s in (ctx.cloud.services if ctx.cloud else []) if s.host == host)
            note = f"{len(states)} units running" + (f", {up} services up in the APIs" if up else "")
            rows.append(ok("service-down", host, note))
    if ctx.cloud is not None and ctx.cloud.error:
        rows.append(
            Row(
                "service-down",
                ctx.inventory.controller_name,
                "warn",
                f"the APIs could not be asked: {ctx.cloud.error}",
                "`stackwright verify FILE` once Keystone answers",
            )
        )
    return rows
