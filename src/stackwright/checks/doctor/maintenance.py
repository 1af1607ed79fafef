"""Maintenance: a compute node left disabled, an instance left MIGRATING or in ERROR, a compute node
that cannot reach a peer's migration listener."""

from __future__ import annotations

import base64
import binascii
import datetime as dt

from cryptography import x509

from stackwright.certs import RENEW_WITHIN, now
from stackwright.checks.doctor.base import Context, Row, check, ok
from stackwright.checks.doctor.gather import LIBVIRT_SERVER_CERT, LIBVIRT_TLS_PORT, compute_peers
from stackwright.maintenance import DRAIN_REASON

STUCK_AFTER = dt.timedelta(minutes=15)  # a live migration of the lab's guests takes under one
# nova's libvirt driver disables its own service while it cannot reach libvirt and enables it
# again when it can (nova/virt/libvirt/driver.py, DISABLE_PREFIX): the libvirtd check names that cause.
NOVA_AUTO_DISABLE = "AUTO: "


@check("compute-disabled")
def compute_disabled(ctx: Context) -> list[Row]:
    """The scheduler never places a new instance on a compute node although every service is up:
    its nova-compute is disabled, e.g. drained for maintenance and never put back.

    nova keeps the reason given when it was disabled (`stackwright drain` writes
    "stackwright drain: maintenance"); a node nova disabled itself ("AUTO: Connection to libvirt
    lost") is left to the libvirtd check: nova enables it again on its own. Fix: `stackwright
    undrain FILE HOST` (or `openstack compute service set --enable HOST nova-compute`) once the
    maintenance is over."""
    if ctx.cloud is None or ctx.cloud.error:
        return []
    rows: list[Row] = []
    for host in [h for h in ctx.inventory.names_with("compute") if h in ctx.hosts]:
        if host not in ctx.cloud.disabled:
            rows.append(ok("compute-disabled", host, "nova-compute enabled"))
            continue
        reason = ctx.cloud.disabled[host] or "no reason given"
        if reason.startswith(NOVA_AUTO_DISABLE):
            rows.append(
                ok("compute-disabled", host, f"disabled by nova itself until libvirt answers ({reason})")
            )
            continue
        drained = reason.startswith(DRAIN_REASON)
        rows.append(
            Row(
                "compute-disabled",
                host,
                "warn",
                f"nova-compute on {host} is disabled ({reason}): no new instance is placed there"
                + (" — drained and not put back?" if drained else ""),
                f"`stackwright undrain FILE {host}` when its maintenance is over",
            )
        )
    return rows


@check("instance-stuck")
def instance_stuck(ctx: Context) -> list[Row]:
    """An instance stays MIGRATING long after its migration should have ended, or is in ERROR
    after a failed migration or build: its users cannot reach or change it.

    nova's fault message says why. A migration that hangs can be aborted (`openstack server
    migration abort`), an instance in ERROR whose guest runs can be reset (`openstack server set
    --state active`) and rebooted; one whose build failed is deleted and booted again."""
    return stuck_rows(ctx, dt.datetime.now(dt.UTC))


def stuck_rows(ctx: Context, now: dt.datetime) -> list[Row]:
    if ctx.cloud is None or ctx.cloud.error:
        return []
    rows: list[Row] = []
    for instance in ctx.cloud.instances:
        host = instance.host if instance.host in ctx.inventory.nodes else ctx.inventory.controller_name
        if host not in ctx.hosts:
            continue
        since = _parse(instance.updated_at)
        if instance.status == "MIGRATING":
            if since is not None and now - since < STUCK_AFTER:
                continue  # a migration in progress
            message = f"instance {instance.name} ({instance.id}) MIGRATING since {instance.updated_at or '?'}"
            hint = (
                f"`openstack server migration list --server {instance.id}`, then "
                f"`openstack server migration abort {instance.id} MIGRATION_ID`"
            )
        else:
            message = (
                f"instance {instance.name} ({instance.id}) in ERROR: {instance.fault or 'no fault recorded'}"
            )
            hint = (
                f"if its guest runs: `openstack server set --state active {instance.id}` and "
                f"`openstack server reboot --hard {instance.id}`; otherwise delete and boot it again"
            )
        rows.append(Row("instance-stuck", host, "fail", message, hint))
    if not rows:
        rows.append(ok("instance-stuck", ctx.inventory.controller_name, "no instance MIGRATING or in ERROR"))
    return rows


def _parse(stamp: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@check("migration-path")
def migration_path(ctx: Context) -> list[Row]:
    """Live migration (drain) or cold migration and resize from a compute node to a peer fails
    while both nodes look healthy: the node cannot reach the peer's libvirtd TLS listener (16514 on
    the management address), the TLS connection is refused (a certificate that does not verify),
    or nova's SSH key is refused there.

    Each compute node connects to every peer's listener, opens a libvirt connection over TLS
    with its own certificate (`virsh -c qemu+tls://PEER/system`, as a migration does) and, as the
    nova user, runs `true` over SSH with the migration key (host key checked). Fix: on the peer,
    `systemctl status libvirtd-tls.socket` (and its address on the management network); between
    them, routes and firewalls on the management network; a refused TLS connection, SSH key or host
    key: `stackwright apply` (after `stackwright trust FILE` for a reinstalled peer)."""
    rows: list[Row] = []
    names = {str(n.management): name for name, n in ctx.inventory.nodes.items()}
    for host in ctx.examined("compute"):
        peers = compute_peers(ctx.inventory, host)
        if not peers:
            rows.append(ok("migration-path", host, "the only compute node: no peer to migrate to"))
            continue
        seen = {}
        for line in ctx.data[host].values("migration").get("peer", []):
            address, _, rest = line.partition(" ")
            seen[address] = rest.split()
        broken: list[str] = []
        for address in peers:
            listener, ssh = (seen.get(address) or ["no", "no"])[:2]
            peer = names.get(address, address)
            if listener == "tls":
                broken.append(
                    f"{peer}'s libvirtd ({address}:{LIBVIRT_TLS_PORT}) refuses the TLS connection "
                    "(a certificate does not verify)"
                )
            elif listener != "yes":
                broken.append(f"{peer}'s libvirtd listener {address}:{LIBVIRT_TLS_PORT} does not answer")
            if ssh == "no":
                broken.append(f"nova's SSH to {peer} ({address}) fails")
        if broken:
            rows.append(
                Row(
                    "migration-path",
                    host,
                    "fail",
                    f"no migration from {host}: " + "; ".join(broken),
                    "on the peer: `systemctl status libvirtd-tls.socket`, its management address; "
                    "between them: routes, firewalls; TLS refused (`virsh -c qemu+tls://PEER/system "
                    "hostname` on the node says why) or SSH failing (a refused key or host key): "
                    "`stackwright apply`",
                )
            )
        else:
            rows.append(
                ok("migration-path", host, f"reaches {len(peers)} peer(s): libvirt over TLS and nova's SSH")
            )
    return rows


@check("migration-cert")
def migration_cert(ctx: Context) -> list[Row]:
    """Live migration fails with `The certificate has expired` or `certificate does not match
    hostname` in nova-compute.log, or doctor's migration-path names a peer refusing TLS.

    Each compute node that has a peer serves its migration certificate (/etc/pki/libvirt/servercert.pem,
    also QEMU's): it must be valid for more than 30 days and be the one the cloud's CA issued for
    the node's management address (the plan's). `apply` issues a new one within 30 days of its
    expiry, or when the node's address changed, and writes it."""
    rows: list[Row] = []
    for host in ctx.examined("compute"):
        if not compute_peers(ctx.inventory, host):
            rows.append(ok("migration-cert", host, "the only compute node: no peer uses its certificate"))
            continue
        planned = ctx.plan.hosts[host].files().get(LIBVIRT_SERVER_CERT) if host in ctx.plan.hosts else None
        encoded = ctx.data[host].value("migration", "cert")
        where = f"{host}:{LIBVIRT_SERVER_CERT}"
        try:
            pem = base64.b64decode(encoded, validate=True).decode()
            cert = x509.load_pem_x509_certificate(pem.encode())
        except (binascii.Error, UnicodeDecodeError, ValueError):
            rows.append(Row("migration-cert", host, "fail", f"{where}: missing", "`stackwright apply`"))
            continue
        days = (cert.not_valid_after_utc - now()) / dt.timedelta(days=1)
        if days <= RENEW_WITHIN.days:
            cause = f"{where}: the certificate expires in {days:.0f} days"
        elif planned is not None and planned.content != pem:
            cause = f"{where}: not the certificate the cloud's CA issued for {host} (in tls/)"
        else:
            rows.append(ok("migration-cert", host, f"{where}: the CA's certificate, {days:.0f} days left"))
            continue
        rows.append(Row("migration-cert", host, "fail", cause, "`stackwright apply` issues and writes it"))
    return rows
