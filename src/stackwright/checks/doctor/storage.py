"""Storage: the Ceph cluster's health and OSDs (asked on the first monitor), cinder-volume, and
each compute node's libvirt secret (qemu's key to Ceph)."""

from __future__ import annotations

import hashlib
import re

from stackwright.ceph import osd_hosts
from stackwright.checks.doctor.base import Context, Fix, Row, check, ok, tail
from stackwright.releases.modern.ceph import CEPH, POOLS_SCRIPT
from stackwright.releases.modern.compute import LIBVIRT_SECRET_VALUE, LIBVIRT_SECRET_XML, define_secret
from stackwright.steps import HostPlan
from stackwright.storage_check import (
    STATUS_SCRIPT,
    CephStatus,
    expected_checks,
    parse_status,
    unexpected_checks,
)

_UUID = re.compile(r"<uuid>([0-9a-f-]{36})</uuid>")


def is_first_monitor(plan: HostPlan) -> bool:
    return POOLS_SCRIPT in plan.files()


def ceph_script() -> str:
    """On the first monitor: health, OSD counts and pools, then each OSD's up state and host."""
    return (
        "echo '@@sw:ceph'\n"
        f"{{ {STATUS_SCRIPT}; }} 2>&1 | tr '\\n' ' ' | sed 's/^/status=/'; echo\n"
        f'{CEPH} osd dump --format json 2>/dev/null | python3 -c "import json,sys\n'
        "for o in json.load(sys.stdin).get('osds', []): print('osd=%s %s' % (o['osd'], o['up']))\" "
        "2>/dev/null\n"
        f'{CEPH} osd tree --format json 2>/dev/null | python3 -c "import json,sys\n'
        "nodes = json.load(sys.stdin).get('nodes', [])\n"
        "for n in nodes:\n"
        "    if n.get('type') == 'host':\n"
        "        for c in n.get('children', []): print('where=%s %s' % (c, n['name']))\" 2>/dev/null\n"
    )


def secret_uuid(plan: HostPlan) -> str | None:
    xml = plan.files().get(LIBVIRT_SECRET_XML)
    match = _UUID.search(xml.content) if xml is not None else None
    return match.group(1) if match else None


def secret_script(uuid: str) -> str:
    """On a compute node: hashes of libvirt's secret value and of the key file apply wrote (never
    the values)."""
    return (
        "echo '@@sw:cephsecret'\n"
        # libvirtd down is the libvirtd check's: this one only says what a running libvirt holds
        "if ! timeout 10 virsh -q uri >/dev/null 2>&1; then echo libvirt=down; else\n"
        f"v=$(virsh secret-get-value {uuid} 2>/dev/null); "
        'if [ -n "$v" ]; then echo "libvirt=$(printf %s "$v" | sha256sum | cut -c1-64)"; '
        "else echo libvirt=missing; fi; fi\n"
        f"if [ -s {LIBVIRT_SECRET_VALUE} ]; then echo \"file=$(tr -d '\\n' < {LIBVIRT_SECRET_VALUE} | "
        'sha256sum | cut -c1-64)"; else echo file=missing; fi\n'
    )


def _status(ctx: Context, host: str) -> CephStatus:
    joined = ctx.data[host].value("ceph", "status")
    return parse_status(joined.replace("#osd", "\n#osd\n").replace("#pools", "\n#pools\n"))


def _first_monitor(ctx: Context) -> str | None:
    return next((h for h in ctx.examined("storage") if is_first_monitor(ctx.plan.hosts[h])), None)


@check("ceph-health")
def ceph_health(ctx: Context) -> list[Row]:
    """`openstack volume create` leaves the volume in `creating`, or `ceph -s` says HEALTH_WARN or
    HEALTH_ERR.

    On the first storage node, `ceph health detail` must list no check but POOL_NO_REDUNDANCY,
    and that one only with a single OSD host (its pools hold one replica by design). The cause is
    Ceph's own detail lines. Fix: follow them (an OSD down has its own check, `ceph-osd`); a
    monitor that does not answer: `systemctl status ceph-mon@<node>` on the storage nodes."""
    host = _first_monitor(ctx)
    if host is None:
        return []
    status = _status(ctx, host)
    if status.error or not status.health:
        return [
            Row(
                "ceph-health",
                host,
                "fail",
                f"the monitors do not answer: {status.error or 'no status'}",
                "on the storage nodes: `systemctl status ceph-mon@<node>` and /var/log/ceph/",
            )
        ]
    bad = unexpected_checks(status, osd_hosts(ctx.inventory))
    if not bad:
        expected = expected_checks(status, osd_hosts(ctx.inventory))
        note = "".join(f"; {code} expected: {why}" for code, why in sorted(expected.items()))
        return [ok("ceph-health", host, status.health + note)]
    causes = "; ".join(
        f"{code}: {tail(status.details.get(code) or [text], 2)}" for code, text in sorted(bad.items())
    )
    return [
        Row(
            "ceph-health",
            host,
            "fail",
            f"{status.health}: {causes}",
            f"on {host}: `ceph health detail` — follow its lines (an OSD down: see ceph-osd)",
        )
    ]


@check("ceph-osd")
def ceph_osd(ctx: Context) -> list[Row]:
    """`ceph -s` shows fewer OSDs up than exist (`1 osds down`), PGs `undersized`/`degraded`, or
    volumes hang in I/O.

    Every OSD the plan made must be up in the cluster's map (asked on the first storage node);
    a down OSD is named with the node that holds it and its unit's last errors. Fix: start it
    (`--fix` restarts `ceph-osd@<id>` on its node); if it stops again, /var/log/ceph/ceph-osd.<id>.log."""
    host = _first_monitor(ctx)
    if host is None:
        return []
    values = ctx.data[host].values("ceph")
    where = dict(line.split(" ", 1) for line in values.get("where", []) if " " in line)
    rows: list[Row] = []
    for line in values.get("osd", []):
        ident, _, up = line.partition(" ")
        node = where.get(ident, "")
        if up == "1":
            continue
        target = node if node in ctx.inventory.nodes else host
        rows.append(
            Row(
                "ceph-osd",
                target,
                "fail",
                f"osd.{ident} is down" + (f" (on {node})" if node else ""),
                f"on {target}: `systemctl restart ceph-osd@{ident}`; then /var/log/ceph/ceph-osd.{ident}.log",
                Fix(target, f"systemctl restart ceph-osd@{ident}", f"restarted ceph-osd@{ident}"),
            )
        )
    if not values.get("osd"):
        rows.append(
            Row("ceph-osd", host, "fail", "no OSD in the cluster's map", "re-run `stackwright apply`")
        )
    return rows or [ok("ceph-osd", host, f"{len(values.get('osd', []))} OSDs up")]


@check("cinder-volume")
def cinder_volume(ctx: Context) -> list[Row]:
    """`openstack volume create` leaves volumes in `creating` or `error`, and `openstack volume
    service list` shows cinder-volume `down`.

    cinder-volume (on the controller) must be up in Cinder's service list: it is reported down
    when the unit stopped, or when its RBD driver cannot reach Ceph (then its log says why).
    Fix: `--fix` restarts it; if it goes down again, /var/log/cinder/cinder-volume.log."""
    if not ctx.inventory.names_with("storage") or ctx.cloud is None or ctx.cloud.error:
        return []
    controller = ctx.inventory.controller_name
    mine = [s for s in ctx.cloud.services if s.kind == "volume" and s.name == "cinder-volume"]
    if mine and all(s.up for s in mine):
        return [ok("cinder-volume", controller, ", ".join(f"{s.host} {s.detail}" for s in mine))]
    what = ", ".join(f"{s.host} {s.detail}" for s in mine) or "not registered"
    return [
        Row(
            "cinder-volume",
            controller,
            "fail",
            f"cinder-volume: {what}",
            f"on {controller}: `systemctl restart cinder-volume`; /var/log/cinder/cinder-volume.log says "
            "why it stopped (Ceph reachable with client.cinder's key?)",
            Fix(controller, "systemctl restart cinder-volume", "restarted cinder-volume"),
        )
    ]


@check("ceph-secret")
def ceph_secret(ctx: Context) -> list[Row]:
    """Attaching a volume fails: nova-compute.log shows `libvirt.libvirtError: ... Secret not found`
    or qemu's `error connecting: Permission denied` for `rbd:volumes/volume-...`.

    On every compute node, libvirt must hold client.cinder's key under the secret's uuid (what
    Cinder hands Nova with each volume), the same key as the passwords file's `ceph_cinder_key`
    (compared by hash). Fix: `--fix` defines the secret again from the key file apply wrote
    (when that file holds the right key); otherwise `stackwright apply FILE --limit <node>`."""
    rows: list[Row] = []
    for host in ctx.examined("compute"):
        plan = ctx.plan.hosts[host]
        uuid = secret_uuid(plan)
        key_file = plan.files().get(LIBVIRT_SECRET_VALUE)
        if uuid is None or key_file is None:
            continue
        want = hashlib.sha256(key_file.content.strip().encode()).hexdigest()
        found = ctx.data[host].values("cephsecret")
        libvirt = (found.get("libvirt") or ["missing"])[0]
        on_disk = (found.get("file") or ["missing"])[0]
        if libvirt == want:
            rows.append(ok("ceph-secret", host, f"libvirt secret {uuid} holds client.cinder's key"))
            continue
        if libvirt == "down":
            rows.append(Row("ceph-secret", host, "skip", "libvirtd does not answer (see libvirtd)"))
            continue
        cause = (
            f"libvirt has no secret {uuid}"
            if libvirt == "missing"
            else f"libvirt secret {uuid} holds another key than client.cinder's"
        )
        repair = None
        if on_disk == want:
            repair = Fix(host, define_secret(uuid), f"set libvirt secret {uuid} to client.cinder's key")
        rows.append(
            Row(
                "ceph-secret",
                host,
                "fail",
                cause,
                f"`stackwright apply FILE --limit {host}`" + (" (or `--fix`)" if repair else ""),
                repair,
            )
        )
    return rows
