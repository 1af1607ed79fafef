"""nova-compute's connections, probed from each compute node with the credentials in its config."""

from __future__ import annotations

import json

from stackwright.checks.doctor.base import Context, Row, check, ok

NAMES = {"rabbitmq": "RabbitMQ", "keystone": "Keystone", "placement": "Placement"}
UNITS = {"rabbitmq": "rabbitmq-server", "keystone": "keystone", "placement": "placement-api"}
WHERE = {
    "rabbitmq": "transport_url in [DEFAULT]",
    "keystone": "password in [placement] (and [neutron], [service_user])",
    "placement": "[placement]",
}


def probe_results(lines: list[str]) -> dict[str, tuple[str, str]]:
    """{"rabbitmq": ("refused", "10.10.10.51:5672: connection refused"), ...} from the probe's JSON lines."""
    found: dict[str, tuple[str, str]] = {}
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and "target" in item:
            found[str(item["target"])] = (str(item.get("status", "error")), str(item.get("detail", "")))
    return found


def diagnose(target: str, status: str, detail: str, controller: str) -> tuple[str, str]:
    """(cause, fix) for one failed probe."""
    name, unit = NAMES.get(target, target), UNITS.get(target, target)
    if status == "refused":
        return (
            f"{name} {detail}: nothing listens there — nova-compute cannot connect",
            f"on {controller}: `systemctl start {unit}` (see service-down)",
        )
    if status == "auth":
        return (
            f"{name} {detail}: wrong password — nova.conf and {name} disagree",
            f"make them agree: the password is in passwords.yaml; `stackwright apply` rewrites nova.conf, "
            f"and on {controller} set the service's password to it"
            + (" (`rabbitmqctl change_password openstack ...`)" if target == "rabbitmq" else ""),
        )
    if status == "unreachable":
        return (
            f"{name} {detail}: no answer from the compute node (network, firewall or address)",
            f"check the management network between this host and {controller} and the address in nova.conf "
            f"({WHERE.get(target, '')})",
        )
    return (f"{name}: {detail or status}", f"see {WHERE.get(target, 'nova.conf')} and the controller's logs")


@check("compute-connectivity")
def compute_connectivity(ctx: Context) -> list[Row]:
    """nova-compute.log shows `AMQP server on 10.10.10.51:5672 is unreachable: [Errno 111]
    ECONNREFUSED`, `ACCESS_REFUSED - Login was refused`, `Unauthorized (HTTP 401)` or
    `Connection refused` towards Keystone/Placement; the compute service turns `down`.

    From each compute node, a small probe reads /etc/nova/nova.conf and connects to RabbitMQ
    (an AMQP login with transport_url), gets a token from Keystone with the [placement]
    credentials and calls Placement with it — telling `connection refused` (the service is not
    running) from `wrong password` (the two sides disagree). No password is printed."""
    rows: list[Row] = []
    controller = ctx.inventory.controller_name
    for host in ctx.examined("compute"):
        results = probe_results(ctx.data[host].lines("probe"))
        if not results:
            rows.append(
                Row(
                    "compute-connectivity",
                    host,
                    "fail",
                    "the probe did not run: "
                    + (" ".join(ctx.data[host].lines("probe"))[:300] or "no output"),
                    "is python3 installed, and nova.conf readable by root?",
                )
            )
            continue
        failed = False
        for target in ("rabbitmq", "keystone", "placement"):
            status, detail = results.get(target, ("skip", ""))
            if status in ("ok", "skip"):
                continue
            failed = True
            cause, fix = diagnose(target, status, detail, controller)
            rows.append(Row("compute-connectivity", host, "fail", cause, fix))
        if not failed:
            reached = ", ".join(NAMES[t] for t in NAMES if results.get(t, ("",))[0] == "ok")
            rows.append(ok("compute-connectivity", host, f"reaches {reached} with nova.conf's credentials"))
    return rows
