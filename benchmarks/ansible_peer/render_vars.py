"""Render stackwright's own plan for one compute node into files + a vars file for the peer playbook.

Run: .venv/bin/python benchmarks/ansible_peer/render_vars.py INVENTORY HOST OUTDIR

Uses `stackwright.planner.plan_cluster` with the lab's facts (qemu, userspace OVS, container), so
the playbook writes byte-for-byte the files `apply` writes. OUTDIR gets `files/<path>` and
`vars.yml`; it holds passwords: keep it out of the repository (the benchmark writes it under
/var/lib/stackwright/lab/perf-inventories/).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from stackwright.context import HostFacts
from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.secrets import default_passwords_path, load_passwords
from stackwright.steps import (
    Command,
    Directory,
    File,
    NetworkConfig,
    OvsBridge,
    Packages,
    Service,
    Sysctl,
    Wait,
)

# Which playbook section writes each file (the plan's order: each group precedes its service).
SECTIONS = {
    "/etc/chrony/chrony.conf": "chrony",
    "/etc/modules-load.d/neutron-br_netfilter.conf": "base",
    "/etc/libvirt/qemu.conf": "libvirt",
    "/etc/libvirt/libvirtd.conf": "libvirt",
    "/etc/sasl2/libvirt.conf": "libvirt",
    "/etc/default/libvirtd": "libvirt",
    "/etc/systemd/system/libvirtd.socket.d/stackwright.conf": "libvirt",
    "/etc/systemd/system/libvirtd-tcp.socket.d/stackwright.conf": "libvirt",
    "/etc/stackwright/libvirt-sasl.password": "sasl",
    "/etc/libvirt/auth.conf": "libvirt_auth",
    "/etc/neutron/neutron.conf": "neutron",
    "/etc/neutron/plugins/ml2/openvswitch_agent.ini": "neutron",
    "/usr/local/sbin/stackwright-veth-csum": "veth_csum",
    "/etc/systemd/system/stackwright-veth-csum.service": "veth_csum",
    "/etc/nova/nova.conf": "nova",
    "/etc/nova/nova-compute.conf": "nova",
}


def main() -> None:
    inventory, host, outdir = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    loaded = load_inventory(inventory)
    facts = {host: HostFacts(virt_type="qemu", ovs_datapath="netdev", containerized=True)}
    plan = plan_cluster(loaded, load_passwords(default_passwords_path(inventory)), facts=facts)
    steps = plan.hosts[host].steps
    files_dir = outdir / "files"
    out: dict[str, Any] = {  # the vars document: lists and maps by key
        "packages": [],
        "sysctl": [],
        "directories": [],
        "bridges": [],
        "services": [],
    }
    out.update({f"files_{s}": [] for s in set(SECTIONS.values())})
    out["network_files"] = []
    out["commands"] = {}
    out["waits"] = {}

    def write(f: File, key: str) -> None:
        target = files_dir / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.content)
        target.chmod(0o600)
        entry = {
            "src": str(target),
            "dest": f.path,
            "mode": f"0{f.mode:o}",
            "owner": f.owner,
            "group": f.group,
        }
        out[key].append(entry)

    commands = {
        "libvirtd sockets": "libvirt_sockets",
        "remove libvirt's default network": "libvirt_default_net",
        "libvirt SASL user": "sasl_user",
    }
    for step in steps:
        if isinstance(step, Packages):
            out["packages"].extend(n for n in step.names if n not in out["packages"])
        elif isinstance(step, Sysctl):
            out["sysctl"].append({"name": step.key, "value": step.value})
        elif isinstance(step, Directory):
            d = {"path": step.path, "mode": f"0{step.mode:o}", "owner": step.owner, "group": step.group}
            out["directories"].append(d)
        elif isinstance(step, File):
            write(step, f"files_{SECTIONS[step.path]}")
        elif isinstance(step, NetworkConfig):
            for f in step.files:
                write(f, "network_files")
        elif isinstance(step, OvsBridge):
            b = {"name": step.name, "datapath": step.datapath_type, "ports": list(step.ports)}
            out["bridges"].append(b)
        elif isinstance(step, Service):
            s = {"name": step.name, "enabled": step.enabled, "running": step.running}
            out["services"].append(s)
        elif isinstance(step, Command):
            key = next(v for k, v in commands.items() if step.description.startswith(k))
            assert step.argv[:2] == ("sh", "-c") and not step.env and not step.once_marker
            out["commands"][key] = {"script": step.argv[2], "unless": step.unless}
        elif isinstance(step, Wait):
            out["waits"]["ovsdb"] = step.check
    # The controller's post-converge steps, narrowed to this one host.
    for _runner, _waits, after in plan.after:
        for step in after:
            if isinstance(step, Command):
                out["discover_cmd"] = " ".join(step.argv[4:5])  # the nova-manage line run as nova
    node = loaded.model.nodes[host]
    out["registered_check"] = (
        'mysql --batch --skip-column-names -e "SELECT COUNT(*) FROM nova.compute_nodes '
        f"WHERE deleted = 0 AND host = '{host}'\""
    )
    out["mapped_check"] = (
        'mysql --batch --skip-column-names -e "SELECT COUNT(*) FROM nova_api.host_mappings '
        f"WHERE host = '{host}'\""
    )
    out["management_address"] = str(node.management)
    # JSON is YAML: no quoting surprises in the scripts.
    (outdir / "vars.yml").write_text(json.dumps(out, indent=1))
    (outdir / "vars.yml").chmod(0o600)


if __name__ == "__main__":
    main()
