"""Node maintenance on the session's Epoxy cloud (two compute nodes): `drain` live-migrates the
smoke VM off its node while a probe pings it every 100 ms from its router's namespace on the
network node; the VM lands ACTIVE on the other node with its address and answers again; `undrain`
re-enables the node and a new VM boots there. Then the node holding the VM loses power (its
systemd-nspawn killed): `evacuate` fences it and rebuilds the VM on the other node, where it
answers with its address; the node boots again and `undrain` puts it back in service.

`apply --rolling` then meets a simulated nova point release (every nova package rebuilt on the
controller and each compute node at a higher version in a local apt repository there; the upgrade
restarts nova's services, as Debian's scripts do): it updates the controller while every public API
is asked every 0.5 s (the unanswered time recorded), then both compute nodes one by one — each drained,
updated, reporting again, undrained — while the same VM is pinged. A second release meets a
compute1 whose restarted nova-compute runs but never reports: the roll stops at compute1, says
why, leaves it drained and compute2 untouched."""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from openstack.connection import Connection

from stackwright.inventory import load_inventory
from stackwright.lab import processes
from stackwright.lab.supervisor import kill_tree
from stackwright.lab.up import up
from stackwright.polling import poll
from stackwright.smoke.run import ROUTER, cleanup
from tests.lab.cli import stackwright
from tests.lab.cloudkit import admin, second_compute_node
from tests.lab.conftest import SeedLab, layout_of
from tests.lab.figures import record

pytestmark = [pytest.mark.lab, pytest.mark.cloud]
PING_LOG = "/tmp/stackwright-drain-ping.log"
PACKAGE = "nova-common"  # every nova host has it; its version is the release's
BROKEN = "/run/systemd/system/nova-compute.service.d/stackwright-test.conf"
REPO = "/var/local/stackwright-test-repo"
ROLL_PING_LOG = "/tmp/stackwright-rolling-ping.log"
COMPUTES = ("compute1", "compute2")
# Each run's simulated releases are newer than any an earlier run left on a kept lab.
RELEASE_STAMP = int(time.time())
CLIENTS_LOG = "/tmp/stackwright-libvirt-clients.log"
CLIENT_WATCH = (
    "for i in $(seq 300); do"
    " for id in $(virt-admin srv-clients-list libvirtd | awk '$2 == \"tls\" {print $1}');"
    " do virt-admin client-info libvirtd $id; done; sleep 1; done"
)


@pytest.fixture(scope="module")
def kept_smoke_vm(epoxy_cloud: SeedLab) -> Iterator[dict[str, Any]]:
    """The smoke VM, left running (`verify --smoke --keep`) for the module's tests (each finds it
    where the last one left it); afterwards every node is enabled again and the smoke test's
    resources removed."""
    second_compute_node(epoxy_cloud)
    # the volume phases are test_cloud's: this module needs the server
    proc = stackwright(
        "verify", str(epoxy_cloud.inventory), "--smoke", "--no-volumes", "--keep", "--json", "--wait", "180"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    try:
        yield json.loads(proc.stdout)["smoke"]
    finally:
        for host in ("controller", *COMPUTES):
            epoxy_cloud.exec(host, f"rm -rf {REPO} /etc/apt/sources.list.d/stackwright-test.list")
        for host in COMPUTES:
            stackwright("undrain", str(epoxy_cloud.inventory), host)
        epoxy_cloud.exec("network", f"pkill -INT -f 'ping -n -i 0.1 ' ; rm -f {PING_LOG} {ROLL_PING_LOG}")
        assert cleanup(admin(epoxy_cloud)) == []


def test_drain_moves_the_vm_with_its_address_and_undrain_takes_new_ones(
    epoxy_cloud: SeedLab, kept_smoke_vm: dict[str, Any]
) -> None:
    lab, vm = epoxy_cloud, kept_smoke_vm
    conn = admin(lab)
    source, target, namespace = _where(conn, vm)
    assert "bytes from" in lab.check(
        "network", f"ip netns exec {namespace} ping -n -c 3 -W 2 {vm['fixed_ip']}"
    )
    pid = _start_ping(lab, namespace, vm["fixed_ip"], PING_LOG)
    # which channel the migration takes: the clients the target's libvirtd serves, asked every
    # second (bounded: 5 min) while the drain runs; the migration's connection lasts all of it
    watcher = lab.check(
        target, f"nohup sh -c {shlex.quote(CLIENT_WATCH)} > {CLIENTS_LOG} 2>&1 & echo $!"
    ).strip()

    proc = stackwright("drain", str(lab.inventory), source, "--json", timeout=1800)
    lost_s = _lost_s(lab, pid, PING_LOG, settle_s=5)
    clients = lab.check(target, f"kill {watcher} 2>/dev/null; cat {CLIENTS_LOG}; rm -f {CLIENTS_LOG}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    (moved,) = report["instances"]
    assert (moved["id"], moved["from"], moved["to"]) == (vm["server_id"], source, target), moved

    server = conn.compute.get_server(vm["server_id"])
    assert (server.status, server.compute_host) == ("ACTIVE", target)
    addresses = [a["addr"] for net in server.addresses.values() for a in net]
    assert vm["fixed_ip"] in addresses
    service = next(iter(conn.compute.services(binary="nova-compute", host=source)))
    assert (service.status, service.disabled_reason) == ("disabled", "stackwright drain: maintenance")

    record("maintenance", "drain: live migration s", moved["seconds"])
    # the channel: libvirtd's TLS listener, the source let in by its certificate from the cloud's CA
    source_ip = str(load_inventory(lab.inventory).model.nodes[source].management)
    channel = [
        c
        for c in re.split(r"\n(?=id\s*:)", clients)
        if re.search(r"transport\s*:\s*tls", c) and re.search(rf"sock_addr\s*:\s*{re.escape(source_ip)}:", c)
    ]
    assert channel, (
        f"no TLS client from {source_ip} on {target}'s libvirtd during the drain: {clients[-2000:]}"
    )
    assert re.search(rf"tls_x509_dname\s*:\s*CN=libvirt-{source}\b", channel[0]), channel[0]
    # and no other: nothing listens on libvirt's TCP port; libvirt refuses a migration without TLS
    for host in (source, target):
        assert lab.check(host, "ss -Hltn 'sport = :16509'").strip() == "", host
        assert "migrate_tls_force = 1" in lab.check(host, "cat /etc/libvirt/qemu.conf")
    record("maintenance", "drain: migration channel", f"libvirtd TLS 16514, certificate CN=libvirt-{source}")
    record("maintenance", "drain: pings lost (100 ms apart) during the migration, s", round(lost_s, 1))
    # answers again after the move
    assert _answers_now(lab, namespace, vm["fixed_ip"])

    # doctor names the drained node, then an instance put in ERROR (as a failed migration leaves it)
    rows = _doctor(lab)
    assert ("warn", source) in {(r["status"], r["host"]) for r in rows if r["id"] == "compute-disabled"}
    conn.compute.reset_server_state(server, "error")
    try:
        stuck = [r for r in _doctor(lab) if r["id"] == "instance-stuck" and r["status"] == "fail"]
        assert [r["host"] for r in stuck] == [target] and vm["server_id"] in stuck[0]["cause"], stuck
    finally:
        conn.compute.reset_server_state(server, "active")

    undrain = stackwright("undrain", str(lab.inventory), source)
    assert undrain.returncode == 0 and "enabled" in undrain.stdout, undrain.stderr
    assert next(iter(conn.compute.services(binary="nova-compute", host=source))).status == "enabled"
    _boots_on(conn, source, server)


def test_evacuate_rebuilds_a_dead_node_s_vm_elsewhere_and_undrain_takes_the_node_back(
    epoxy_cloud: SeedLab, kept_smoke_vm: dict[str, Any]
) -> None:
    lab, vm = epoxy_cloud, kept_smoke_vm
    conn = admin(lab)
    dead, other, namespace = _where(conn, vm)

    refused = stackwright("evacuate", str(lab.inventory), dead)
    assert refused.returncode == 2 and "answers SSH" in refused.stderr, refused.stdout + refused.stderr

    host = next(h for h in layout_of(lab.inventory).hosts if h.name == dead)
    pid = processes.nspawn_pid(host)
    assert pid is not None, f"{dead} is not running"
    kill_tree(pid)  # power cut: no shutdown, nova-compute never says goodbye
    try:
        proc = stackwright("evacuate", str(lab.inventory), dead, "--json", timeout=1800)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        (moved,) = json.loads(proc.stdout)["instances"]
        assert (moved["id"], moved["from"], moved["to"]) == (vm["server_id"], dead, other), moved
        record("maintenance", "evacuate: rebuild on the other node s", moved["seconds"])
        server = conn.compute.get_server(vm["server_id"])
        assert (server.status, server.compute_host) == ("ACTIVE", other)
        assert vm["fixed_ip"] in [a["addr"] for net in server.addresses.values() for a in net]
        # a rebuilt guest boots again (TCG): bounded wait until it answers
        answered = poll(
            lambda: _answers_now(lab, namespace, vm["fixed_ip"]), within_s=300, every_s=5, done=bool
        )
        assert answered, f"the evacuated VM does not answer at {vm['fixed_ip']}"
        service = next(iter(conn.compute.services(binary="nova-compute", host=dead)))
        assert service.is_forced_down and service.status == "disabled"
    finally:
        up(layout_of(lab.inventory), ensure_packages=False, progress=lambda _m: None)

    # back from the power cut: nova-compute reports in; undrain lifts the fence
    undrain = stackwright("undrain", str(lab.inventory), dead)
    assert undrain.returncode == 0 and "enabled" in undrain.stdout, undrain.stderr
    back = poll(
        lambda: next(iter(conn.compute.services(binary="nova-compute", host=dead))),
        within_s=300,
        every_s=5,
        done=lambda s: s.state == "up" and s.status == "enabled" and not s.is_forced_down,
    )
    assert (back.state, back.status, back.is_forced_down) == ("up", "enabled", False)
    verify = stackwright("verify", str(lab.inventory), "--wait", "300", timeout=600)
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-2000:]


def publish_newer(lab: SeedLab, host: str, suffix: str) -> str:
    """A nova point release on `host`: every installed package built from nova's source (python3-nova,
    nova-common, nova-compute, its hypervisor flavour) rebuilt at Debian's version + `suffix`, their
    exact-version dependencies on each other moved along, in a local repository apt reads."""
    script = f"""set -e
rm -f /etc/apt/sources.list.d/stackwright-test.list
rm -rf {REPO}; mkdir -p {REPO}; cd {REPO}
v=$(dpkg-query -W -f='${{Version}}' {PACKAGE}); v0=${{v%%+sw*}}
ve=$(printf %s "$v0" | sed 's/[.]/\\\\&/g')
for p in $(dpkg-query -W -f='${{db:Status-Abbrev}} ${{source:Package}} ${{Package}}\\n' \\
           | awk '$1 == "ii" && $2 == "nova" {{print $3}}'); do
  apt-get download "$p=$v0" >/dev/null 2>&1
  dpkg-deb -R "$p"_*.deb x; rm -f "$p"_*.deb
  sed -i -e "s/^Version: .*/Version: $v0{suffix}/" -e "s/(= $ve)/(= $v0{suffix})/g" x/DEBIAN/control
  dpkg-deb -b -Zgzip -z1 x "$p.deb" >/dev/null; rm -rf x
  {{ dpkg-deb -f "$p.deb"; echo "Filename: ./$p.deb"; echo "Size: $(stat -c %s "$p.deb")";
     echo "SHA256: $(sha256sum "$p.deb" | cut -d' ' -f1)"; echo; }} >> Packages
done
echo "deb [trusted=yes] file:{REPO} ./" > /etc/apt/sources.list.d/stackwright-test.list
apt-get update -q >/dev/null
echo "$v0{suffix}"
"""
    return lab.check(host, script, timeout=300).strip().splitlines()[-1]


def publish_everywhere(lab: SeedLab, hosts: tuple[str, ...], suffix: str) -> dict[str, str]:
    """publish_newer on each host at once (each host's own apt and dpkg)."""
    with ThreadPoolExecutor(len(hosts)) as pool:
        return dict(zip(hosts, pool.map(lambda host: publish_newer(lab, host, suffix), hosts), strict=True))


def installed(lab: SeedLab, host: str) -> str:
    return lab.check(host, f"dpkg-query -W -f='${{Version}}' {PACKAGE}").strip()


def test_rolling_update_of_both_compute_nodes_while_the_vm_answers(
    epoxy_cloud: SeedLab, kept_smoke_vm: dict[str, Any]
) -> None:
    lab, vm = epoxy_cloud, kept_smoke_vm
    newer = publish_everywhere(lab, ("controller", *COMPUTES), f"+sw{RELEASE_STAMP}1")
    conn = admin(lab)
    _, _, namespace = _where(conn, vm)
    pid = _start_ping(lab, namespace, vm["fixed_ip"], ROLL_PING_LOG)
    proc = stackwright("apply", str(lab.inventory), "--yes", "--rolling", "--json", timeout=3600)
    lost_s = _lost_s(lab, pid, ROLL_PING_LOG, settle_s=3)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert [n["host"] for n in report["nodes"]] == ["controller", "network", "storage1", *COMPUTES]
    assert all(n["ok"] for n in report["nodes"]), report
    nodes = {n["host"]: n for n in report["nodes"]}
    for host in ("controller", *COMPUTES):
        assert installed(lab, host) == newer[host], host
        assert f"{PACKAGE} {newer[host]}" in nodes[host]["upgraded"], nodes[host]  # says what it changed
        assert nodes[host]["changed"] > 0
    assert nodes["network"]["upgraded"] == []  # no nova there: nothing to update
    controller = report["nodes"][0]
    record("rolling", "controller: APIs unanswered while it converged, s", controller["api_outage_s"])
    for node in report["nodes"]:
        record("rolling", f"{node['host']}: s", round(node["seconds"], 1))
    record("rolling", "smoke VM: pings lost (100 ms apart) during the roll, s", round(lost_s, 1))
    server = conn.compute.get_server(vm["server_id"])
    assert server.status == "ACTIVE"
    services = {s.host: s for s in conn.compute.services(binary="nova-compute")}
    assert all(services[h].status == "enabled" for h in COMPUTES)


def test_rolling_stops_at_a_node_that_does_not_come_back_and_leaves_the_rest(
    epoxy_cloud: SeedLab, kept_smoke_vm: dict[str, Any]
) -> None:
    lab = epoxy_cloud
    before = {host: installed(lab, host) for host in COMPUTES}
    publish_everywhere(lab, COMPUTES, f"+sw{RELEASE_STAMP}2")
    # the update's restart brings up a nova-compute that runs but never reports in: the node's
    # converge succeeds and only the health check can tell
    drop_in = "[Service]\\nType=simple\\nExecStart=\\nExecStart=/bin/sleep infinity\\n"
    lab.check(
        "compute1",
        f"mkdir -p {BROKEN.rsplit('/', 1)[0]} && printf '{drop_in}' > {BROKEN} && systemctl daemon-reload",
    )
    try:
        proc = stackwright(
            "apply", str(lab.inventory), "--yes", "--rolling", "--health-wait", "30", "--json", timeout=3600
        )
    finally:
        lab.exec("compute1", f"rm -f {BROKEN}; systemctl daemon-reload; systemctl restart nova-compute")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["stopped_at"] == "compute1", report
    assert "not reported since the update: nova-compute" in report["reason"], report
    assert "compute1 stays drained" in report["reason"], report
    assert report["untouched"] == ["compute2"]
    assert installed(lab, "compute2") == before["compute2"]  # the roll never reached it
    conn = admin(lab)
    assert next(iter(conn.compute.services(binary="nova-compute", host="compute1"))).status == "disabled"
    assert stackwright("apply", str(lab.inventory), "--yes", "--limit", "compute1").returncode == 0
    assert stackwright("undrain", str(lab.inventory), "compute1").returncode == 0


def test_doctor_names_a_peer_whose_migration_listener_cannot_be_reached(epoxy_cloud: SeedLab) -> None:
    lab = epoxy_cloud
    second_compute_node(lab)
    peer = str(load_inventory(lab.inventory).model.nodes["compute2"].management)
    healthy = {r["host"]: r for r in _doctor(lab) if r["id"] == "migration-path"}
    assert {h: r["status"] for h, r in healthy.items()} == {"compute1": "ok", "compute2": "ok"}, healthy
    lab.check("compute1", f"ip route add blackhole {peer}/32")
    try:
        rows = {r["host"]: r for r in _doctor(lab) if r["id"] == "migration-path"}
    finally:
        lab.check("compute1", f"ip route del blackhole {peer}/32")
    assert rows["compute1"]["status"] == "fail", rows
    assert f"compute2's libvirtd listener {peer}:16514 does not answer" in rows["compute1"]["cause"]
    assert f"nova's SSH to compute2 ({peer}) fails" in rows["compute1"]["cause"]
    # TCP needs both ways: compute2's probes of compute1 get no answer back either
    assert (
        rows["compute2"]["status"] == "fail" and "compute1's libvirtd listener" in rows["compute2"]["cause"]
    )


def _where(conn: Connection, vm: dict[str, Any]) -> tuple[str, str, str]:
    """The smoke VM's node now (each test finds it where the last one left it), the other compute
    node, and its router's namespace on the network node."""
    host = str(conn.compute.get_server(vm["server_id"]).compute_host)
    router = next(iter(conn.network.routers(name=ROUTER)))
    return host, "compute2" if host == "compute1" else "compute1", f"qrouter-{router.id}"


def _start_ping(lab: SeedLab, namespace: str, address: str, log: str) -> str:
    """A ping of `address` every 100 ms from `namespace` on the network node, in the background;
    its PID (`ip netns exec` execs ping: the PID echoed is ping's, stopped with SIGINT)."""
    ping = f"ip netns exec {namespace} ping -n -i 0.1 -W 1 {address}"
    return lab.check("network", f"nohup {ping} > {log} 2>&1 & echo $!").strip()


def _lost_s(lab: SeedLab, pid: str, log: str, settle_s: int) -> float:
    """Stop the ping `settle_s` from now; the seconds of replies it lost (100 ms each)."""
    text = lab.check("network", f"sleep {settle_s}; kill -INT {pid}; sleep 1; cat {log}")
    summary = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    assert summary, f"the ping printed no summary: {text[-2000:]}"
    sent, received = map(int, summary.groups())
    assert received > 0, text[-2000:]
    return (sent - received) * 0.1


def _doctor(lab: SeedLab) -> list[dict[str, Any]]:
    proc = stackwright("doctor", str(lab.inventory), "--json", timeout=600)
    rows: list[dict[str, Any]] = json.loads(proc.stdout)["checks"]
    return rows


def _answers_now(lab: SeedLab, namespace: str, address: str) -> bool:
    proc = lab.exec("network", f"ip netns exec {namespace} ping -n -c 5 -i 0.2 -W 1 {address}")
    return proc.returncode == 0


def _boots_on(conn: Connection, host: str, like: Any) -> None:
    """A new server from the smoke VM's image, flavor and network, asked for on `host`, is ACTIVE there."""
    network_id = next(iter(conn.network.ports(device_id=like.id))).network_id
    flavor = conn.compute.find_flavor(like.flavor["original_name"])
    assert flavor is not None
    created = conn.compute.create_server(
        name="stackwright-drain-probe",
        image_id=like.image["id"],
        flavor_id=flavor.id,
        networks=[{"uuid": network_id}],
        availability_zone=f"nova:{host}",
    )
    try:
        server = conn.compute.wait_for_server(created, status="ACTIVE", wait=600)
        assert server.compute_host == host
    finally:
        conn.compute.delete_server(created)
        conn.compute.wait_for_delete(created, wait=300)
