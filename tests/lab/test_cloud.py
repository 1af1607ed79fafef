"""The product end to end on lab hosts: bare Debian 13 hosts -> a working Epoxy cloud.

Runs after the plain-host lab tests (marker `cloud`), on the session's Epoxy cloud (`epoxy_cloud`):
how it was converged from bare (an apply killed in the middle of a db sync, then resumed), the
compute node checked as the seed describes it, re-applies, verify and the smoke VM, then a second
compute node added from bare (its SSH connection cut while it installs packages, then resumed).
"""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess
import time

import pytest

from stackwright import certs
from stackwright.inventory import load_inventory
from stackwright.releases.modern.nftables import RULESET
from stackwright.releases.modern.nova_ssh import NOVA_KNOWN_HOSTS
from stackwright.tls import store_for
from tests.lab.cli import cli_argv, stackwright
from tests.lab.cloudkit import add_compute, apply_json, assert_compute_node, expected_plan, live_plan
from tests.lab.conftest import Converged, SeedLab
from tests.lab.figures import record
from tests.lab.interrupt import Point, interrupted_apply

pytestmark = [pytest.mark.lab, pytest.mark.cloud]


def test_whole_cluster_from_bare_hosts_even_when_killed_during_a_db_sync(epoxy_converge: Converged) -> None:
    """`apply --yes` on bare hosts, SIGKILLed while the controller's nova db sync runs (the other
    hosts are mid-way too); the same plain `apply --yes` then converges every host (the session's
    cloud is made this way: `epoxy_converge` in conftest.py)."""
    cut, report = epoxy_converge.cut, epoxy_converge.report
    record(
        "cloud-timings",
        "apply (bare hosts, killed at the nova db sync)",
        round(epoxy_converge.killed_after_s, 1),
    )
    record("cloud-timings", "apply (resumed to the end)", round(epoxy_converge.resumed_s, 1))
    assert cut.returncode == -9 and "nova-manage db sync" in cut.was_running
    assert report["ok"], report
    assert set(report["hosts"]) == {"controller", "network", "compute1", "storage1"}
    assert all(result["ok"] for result in report["hosts"].values())


def test_compute_node_is_what_the_seed_describes(epoxy_cloud: SeedLab) -> None:
    assert_compute_node(epoxy_cloud, "compute1")


def test_reapply_changes_nothing_and_restarts_nothing(epoxy_cloud: SeedLab) -> None:
    report = apply_json(epoxy_cloud, "--no-upgrade")
    for host, result in report["hosts"].items():
        assert result["ok"], (host, result["error"])
        assert result["changed"] == 0, (host, result["changes"])
        assert result["restarted"] == [], host
    plan = live_plan(epoxy_cloud)
    assert all(h["changed"] == 0 for h in plan["hosts"].values()), plan


def test_apply_parallel_1_converges_one_host_at_a_time_the_controller_first(epoxy_cloud: SeedLab) -> None:
    # the controller's cinder-volume waits for the storage node's pools: one slot cannot hold both
    refused = stackwright("apply", str(epoxy_cloud.inventory), "--yes", "--no-upgrade", "--parallel", "1")
    assert refused.returncode == 2 and "use --parallel 2 or more" in refused.stderr, refused.stderr
    report = apply_json(
        epoxy_cloud, "--no-upgrade", "--parallel", "1", "--limit", "controller,network,compute1"
    )
    spans = sorted((r["started_at"], r["finished_at"], host) for host, r in report["hosts"].items())
    assert all(r["ok"] and r["changed"] == 0 for r in report["hosts"].values()), report
    assert spans[0][2] == "controller", spans
    for (_, ended, host), (began, _, following) in itertools.pairwise(spans):
        assert ended <= began, f"{following} began before {host} ended: {spans}"


def test_second_apply_is_refused_while_another_holds_the_host(epoxy_cloud: SeedLab) -> None:
    epoxy_cloud.check(
        "compute1", "echo 'deployer7 pid 4242 since 2026-01-01T00:00:00' > /run/stackwright.lock"
    )
    try:
        proc = stackwright(
            "apply", str(epoxy_cloud.inventory), "--yes", "--no-upgrade", "--limit", "compute1"
        )
        assert proc.returncode == 1
        assert "another apply holds /run/stackwright.lock: deployer7 pid 4242" in " ".join(
            proc.stdout.split()
        )
    finally:
        epoxy_cloud.check("compute1", "rm -f /run/stackwright.lock")


def test_stale_lock_of_a_dead_run_on_this_machine_is_cleared(epoxy_cloud: SeedLab) -> None:
    import socket

    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout.strip()
    epoxy_cloud.check("compute1", f"echo '{socket.gethostname()} pid {dead} since x' > /run/stackwright.lock")
    report = apply_json(epoxy_cloud, "--no-upgrade", "--limit", "compute1")
    assert report["hosts"]["compute1"]["ok"]
    assert epoxy_cloud.exec("compute1", "test -e /run/stackwright.lock").returncode == 1


def test_unreachable_host_and_wrong_ssh_user_fail_alone(epoxy_cloud: SeedLab) -> None:
    """A host that is down and one that refuses our login are named; the other hosts converge (the
    network node's only change: its firewall lets the new node's tunnel in)."""
    variant = epoxy_cloud.inventory.with_name("unreachable.yaml")  # beside it: same passwords.yaml
    text = epoxy_cloud.inventory.read_text().replace(
        "nodes:\n", "nodes:\n  ghost: {roles: [compute], management: 10.10.10.99, data: 10.20.20.99}\n", 1
    )
    text = text.replace("    data: 10.20.20.53\n", "    data: 10.20.20.53\n    ssh: {user: nobody}\n", 1)
    variant.write_text(text)
    try:
        proc = stackwright(
            "apply", str(variant), "--yes", "--json", "--no-upgrade", "--limit", "ghost,compute1,network"
        )
        assert proc.returncode == 1, proc.stderr[-2000:]
        hosts = json.loads(proc.stdout)["hosts"]
        network = hosts["network"]
        assert network["ok"] and [c["path"] for c in network["changes"] if c.get("path")] == [RULESET]
        assert "10.20.20.99" in epoxy_cloud.check("network", f"cat {RULESET}")
        assert "ghost (10.10.10.99)" in hosts["ghost"]["error"]["output"]
        assert "compute1 (10.10.10.53)" in hosts["compute1"]["error"]["output"]
        assert "Authentication" in hosts["compute1"]["error"]["output"]
        assert "Traceback" not in proc.stderr
    finally:
        variant.unlink()
        back = apply_json(epoxy_cloud, "--no-upgrade", "--limit", "network")  # the real inventory again
    assert [c["path"] for c in back["hosts"]["network"]["changes"] if c.get("path")] == [RULESET]
    assert "10.20.20.99" not in epoxy_cloud.check("network", f"cat {RULESET}")


def test_hand_edit_shows_in_live_plan_and_apply_puts_it_back(epoxy_cloud: SeedLab) -> None:
    path = "/etc/nova/nova.conf"
    epoxy_cloud.check("compute1", f"echo '# edited by hand' >> {path}")
    plan = live_plan(epoxy_cloud)
    changes = plan["hosts"]["compute1"]["changes"]
    assert [c["path"] for c in changes] == [path]
    report = apply_json(epoxy_cloud, "--limit", "compute1", "--no-upgrade")
    compute = report["hosts"]["compute1"]
    assert [c["path"] for c in compute["changes"] if c["kind"] == "file"] == [path]
    assert compute["restarted"] == ["nova-compute"]
    assert "# edited by hand" not in epoxy_cloud.check("compute1", f"cat {path}")
    backups = epoxy_cloud.check("compute1", "cat /var/lib/stackwright/backups/etc/nova/nova.conf.*")
    assert "# edited by hand" in backups


def test_preflight_picks_qemu_when_kvm_cannot_run_guests(epoxy_cloud: SeedLab) -> None:
    proc = stackwright("preflight", str(epoxy_cloud.inventory), "--limit", "compute1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = " ".join(proc.stdout.split())
    assert "virt_type auto → qemu" in text
    assert "virt_type = qemu" in epoxy_cloud.check("compute1", "cat /etc/nova/nova.conf")


def test_verify_shows_every_service_up(epoxy_cloud: SeedLab) -> None:
    start = time.monotonic()
    proc = stackwright("verify", str(epoxy_cloud.inventory), "--json", timeout=600)
    record("cloud-timings", "verify", round(time.monotonic() - start, 1))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    checks = json.loads(proc.stdout)["checks"]
    assert checks and all(c["ok"] for c in checks)
    assert ":-)" in proc.stderr  # the seed's smiley faces


def test_smoke_vm_gets_its_lease_and_metadata_across_the_tunnel(epoxy_cloud: SeedLab) -> None:
    start = time.monotonic()
    proc = stackwright("verify", str(epoxy_cloud.inventory), "--smoke", "--json", timeout=1800)
    record("cloud-timings", "verify --smoke", round(time.monotonic() - start, 1))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    smoke = json.loads(proc.stdout)["smoke"]
    assert smoke["ok"] and smoke["lease"] == smoke["fixed_ip"] and smoke["uuid"] == smoke["server_id"]
    # the cloud's storage node: a volume the guest wrote and read back, a server booted from a volume
    names = {phase["name"]: phase for phase in smoke["phases"]}
    attached = names["volume in Ceph attached; the guest wrote and read it back"]
    assert attached["ok"] and "token read back" in attached["message"], attached
    assert names["server booted from a volume cloned from the image"]["ok"]
    for phase in smoke["phases"]:
        record("cloud-timings", f"smoke {phase['name']}", phase["seconds"])


def boot_id(lab: SeedLab, host: str) -> str:
    return lab.check(host, "cat /proc/sys/kernel/random/boot_id").strip()


def test_reboot_required_is_reported_then_done_with_allow_reboot(epoxy_cloud: SeedLab) -> None:
    before = boot_id(epoxy_cloud, "compute1")
    epoxy_cloud.check("compute1", "touch /var/run/reboot-required")
    report = apply_json(epoxy_cloud, "--no-upgrade", "--limit", "compute1")
    assert report["hosts"]["compute1"]["reboot_required"] is True
    assert boot_id(epoxy_cloud, "compute1") == before  # never without --allow-reboot
    report = apply_json(epoxy_cloud, "--no-upgrade", "--limit", "compute1", "--allow-reboot")
    compute = report["hosts"]["compute1"]
    assert compute["ok"] and compute["reboot_required"] is False, compute
    assert boot_id(epoxy_cloud, "compute1") != before
    # the host came back by itself: addresses, bridges and services, and the cloud still answers
    assert "10.20.20.53/24" in epoxy_cloud.check("compute1", "ip -4 -o addr show dev br-phy")
    for unit in ("libvirtd", "neutron-openvswitch-agent", "nova-compute"):
        assert epoxy_cloud.check("compute1", f"systemctl is-active {unit}").strip() == "active", unit
    proc = stackwright("verify", str(epoxy_cloud.inventory), "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_changing_one_option_restarts_only_the_services_that_read_it(epoxy_cloud: SeedLab) -> None:
    original = epoxy_cloud.inventory.read_text()
    epoxy_cloud.inventory.write_text(
        original + "overrides:\n  /etc/neutron/l3_agent.ini: {DEFAULT: {debug: true}}\n"
    )
    try:
        report = apply_json(epoxy_cloud, "--no-upgrade")
        restarted = {
            host: result["restarted"] for host, result in report["hosts"].items() if result["restarted"]
        }
        assert restarted == {"network": ["neutron-l3-agent"]}
        changed = {h: [c["path"] for c in r["changes"]] for h, r in report["hosts"].items() if r["changes"]}
        assert changed == {"network": ["/etc/neutron/l3_agent.ini", None]}
    finally:
        epoxy_cloud.inventory.write_text(original)
    report = apply_json(epoxy_cloud, "--no-upgrade")
    assert {h: r["restarted"] for h, r in report["hosts"].items() if r["restarted"]} == {
        "network": ["neutron-l3-agent"]
    }


def test_default_and_anonymous_credentials_are_rejected(epoxy_cloud: SeedLab) -> None:
    """The guide's choices, closed: libvirt TCP without auth, MySQL and RabbitMQ default users."""
    # libvirt: no TCP listener at all; the TLS one lets in the node's own certificate and turns
    # away one from another CA and one from the cloud's CA that is not a compute node's
    assert epoxy_cloud.check("compute1", "ss -Hltn 'sport = :16509'").strip() == ""
    tls = "timeout 20 virsh -c 'qemu+tls://10.10.10.53/system{}' list </dev/null 2>&1"
    assert epoxy_cloud.exec("compute1", tls.format("")).returncode == 0
    cloud_ca = store_for(epoxy_cloud.inventory).authority()
    other_ca = certs.make_authority("another CA", certs.now())
    # the same way in, three certificates: one like the node's (let in: the way itself works), one
    # from another CA, one from the cloud's CA not named libvirt-* (both turned away by the server)
    cases = (("good", cloud_ca, "libvirt-compute1", 0), ("other-ca", other_ca, "libvirt-compute1", 1))
    for name, ca, cn, expected in (*cases, ("not-libvirt", cloud_ca, "intruder", 1)):
        pair = certs.issue(ca, cn, ["10.10.10.53", "compute1"], certs.now(), client=True)
        # both CAs: the client's own check of its certificate passes, so a refusal is the server's
        bundle = cloud_ca.cert_pem + other_ca.cert_pem
        files = {"cacert.pem": bundle, "clientcert.pem": pair.cert_pem, "clientkey.pem": pair.key_pem}
        folder = f"/root/pki-{name}"
        writes = "".join(f"printf %s {shlex.quote(text)} > {folder}/{file}\n" for file, text in files.items())
        epoxy_cloud.check("compute1", f"mkdir -p -m 700 {folder}\n{writes}")
        try:
            got = epoxy_cloud.exec("compute1", tls.format(f"?pkipath={folder}"))
        finally:
            epoxy_cloud.exec("compute1", f"rm -rf {folder}")
        assert (got.returncode != 0) == bool(expected), (name, got.stdout)
    for user, password in (("root", ""), ("novaUser", "novaPass"), ("nova", "novaPass"), ("root", "root")):
        mysql = epoxy_cloud.exec(
            "controller",
            f"mysql --disable-ssl-verify-server-cert -h 10.10.10.51 -u {user} --password='{password}' "
            "-e 'SELECT 1' 2>&1",
        )
        assert mysql.returncode != 0 and "denied" in mysql.stdout, (user, mysql.stdout)
    rabbit = epoxy_cloud.exec("controller", "rabbitmqctl authenticate_user guest guest 2>&1")
    assert rabbit.returncode != 0, rabbit.stdout


def test_files_holding_secrets_are_0640_root_and_their_service_group(epoxy_cloud: SeedLab) -> None:
    plan = expected_plan(epoxy_cloud)
    for host in ("controller", "network", "compute1"):
        for path, file in plan.hosts[host].files().items():
            if file.secret:
                stat = epoxy_cloud.check(host, f"stat -c '%a %U %G' {path}").split()
                assert stat[1] == "root" and stat[0] in ("640", "600"), (host, path, stat)
                assert stat[2] in (file.group, "root"), (host, path, stat)


def test_second_compute_node_from_bare_survives_a_cut_connection_and_touches_no_other_host(
    epoxy_cloud: SeedLab,
) -> None:
    """`apply --limit compute2` of a bare host whose SSH connection is cut while dpkg runs: compute2
    alone fails, named, with the reason; the same command then converges it, touching no other host
    but the controller's one discover_hosts run, compute1's record of its peers' SSH host keys, and
    the firewalls of compute1 and the network node (which now let compute2's tunnel and, on
    compute1, its migrations in)."""
    add_compute(epoxy_cloud, 2)
    cut = interrupted_apply(
        epoxy_cloud, ["--limit", "compute2"], Point("compute2", "install ", "ssh", running="dpkg")
    )
    assert cut.returncode == 1, cut.stderr[-3000:]
    hosts = json.loads(cut.stdout)["hosts"]
    assert set(hosts) == {"compute2"}  # discover_hosts waits for a converged compute node
    assert "SSH connection to compute2 lost" in hosts["compute2"]["error"]["output"]
    assert "run apply again" in hosts["compute2"]["error"]["hint"]
    assert "Traceback" not in cut.stderr
    report = apply_json(epoxy_cloud, "--limit", "compute2")
    assert set(report["hosts"]) == {"compute2", "controller", "compute1", "network"}
    controller = report["hosts"]["controller"]
    assert [c["detail"] for c in controller["changes"]] == ["ran"], controller["changes"]
    assert controller["restarted"] == []
    compute1 = report["hosts"]["compute1"]
    assert [c["path"] for c in compute1["changes"] if c.get("path")] == [NOVA_KNOWN_HOSTS, RULESET], compute1
    assert compute1["restarted"] == ["stackwright-firewall"]
    network = report["hosts"]["network"]
    assert [c["path"] for c in network["changes"] if c.get("path")] == [RULESET], network
    assert network["restarted"] == ["stackwright-firewall"]
    # nova on each node reaches the other over SSH at its my_ip (what nova's resize and cold
    # migration use as the destination), the peer's host key checked
    nodes = load_inventory(epoxy_cloud.inventory).model.nodes
    for source, target in (("compute1", "compute2"), ("compute2", "compute1")):
        address = nodes[target].management
        hostname = epoxy_cloud.check(source, f"su -s /bin/sh nova -c 'ssh {address} hostname'")
        assert hostname.strip() == target
    assert_compute_node(epoxy_cloud, "compute2")
    proc = stackwright("verify", str(epoxy_cloud.inventory), "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    hypervisors = {
        c["id"]: c["ok"] for c in json.loads(proc.stdout)["checks"] if c["id"].startswith("hypervisor")
    }
    assert hypervisors == {"hypervisor:compute1": True, "hypervisor:compute2": True}


def test_apply_without_yes_in_a_pipeline_applies_nothing_it_was_not_told_to(epoxy_cloud: SeedLab) -> None:
    """No terminal to ask: nothing to change is success (exit 0); a change needs --yes (exit 2,
    one line); either way nothing changes."""
    argv = cli_argv("apply", str(epoxy_cloud.inventory), "--no-upgrade")
    quiet = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0 and "no changes" in quiet.stdout, quiet.stdout[-2000:] + quiet.stderr
    original = epoxy_cloud.inventory.read_text()
    epoxy_cloud.inventory.write_text(
        original + "overrides:\n  /etc/neutron/l3_agent.ini: {DEFAULT: {debug: true}}\n"
    )
    try:
        pending = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    finally:
        epoxy_cloud.inventory.write_text(original)
    assert pending.returncode == 2, pending.stdout[-2000:] + pending.stderr
    errors = [line for line in pending.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pass --yes" in errors[0] and "Traceback" not in pending.stderr
    assert "debug = true" not in epoxy_cloud.check("network", "cat /etc/neutron/l3_agent.ini")
