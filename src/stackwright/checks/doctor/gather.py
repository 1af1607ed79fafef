"""Gather: one batched shell script per host (sections of `key=value` lines), hosts in parallel.

Two round trips per host: preflight's probe (clock, addresses, KVM, OVS datapath: the facts
the plan needs, as `plan --live` does), then the doctor's script built from that host's plan
(units, logs, libvirt, instances, tunnels, cells, managed files, option validation, and a
probe of RabbitMQ/Keystone/Placement from compute nodes). The APIs are asked meanwhile.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from importlib import resources

from stackwright.checks.doctor import console, fence, front, storage
from stackwright.checks.doctor.base import CloudData, HostData, InstanceState, ServiceState
from stackwright.checks.doctor.options import options_script
from stackwright.checks.doctor.tools import tools_script
from stackwright.context import HostFacts
from stackwright.engine.remote import Remote
from stackwright.inventory import Inventory, LoadedInventory
from stackwright.releases.modern.nova_ssh import NOVA_PRIVATE_KEY
from stackwright.steps import HostPlan

MARK = "@@sw:"
INSTANCES = "/var/lib/nova/instances"
LIBVIRT_SOCK = "/run/libvirt/libvirt-sock"
QEMU_USER = "libvirt-qemu"
OVS_AGENT_INI = "/etc/neutron/plugins/ml2/openvswitch_agent.ini"
LOG_DIRS = (
    "/var/log/nova",
    "/var/log/neutron",
    "/var/log/glance",
    "/var/log/keystone",
    "/var/log/placement",
    "/var/log/cinder",
)
# libvirtd is socket-activated on Debian 12: these sockets start it on demand.
LIBVIRT_SOCKETS = ("libvirtd.socket", "libvirtd-ro.socket", "libvirtd-admin.socket", "libvirtd-tls.socket")
LIBVIRT_TLS_PORT = 16514
LIBVIRT_SERVER_CERT = "/etc/pki/libvirt/servercert.pem"


def watched_units(plan: HostPlan) -> list[str]:
    units = [s.name for s in plan.services() if s.running]
    if "libvirtd" in units:
        units.append("libvirtd.socket")
    return units


def peers(inventory: Inventory, name: str) -> list[str]:
    """Data addresses of the other tunnel endpoints (network and compute nodes)."""
    return [
        str(node.data)
        for other, node in inventory.nodes.items()
        if other != name and node.data is not None and (node.has("network") or node.has("compute"))
    ]


def is_tunnel_endpoint(inventory: Inventory, name: str) -> bool:
    node = inventory.nodes[name]
    return node.data is not None and (node.has("network") or node.has("compute"))


def _section(name: str) -> str:
    return f"echo '{MARK}{name}'\n"


def units_script(units: list[str]) -> str:
    if not units:
        return ""
    names = " ".join(map(shlex.quote, units))
    return (
        _section("units")
        + "systemctl show -p Id,ActiveState,SubState,ConditionResult,ConditionTimestamp "
        + f"{names} 2>/dev/null\n"
        + _section("logs")
        + f"for u in {names}; do\n"
        '  state=$(systemctl is-active "$u" 2>/dev/null)\n'
        '  if [ "$state" != active ]; then\n'
        '    journalctl -u "$u" -p err -n 3 -o cat --no-pager 2>/dev/null | cut -c1-300 | '
        'sed "s|^|$u journal |"\n'
        "  fi\n"
        f"  for d in {' '.join(LOG_DIRS)}; do\n"
        '    [ -f "$d/$u.log" ] || continue\n'
        '    tail -n 400 "$d/$u.log" | grep -E " (ERROR|CRITICAL) " | tail -n 3 | cut -c1-400 | '
        'sed "s|^|$u log |"\n'
        "  done\n"
        "done\n"
    )


def compute_script() -> str:
    probe = resources.files("stackwright.checks.doctor").joinpath("probe.py").read_text()
    return (
        _section("libvirt")
        + f"[ -S {LIBVIRT_SOCK} ] && echo sock=present || echo sock=missing\n"
        + "python3 -c 'import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(3)\n"
        f'try:\n s.connect("{LIBVIRT_SOCK}"); print("connect=ok")\n'
        'except OSError as e: print("connect=" + (e.strerror or type(e).__name__))\' 2>/dev/null\n'
        "tail -n 2000 /var/log/nova/nova-compute.log 2>/dev/null | grep -E 'Failed to connect socket' | "
        "tail -n 1 | cut -c1-400 | sed 's/^/logged=/'\n"
        "tail -n 2000 /var/log/nova/nova-compute.log 2>/dev/null | grep -E 'Connection to libvirt lost' | "
        "tail -n 1 | cut -c1-400 | sed 's/^/lost=/'\n"
        + _section("instances")
        + f"stat -c 'stat=%n %U %G %a' /var/lib/nova {INSTANCES} 2>/dev/null\n"
        f"find {INSTANCES} -xdev -mindepth 1 -maxdepth 2 ! -user nova ! -user {QEMU_USER} ! -user root "
        "-printf 'odd=%u:%g %p\\n' 2>/dev/null | head -n 5\n"
        f"find {INSTANCES} -xdev -mindepth 1 -maxdepth 1 -user root ! -name '*.log' "
        "-printf 'rootowned=%p\\n' 2>/dev/null | head -n 5\n"
        f"runuser -u nova -- test -w {INSTANCES} 2>/dev/null && echo nova_writes=yes || echo nova_writes=no\n"
        f"runuser -u {QEMU_USER} -- test -x {INSTANCES} 2>/dev/null && echo qemu_enters=yes || "
        "echo qemu_enters=no\n"
        + _section("virt")
        + "for f in /etc/nova/nova.conf /etc/nova/nova-compute.conf; do\n"
        '  awk -v f="$f" \'/^[ \\t]*\\[/{s=$0; gsub(/[ \\t\\[\\]]/, "", s)} '
        's=="libvirt" && $0 ~ /^[ \\t]*virt_type[ \\t]*=/ {v=$0; sub(/^[^=]*=[ \\t]*/, "", v); '
        'print "virt_type=" f " " v}\' "$f" 2>/dev/null\n'
        "done\n"
        + _section("probe")
        + "timeout 20 python3 - <<'STACKWRIGHT_PROBE' 2>&1 | tail -n 5\n"
        + probe
        + "\nSTACKWRIGHT_PROBE\n"
    )


def tunnel_script(peer_addresses: list[str]) -> str:
    pings = " ".join(map(shlex.quote, peer_addresses))
    return (
        _section("tunnel")
        + f"local=$(sed -n 's/^[ \\t]*local_ip[ \\t]*=[ \\t]*//p' {OVS_AGENT_INI} 2>/dev/null | head -n 1)\n"
        'echo "local_ip=$local"\n'
        'ip -o -4 addr show 2>/dev/null | awk \'{print "addr=" $2 " " $4}\'\n'
        'for p in $(ovs-vsctl --timeout=5 list-ports br-tun 2>/dev/null); do echo "brtun=$p"; done\n'
        "ovs-vsctl --timeout=5 --format=csv --data=bare --no-headings "
        "--columns=name,type,ofport,error,options list Interface 2>/dev/null | sed 's/^/iface=/'\n"
        "ovs-ofctl dump-flows br-tun table=0 2>/dev/null | grep -o 'in_port=[^ ,]*' | sed 's/^/flow0=/'\n"
        f"for ip in {pings}; do\n"
        '  ( if ping -c 1 -W 2 ${local:+-I "$local"} "$ip" >/dev/null 2>&1; then echo "peer=$ip yes"; '
        'else echo "peer=$ip no"; fi ) &\n'
        "done\n"
        "wait\n"
    )


def compute_peers(inventory: Inventory, name: str) -> list[str]:
    """Management addresses of the other compute nodes (live migration's destinations)."""
    computes = inventory.names_with("compute")
    return [str(inventory.nodes[other].management) for other in computes if other != name]


def migration_script(peer_addresses: list[str], nova_ssh: bool) -> str:
    """Per peer: does its libvirtd TLS listener answer, does a TLS connection with this node's
    certificate get in (`virsh -c qemu+tls://`: both certificates verified, as a migration's), and
    (when nova moves disks over SSH) does nova's key log in there (`true`, host key checked)? And
    the certificate this node serves, for its expiry and names."""
    ssh = (
        'if runuser -u nova -- ssh -o BatchMode=yes -o ConnectTimeout=3 "nova@$ip" true '
        "</dev/null >/dev/null 2>&1; then s=yes; else s=no; fi\n"
        if nova_ssh
        else "s=na\n"
    )
    return (
        _section("migration") + f"for ip in {' '.join(map(shlex.quote, peer_addresses))}; do\n"
        "  (\n"
        f'  if ! timeout 3 bash -c "</dev/tcp/$ip/{LIBVIRT_TLS_PORT}" 2>/dev/null; then l=no\n'
        '  elif timeout 10 virsh -c "qemu+tls://$ip/system" hostname </dev/null >/dev/null 2>&1; then l=yes\n'
        "  else l=tls; fi\n"
        f"  {ssh}"
        '  echo "peer=$ip $l $s"\n'
        "  ) &\n"
        "done\n"
        "wait\n"
        f'echo "cert=$(base64 -w0 {LIBVIRT_SERVER_CERT} 2>/dev/null)"\n'
    )


def cells_script() -> str:
    query = "mysql --batch --skip-column-names -e"
    return (
        _section("cells")
        + f"{query} 'SELECT host FROM nova_api.host_mappings' 2>&1 | sed 's/^/mapped=/'\n"
        + f"{query} 'SELECT DISTINCT host FROM nova.compute_nodes WHERE deleted = 0' 2>&1 | "
        "sed 's/^/registered=/'\n"
    )


def files_script(paths: list[str]) -> str:
    body = "".join(
        f'p={shlex.quote(p)}; if [ -f "$p" ]; then '
        'echo "file=$p $(stat -c "%a %U %G" "$p") $(sha256sum < "$p" | cut -c1-64)"; '
        'else echo "file=$p MISSING"; fi\n'
        for p in paths
    )
    return _section("files") + body


def host_script(inventory: Inventory, name: str, plan: HostPlan) -> str:
    node = inventory.nodes[name]
    parts = [units_script(watched_units(plan))]
    if node.has("compute"):
        parts.append(compute_script())
        parts.append(tools_script())
        parts.append(console.compute_script())
    if name == inventory.controller_name:
        parts.append(console.controller_script(inventory))
        if inventory.tls.enabled:
            parts.append(front.front_script(inventory))
    if storage.is_first_monitor(plan):
        parts.append(storage.ceph_script())
    uuid = storage.secret_uuid(plan)
    if uuid is not None:
        parts.append(storage.secret_script(uuid))
    if is_tunnel_endpoint(inventory, name):
        parts.append(tunnel_script(peers(inventory, name)))
    if node.has("compute") and compute_peers(inventory, name):
        parts.append(migration_script(compute_peers(inventory, name), NOVA_PRIVATE_KEY in plan.files()))
    if name == inventory.controller_name and inventory.names_with("compute"):
        parts.append(cells_script())
    if inventory.firewall.enabled:
        parts.append(fence.firewall_script())
    parts.append(fence.listeners_script())
    parts.append(files_script(sorted(plan.files())))
    parts.append(options_script(plan))
    return "".join(parts)


def parse_sections(stdout: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(MARK):
            current = sections.setdefault(line[len(MARK) :].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def facts_from_preflight(inventory: Inventory, name: str, values: Mapping[str, list[str]]) -> HostFacts:
    """The plan's facts from preflight's probe, as `preflight_host` decides them."""
    kvm_ok = (values.get("kvm") or ["no"])[0].startswith("ok")
    chosen = inventory.virt_type_of(name)
    virt_type = ("kvm" if kvm_ok else "qemu") if chosen == "auto" else chosen
    container = (values.get("container") or ["none"])[0]
    return HostFacts(
        virt_type=virt_type,
        ovs_datapath=(values.get("ovs") or ["system"])[0],
        containerized=container not in ("none", ""),
    )


def run_host_script(remote: Remote, script: str, data: HostData, timeout: float = 120) -> None:
    result = remote.run("sh -s", stdin=script, timeout=timeout)
    if result.rc == 124:
        data.error = f"the doctor's script timed out after {timeout:.0f} s"
        return
    data.sections = parse_sections(result.stdout)


def gather_cloud(loaded: LoadedInventory, passwords: Mapping[str, str]) -> CloudData:
    """Nova services and neutron agents as the APIs report them; an error text when unreachable."""
    import socket

    from stackwright.checks.verify import gather_agents, gather_services, short
    from stackwright.cloud import admin_connection

    address = str(loaded.model.controller.management)
    try:
        socket.create_connection((address, 5000), timeout=3).close()
    except OSError as exc:
        return CloudData(error=f"Keystone at {address}:5000 does not answer ({exc.strerror or exc})")
    try:
        conn = admin_connection(loaded, passwords, api_timeout=15)
        services = gather_services(conn)
        states = [
            ServiceState("nova", s.binary, short(s.host), s.state == "up", f"{s.state}, {s.status}")
            for s in services
        ]
        states += [
            ServiceState("agent", a.agent_type, short(a.host), a.alive, "alive" if a.alive else "dead")
            for a in gather_agents(conn)
        ]
        disabled = {
            short(s.host): s.disabled_reason
            for s in services
            if s.binary == "nova-compute" and s.status == "disabled"
        }
        if loaded.model.names_with("storage"):
            states += [
                ServiceState("volume", str(s.binary), str(s.host), s.state == "up", f"{s.state}, {s.status}")
                for s in conn.block_storage.services()
            ]
        instances = [
            InstanceState(
                str(server.id),
                str(server.name),
                short(str(server.compute_host or "")),
                str(server.status),
                str(server.updated_at or ""),
                str((server.fault or {}).get("message", "")),
            )
            for status in ("MIGRATING", "ERROR")
            for server in conn.compute.servers(all_projects=True, status=status)
        ]
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return CloudData(error=f"{type(exc).__name__}: {first}"[:300])
    return CloudData(services=states, disabled=disabled, instances=instances)
