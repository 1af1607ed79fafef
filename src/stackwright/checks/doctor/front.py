"""The TLS front: HAProxy on the controller's external address serves every public endpoint with a
certificate that verifies (the controller trusts the cloud's CA) and is not about to expire."""

from __future__ import annotations

import shlex
import time

from stackwright.certs import RENEW_WITHIN
from stackwright.checks.doctor.base import Context, Fix, Row, check, ok
from stackwright.dashboard import has_dashboard
from stackwright.inventory import Inventory
from stackwright.releases.modern.tls_front import DASHBOARD_PORT, apis, https_endpoints

RENEW_DAYS = RENEW_WITHIN.days  # apply renews a certificate of the cloud's CA inside it


def front_ports(inventory: Inventory) -> list[int]:
    return [port for _, port in apis(inventory)] + ([DASHBOARD_PORT] if has_dashboard(inventory) else [])


def front_endpoints(inventory: Inventory) -> list[tuple[str, int]]:
    return https_endpoints(inventory, has_dashboard(inventory))


def front_script(inventory: Inventory) -> str:
    """On the controller: a TLS handshake with each endpoint of the front, verified as a client
    would (the controller trusts the cloud's CA)."""
    probe = (
        "import socket, ssl\n"
        "context = ssl.create_default_context()\n"
        f"for address, port in {front_endpoints(inventory)!r}:\n"
        "    try:\n"
        "        with socket.create_connection((address, port), timeout=5) as raw:\n"
        "            with context.wrap_socket(raw, server_hostname=address) as tls:\n"
        "                after = ssl.cert_time_to_seconds(tls.getpeercert()['notAfter'])\n"
        "        print(f'{address}:{port}=ok {after:.0f}')\n"
        "    except ssl.SSLCertVerificationError as exc:\n"
        "        print(f'{address}:{port}=bad {exc.verify_message}')\n"
        "    except (OSError, ssl.SSLError) as exc:\n"
        "        print(f'{address}:{port}=none {exc}'.replace(chr(10), ' '))\n"
    )
    return f"echo '@@sw:tls'\ntimeout 60 python3 -c {shlex.quote(probe)} 2>/dev/null\n"


@check("tls-front")
def tls_front(ctx: Context) -> list[Row]:
    """Clients fail with `CERTIFICATE_VERIFY_FAILED`, `certificate has expired` or `connection
    refused` on the public endpoints (https://<external>:5000 ...).

    On the controller, each port the TLS front serves must complete a TLS handshake whose
    certificate verifies against the cloud's CA for the external address (and for the management
    address, where the front serves the internal endpoints: tls.internal) and is valid for more than
    30 days (`apply` renews a certificate of the cloud's own CA within 30 days of its expiry; an
    operator's own must be replaced in the inventory's tls.cert). The safe fix restarts HAProxy."""
    rows: list[Row] = []
    if not ctx.inventory.tls.enabled:
        return rows
    for host in ctx.examined("controller"):
        values = ctx.data[host].values("tls")
        for address, port in front_endpoints(ctx.inventory):
            state, _, detail = (values.get(f"{address}:{port}") or ["none not probed"])[0].partition(" ")
            where = f"https://{address}:{port}"
            fix = None
            if state == "ok":
                days = (float(detail) - time.time()) / 86400
                if days > RENEW_DAYS:
                    rows.append(ok("tls-front", host, f"{where}: certificate verifies, {days:.0f} days left"))
                    continue
                cause = f"{where}: the certificate expires in {days:.0f} days"
                hint = (
                    "`stackwright apply` renews a certificate of the cloud's CA; replace your own "
                    "(tls.cert) and apply"
                )
            elif state == "bad":
                cause = f"{where}: the certificate does not verify ({detail})"
                hint = "`stackwright apply` writes the front's certificate and the CA again"
            else:
                cause = f"{where}: no TLS answer ({detail})"
                hint = (
                    "on the controller: `systemctl status haproxy`; "
                    "`haproxy -c -f /etc/haproxy/haproxy.cfg` names a wrong line"
                )
                fix = Fix(host, "systemctl restart haproxy", "restart HAProxy")
            rows.append(Row("tls-front", host, "fail", cause, hint, fix))
    return rows
