"""The dashboard and the VM console: Horizon's login page, the noVNC proxy, the compute nodes' VNC."""

from __future__ import annotations

import shlex

from stackwright.checks.doctor.base import Context, Fix, Row, check, ok, tail
from stackwright.dashboard import has_dashboard, login_url
from stackwright.inventory import Inventory

DASHBOARD_ERROR_LOG = "/var/log/openstack-dashboard/error.log"
NOVA_CONF = "/etc/nova/nova.conf"


def novnc_url(inventory: Inventory) -> str:
    return f"{inventory.public_url_base}:6080/vnc_lite.html"


def controller_script(inventory: Inventory) -> str:
    """On the controller: what the dashboard's and the proxy's pages answer on the public address
    (the way a browser comes), and the dashboard's last errors."""
    urls = {"novnc": novnc_url(inventory)}
    if has_dashboard(inventory):
        urls["dashboard"] = login_url(inventory)
    probe = (
        "import urllib.error, urllib.request\n"
        "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
        f"for name, url in {urls!r}.items():\n"
        "    try:\n"
        "        status = str(opener.open(url, timeout=10).status)\n"
        "    except urllib.error.HTTPError as exc:\n"
        "        status = str(exc.code)\n"
        "    except Exception as exc:\n"
        "        status = 'none ' + str(getattr(exc, 'reason', exc))\n"
        "    print(name + '=' + status)\n"
    )
    return (
        "echo '@@sw:dashboard'\n"
        f"timeout 25 python3 -c {shlex.quote(probe)} 2>/dev/null\n"
        # mod_wsgi prefixes every line the dashboard writes with [wsgi:error]: only real errors count.
        f"tail -n 400 {DASHBOARD_ERROR_LOG} 2>/dev/null | grep -E 'ERROR|Traceback|Exception|AH[0-9]+:' | "
        "grep -v Warning | tail -n 3 | cut -c1-300 | sed 's/^/error=/'\n"
    )


def compute_script() -> str:
    """On a compute node: nova's [vnc] addresses and the node's own addresses."""
    return (
        "echo '@@sw:vnc'\n"
        f'awk \'/^[ \\t]*\\[/{{s=$0; gsub(/[ \\t\\[\\]]/, "", s)}} '
        's=="vnc" && /^[ \\t]*(server_proxyclient_address|server_listen)[ \\t]*=/ '
        '{k=$0; sub(/[ \\t]*=.*/, "", k); gsub(/[ \\t]/, "", k); v=$0; sub(/^[^=]*=[ \\t]*/, "", v); '
        f'print k "=" v}}\' {NOVA_CONF} 2>/dev/null\n'
        'ip -o -4 addr show 2>/dev/null | awk \'{split($4, a, "/"); print "address=" a[1]}\'\n'
    )


@check("dashboard")
def dashboard(ctx: Context) -> list[Row]:
    """The dashboard's login page shows `Internal Server Error`, `Bad Request (400)` or does not load.

    On the controller, the login page at the public address (the way a browser comes) must answer
    200; otherwise the row names the status and the last errors of the dashboard's log
    (/var/log/openstack-dashboard/error.log)."""
    rows: list[Row] = []
    for host in ctx.examined("controller") if has_dashboard(ctx.inventory) else []:
        data = ctx.data[host]
        status = data.value("dashboard", "dashboard", "not probed")
        if status == "200":
            rows.append(ok("dashboard", host, f"{login_url(ctx.inventory)}: HTTP 200"))
            continue
        errors = data.values("dashboard").get("error", [])
        because = f"; its last errors: {tail(errors, 2)}" if errors else f"; nothing in {DASHBOARD_ERROR_LOG}"
        rows.append(
            Row(
                "dashboard",
                host,
                "fail",
                f"the dashboard's login page {login_url(ctx.inventory)} answers {status}{because}",
                "`systemctl status apache2` on the controller; `stackwright apply` writes back the "
                "dashboard's settings and site",
            )
        )
    return rows


@check("console-proxy")
def console_proxy(ctx: Context) -> list[Row]:
    """A VM's console tab stays blank or says the page cannot be reached: nova-novncproxy does not
    answer.

    On the controller, the noVNC page the console tab loads (vnc_lite.html on port 6080 of the
    public address) must answer 200. The safe fix restarts nova-novncproxy."""
    rows: list[Row] = []
    for host in ctx.examined("controller"):
        status = ctx.data[host].value("dashboard", "novnc", "not probed")
        url = novnc_url(ctx.inventory)
        if status == "200":
            rows.append(ok("console-proxy", host, f"{url}: HTTP 200"))
            continue
        rows.append(
            Row(
                "console-proxy",
                host,
                "fail",
                f"nova-novncproxy does not serve the console page {url} ({status})",
                "restart it on the controller (`journalctl -u nova-novncproxy` says why it stopped)",
                Fix(host, "systemctl restart nova-novncproxy", "restart nova-novncproxy"),
            )
        )
    return rows


@check("vnc-address")
def vnc_address(ctx: Context) -> list[Row]:
    """The console tab shows `Failed to connect to server` or `Disconnected` while the VM runs: the
    compute node's VNC server is where the proxy cannot reach it.

    On every compute node, nova.conf's [vnc] server_proxyclient_address (where the proxy connects)
    must be an address of that node, and server_listen that address or 0.0.0.0."""
    rows: list[Row] = []
    for host in ctx.examined("compute"):
        values = ctx.data[host].values("vnc")
        proxyclient = (values.get("server_proxyclient_address") or ["(unset)"])[-1]
        listen = (values.get("server_listen") or ["(unset)"])[-1]
        addresses = set(values.get("address", []))
        problems = []
        if proxyclient not in addresses:
            problems.append(f"server_proxyclient_address {proxyclient} is not an address of {host}")
        if listen not in (proxyclient, "0.0.0.0"):
            problems.append(f"server_listen {listen} is not {proxyclient}")
        if not problems:
            rows.append(ok("vnc-address", host, f"VNC on {proxyclient}"))
            continue
        rows.append(
            Row(
                "vnc-address",
                host,
                "fail",
                "; ".join(problems) + " (the console proxy connects there)",
                f"`stackwright apply` writes {host}'s management address back into nova.conf's [vnc] "
                "(an override that sets it must name an address of the node)",
            )
        )
    return rows
