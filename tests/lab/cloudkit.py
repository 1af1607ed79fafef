"""What the cloud tests share: apply and plan as JSON, the expected plan of the lab hosts, and the
compute node as the seed describes it."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

import yaml
from openstack.connection import Connection

from stackwright.cloud import admin_connection
from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.secrets import load_passwords
from stackwright.steps import OvsBridge, Sysctl
from tests.lab.cli import stackwright
from tests.lab.conftest import SeedLab
from tests.lab.figures import record


def apply_json(lab: SeedLab, *args: str) -> dict[str, Any]:
    start = time.monotonic()
    proc = stackwright("apply", str(lab.inventory), "--yes", "--json", *args)
    record("cloud-timings", " ".join(["apply", *args]), round(time.monotonic() - start, 1))
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def live_plan(lab: SeedLab) -> dict[str, Any]:
    proc = stackwright("plan", str(lab.inventory), "--live", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def expected_plan(lab: SeedLab, virt_type: str = "qemu") -> Any:
    from stackwright.context import HostFacts

    loaded = load_inventory(lab.inventory)
    facts = {
        n: HostFacts(virt_type=virt_type, ovs_datapath="netdev", containerized=True)
        for n in loaded.model.nodes
    }
    return plan_cluster(loaded, load_passwords(lab.inventory.parent / "passwords.yaml"), facts=facts)


# Python modules in dist-packages with a .pyc for this interpreter: (outside test suites, of
# them without one, inside test suites with one). apt_node.py: compiled once per apt run.
BYTE_COMPILED = """
import importlib.util, os
outside = missing = inside = 0
for top, dirs, files in os.walk("/usr/lib/python3/dist-packages"):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    for name in files:
        if name.endswith(".py"):
            path = os.path.join(top, name)
            compiled = os.path.exists(importlib.util.cache_from_source(path))
            if "/tests/" in path:
                inside += compiled
            else:
                outside += 1
                missing += not compiled
print(outside, missing, inside)
"""


def assert_compute_node(lab: SeedLab, host: str) -> None:
    """The seed's compute node: packages, every rendered file with the plan's content, owner and
    mode, sysctl live and persisted, br-int, the four services active, nothing failed, mapped,
    every Python module the services may import byte-compiled (the test suites not)."""
    plan = expected_plan(lab).hosts[host]
    missing = lab.exec(
        host, "dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' " + " ".join(plan.packages())
    ).stdout
    assert all(line.startswith("ii") for line in missing.splitlines()), missing
    for path, file in plan.files().items():
        stat = lab.check(host, f"stat -c '%a %U %G' {path}").split()
        assert stat == [f"{file.mode:o}", file.owner, file.group], path
        content = lab.check(host, f"cat {path}")
        assert content == file.content, f"{path} differs from the plan"
    for step in plan.steps:
        if isinstance(step, Sysctl):
            assert lab.check(host, f"sysctl -n {step.key}").split() == step.value.split()
            assert f"{step.key} = {step.value}" in lab.check(host, "cat /etc/sysctl.d/60-stackwright.conf")
        if isinstance(step, OvsBridge):
            lab.check(host, f"ovs-vsctl br-exists {step.name}")
    assert any(isinstance(s, OvsBridge) and s.name == "br-int" for s in plan.steps)
    for unit in ("libvirtd", "openvswitch-switch", "neutron-openvswitch-agent", "nova-compute"):
        assert lab.check(host, f"systemctl is-active {unit}").strip() == "active", unit
    assert lab.exec(host, "systemctl --failed --no-legend --plain").stdout.strip() == ""
    assert lab.exec(host, "dpkg --audit").stdout.strip() == ""
    assert lab.exec(host, "test -e /usr/sbin/policy-rc.d").returncode == 1  # services not held
    counts = lab.check(host, f"python3 -c {shlex.quote(BYTE_COMPILED)}")
    outside, uncompiled, inside = map(int, counts.split())
    # inside: none from the install; a root process importing a package that walks its own
    # submodules (os_traits imports os_traits.tests) compiles that one at run time
    assert outside > 3000 and uncompiled == 0 and inside <= 5, (outside, uncompiled, inside)
    mapped = lab.check(
        "controller",
        'mysql --batch --skip-column-names -e "SELECT host FROM nova_api.host_mappings"',
    )
    assert host in mapped.split()


def verify_json(lab: SeedLab, *args: str, timeout: float = 900) -> dict[str, Any]:
    proc = stackwright("verify", str(lab.inventory), "--json", *args, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def hypervisors(report: dict[str, Any]) -> dict[str, bool]:
    return {c["id"]: c["ok"] for c in report["checks"] if c["id"].startswith("hypervisor")}


def secret_values(lab: SeedLab) -> list[str]:
    return [str(v) for v in yaml.safe_load((lab.inventory.parent / "passwords.yaml").read_text()).values()]


SCAN = r"""
set -u
find /etc /var/lib /var/log /var/cache /usr/local /opt /root /home /srv /tmp /run -xdev -type f \
  -perm -004 -size -4M -print0 2>/dev/null | xargs -0 -r grep -l -F -f "$1" 2>/dev/null
ps -eo args= | grep -F -f "$1" | grep -v -F "$1" || true
"""


def world_readable_leaks(lab: SeedLab, values: list[str]) -> dict[str, list[str]]:
    """World-readable files and command lines holding any of `values`, per host."""
    patterns = "\n".join(values) + "\n"
    leaks = {}
    for host in lab.hosts:
        lab.check(host, f"umask 077; printf '%s' {shlex.quote(patterns)} > /run/sw-scan-patterns")
        try:
            found = lab.check(host, f"sh -c {shlex.quote(SCAN)} scan /run/sw-scan-patterns").strip()
        finally:
            lab.check(host, "rm -f /run/sw-scan-patterns")
        if found:
            leaks[host] = found.splitlines()
    return leaks


def add_compute(lab: SeedLab, number: int) -> str:
    """A new bare compute node in the test inventory (and its lab host), e.g. compute3 at .55 of the
    management and data networks."""
    name = f"compute{number}"
    text = lab.inventory.read_text()
    if f"  {name}:" not in text:
        networks = load_inventory(lab.inventory).model.networks
        assert networks.data is not None
        management = networks.management.cidr.network_address + 52 + number
        data = networks.data.cidr.network_address + 52 + number
        text += f"  {name}:\n    roles: [compute]\n    management: {management}\n    data: {data}\n"
        lab.inventory.write_text(text)
    up = lab.cli("up")
    assert up.returncode == 0, up.stderr
    return name


def second_compute_node(lab: SeedLab) -> str:
    """compute2 in the cloud: test_cloud.py adds it from bare (its connection cut on the way);
    a module run alone adds it here with a plain apply."""
    if "  compute2:" in lab.inventory.read_text():
        return "compute2"
    name = add_compute(lab, 2)
    report = apply_json(lab, "--limit", name)
    assert report["ok"], report
    return name


def admin(lab: SeedLab) -> Connection:
    """The lab cloud's admin, through openstacksdk (for what a test sets up or inspects)."""
    loaded = load_inventory(lab.inventory)
    return admin_connection(loaded, load_passwords(lab.inventory.parent / "passwords.yaml"))
