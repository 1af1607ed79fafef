"""The nodes' firewall: what each role opens and to whom, the ruleset as this machine's nft reads
it, the guard against cutting off apply's own SSH connection, and where it sits in the plan."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from stackwright import firewall
from stackwright.context import HostContext, host_contexts
from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.release_table import ALL
from stackwright.releases.modern.nftables import RULESET, UNIT, ssh_guard
from stackwright.secrets import SECRET_NAMES
from stackwright.steps import Command, File, Packages, Service

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed.yaml"
PASSWORDS = {n: "x" * 16 for n in SECRET_NAMES}
COMPUTE2 = "  compute2:\n    roles: [compute]\n    management: 10.10.10.54\n    data: 10.20.20.54\n"


def contexts(tmp_path: Path, extra: str = "", top: str = "") -> dict[str, HostContext]:
    path = tmp_path / "cloud.yaml"
    path.write_text(top + SEED.read_text() + extra)
    return host_contexts(load_inventory(path).model)


def opened(host: HostContext) -> dict[str, tuple[str, ...] | None]:
    """{"tcp 22": ("10.10.10.0/24",), ...}"""
    return {
        f"{o.proto} {o.ports}".strip() + (f" to {o.to}" if o.to else ""): (
            None if o.sources is None else tuple(map(str, o.sources))
        )
        for o in firewall.openings(host)
    }


def test_each_role_opens_what_it_serves_to_who_needs_it(tmp_path: Path) -> None:
    hosts = contexts(tmp_path, COMPUTE2)
    management = ("10.10.10.0/24",)
    apis = "tcp 5000,8774,8778,9292,9696,6080,80"  # epoxy: with the dashboard
    assert opened(hosts["controller"]) == {
        "tcp 22": management,
        apis: management,
        # API clients come through the external gateway, to the TLS front: the APIs' ports, the
        # dashboard over HTTPS and port 80's redirect to it
        "tcp 5000,8774,8778,9292,9696,6080,443,80 to 192.168.100.51": None,
        "tcp 8775": ("10.10.10.52/32",),  # the network node's metadata agent only
        "tcp 3306": management,
        "tcp 5672": management,
        "tcp 11211": management,
        "udp 123": management,
    }
    assert opened(hosts["network"]) == {
        "tcp 22": management,
        "gre": ("10.20.20.53/32", "10.20.20.54/32"),
    }
    assert opened(hosts["compute1"]) == {
        "tcp 22": management,
        "gre": ("10.20.20.52/32", "10.20.20.54/32"),
        "tcp 5900-5999": ("10.10.10.51/32",),  # VNC from the controller's noVNC proxy only
        "tcp 16514": ("10.10.10.54/32",),  # libvirt's TLS listener from the compute peer only
        "tcp 49152-49215": ("10.10.10.54/32",),
    }


def test_vxlan_ssh_from_and_a_release_without_dashboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ALL, "zed", dataclasses.replace(ALL["zed"], dashboard=False))
    top = "firewall:\n  ssh_from: [203.0.113.7/32, 198.51.100.0/24]\n"
    text = SEED.read_text().replace("tenant_network_type: gre", "tenant_network_type: vxlan")
    text = text.replace("release: epoxy", "release: zed")
    (tmp_path / "cloud.yaml").write_text(top + text)
    hosts = host_contexts(load_inventory(tmp_path / "cloud.yaml").model)
    network = opened(hosts["network"])
    assert network["tcp 22"] == ("10.10.10.0/24", "203.0.113.7/32", "198.51.100.0/24")
    assert network["udp 4789"] == ("10.20.20.53/32",) and "gre" not in network
    controller = opened(hosts["controller"])
    assert "tcp 5000,8774,8778,9292,9696,6080" in controller  # no port 80
    assert "tcp 5000,8774,8778,9292,9696,6080 to 192.168.100.51" in controller  # nor 443


def test_without_tls_the_external_address_opens_the_apis_themselves(tmp_path: Path) -> None:
    (tmp_path / "cloud.yaml").write_text("tls: {enabled: false}\n" + SEED.read_text())
    controller = opened(host_contexts(load_inventory(tmp_path / "cloud.yaml").model)["controller"])
    assert controller["tcp 5000,8774,8778,9292,9696,6080,80 to 192.168.100.51"] is None


def test_ssh_from_is_an_allow_list_of_networks(tmp_path: Path) -> None:
    for bad in ("203.0.113.7/24", "'10.0.0.0/8; drop'", "example.com"):
        path = tmp_path / "cloud.yaml"
        path.write_text(f"firewall:\n  ssh_from: [{bad}]\n" + SEED.read_text())
        proc = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "stackwright"), "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2, (bad, proc.stdout, proc.stderr)
        assert "firewall" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft and root")
def test_every_roles_ruleset_is_valid_nft_here(tmp_path: Path) -> None:
    """`nft -c -f`: the kernel's own parser and checks, nothing loaded."""
    for name, host in contexts(tmp_path, COMPUTE2).items():
        path = tmp_path / f"{name}.nft"
        path.write_text(firewall.ruleset(host))
        proc = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (name, proc.stderr)


def test_ruleset_replaces_the_table_in_one_transaction(tmp_path: Path) -> None:
    text = firewall.ruleset(contexts(tmp_path)["compute1"])
    head = [line for line in text.splitlines() if not line.startswith("#")][:3]
    assert head == ["table inet stackwright", "delete table inet stackwright", "table inet stackwright {"]
    assert "policy drop;" in text and "ct state established,related accept" in text
    assert "chain forward" not in text  # instance traffic is Neutron's


def _guard_allows(guard: Command, client: str | None) -> bool:
    env = {k: v for k, v in os.environ.items() if k != "SSH_CONNECTION"}
    if client is not None:
        env["SSH_CONNECTION"] = f"{client} 40000 10.10.10.53 22"
    assert guard.unless is not None
    return subprocess.run(["sh", "-c", guard.unless], env=env, check=False, timeout=30).returncode == 0


def test_guard_refuses_a_ruleset_that_cuts_off_apply_s_own_ssh(tmp_path: Path) -> None:
    """The guard's test as the host's shell runs it, with sshd's SSH_CONNECTION."""
    host = contexts(tmp_path, top="firewall:\n  ssh_from: [203.0.113.0/28]\n")["compute1"]
    guard = ssh_guard(host)
    assert _guard_allows(guard, "10.10.10.1")
    assert _guard_allows(guard, "203.0.113.14")
    assert not _guard_allows(guard, "198.51.100.7")
    assert _guard_allows(guard, None)  # not over SSH: nothing to cut off
    refused = subprocess.run(list(guard.argv), capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert "firewall.ssh_from" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_plan_loads_the_firewall_before_any_service_and_keeps_it_private(tmp_path: Path) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(SEED.read_text())
    plan = plan_cluster(load_inventory(path), PASSWORDS)
    for name, host in plan.hosts.items():
        steps = list(host.steps)
        packages = next(s for s in steps if isinstance(s, Packages))
        assert "nftables" in packages.names
        kinds = [(type(s).__name__, getattr(s, "path", getattr(s, "name", ""))) for s in steps]
        guard = next(i for i, s in enumerate(steps) if isinstance(s, Command) and "cut off" in s.description)
        rules = kinds.index(("File", RULESET))
        loader = kinds.index(("Service", "stackwright-firewall"))
        first_other_service = min(
            i for i, s in enumerate(steps) if isinstance(s, Service) and s.name != "stackwright-firewall"
        )
        assert guard < rules < loader < first_other_service, name
        ruleset = steps[rules]
        assert isinstance(ruleset, File) and ruleset.mode == 0o600 and ruleset.owner == "root"
        assert (UNIT) in host.files()


def test_disabled_firewall_is_removed_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text("firewall:\n  enabled: false\n" + SEED.read_text())
    plan = plan_cluster(load_inventory(path), PASSWORDS)
    compute = plan.hosts["compute1"]
    assert RULESET not in compute.files() and "nftables" not in compute.packages()
    commands = [s for s in compute.steps if isinstance(s, Command) and "firewall" in s.description]
    assert [c.argv for c in commands] == [
        ("systemctl", "disable", "stackwright-firewall"),
        ("nft", "delete", "table", "inet", "stackwright"),
    ]
    assert all(c.unless for c in commands)  # nothing to do where there is no firewall
    assert not [
        runner for runner, _, steps in plan.after if RULESET in {getattr(s, "path", "") for s in steps}
    ]


def test_ssh_sources_lead_with_the_management_network(tmp_path: Path) -> None:
    host = contexts(tmp_path, top="firewall:\n  ssh_from: [10.10.10.0/24, 192.0.2.1/32]\n")["network"]
    assert firewall.ssh_sources(host) == (IPv4Network("10.10.10.0/24"), IPv4Network("192.0.2.1/32"))
