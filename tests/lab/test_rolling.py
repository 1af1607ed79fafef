"""`apply --rolling` on the session's Epoxy cloud (two compute nodes).

A package update is simulated the way a point release arrives: a newer build of a package the
compute role installs (nova-compute, repacked on each compute node with a higher version) in a
local apt repository there; its upgrade restarts nova-compute, as Debian's scripts do. The roll
updates both compute nodes one by one (each drained, updated, reporting again, undrained) while
the smoke VM keeps answering pings from its router's namespace. Then a second update meets a
compute1 whose nova-compute cannot start again (a runtime drop-in): the roll stops at compute1,
says why, and leaves compute2 untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from stackwright.smoke.run import cleanup
from tests.lab.cli import stackwright
from tests.lab.cloudkit import second_compute_node
from tests.lab.conftest import SeedLab
from tests.lab.figures import record
from tests.lab.test_maintenance import admin

pytestmark = [pytest.mark.lab, pytest.mark.cloud]
PACKAGE = "nova-compute"
BROKEN = "/run/systemd/system/nova-compute.service.d/stackwright-test.conf"
REPO = "/var/local/stackwright-test-repo"
PING_LOG = "/tmp/stackwright-rolling-ping.log"
COMPUTES = ("compute1", "compute2")


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


def installed(lab: SeedLab, host: str) -> str:
    return lab.check(host, f"dpkg-query -W -f='${{Version}}' {PACKAGE}").strip()


@pytest.fixture(scope="module")
def rolling_cloud(epoxy_cloud: SeedLab) -> Iterator[dict[str, Any]]:
    """Two compute nodes and the smoke VM kept running; afterwards the local repositories and the
    smoke resources are removed and every node is in service."""
    second_compute_node(epoxy_cloud)
    proc = stackwright("verify", str(epoxy_cloud.inventory), "--smoke", "--keep", "--json", "--wait", "180")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    try:
        yield json.loads(proc.stdout)["smoke"]
    finally:
        for host in COMPUTES:
            epoxy_cloud.exec(host, f"rm -rf {REPO} /etc/apt/sources.list.d/stackwright-test.list")
            stackwright("undrain", str(epoxy_cloud.inventory), host)
        epoxy_cloud.exec("network", f"pkill -INT -f 'ping -n -i 0.1 ' ; rm -f {PING_LOG}")
        assert cleanup(admin(epoxy_cloud)) == []


def test_rolling_update_of_both_compute_nodes_while_the_vm_answers(
    epoxy_cloud: SeedLab, rolling_cloud: dict[str, Any]
) -> None:
    lab, vm = epoxy_cloud, rolling_cloud
    newer = {host: publish_newer(lab, host, "+sw1") for host in COMPUTES}
    conn = admin(lab)
    router = next(iter(conn.network.routers(name="stackwright-smoke-router")))
    ping = f"ip netns exec qrouter-{router.id} ping -n -i 0.1 -W 1 {vm['fixed_ip']}"
    pid = lab.check("network", f"nohup {ping} > {PING_LOG} 2>&1 & echo $!").strip()
    proc = stackwright("apply", str(lab.inventory), "--yes", "--rolling", "--json", timeout=3600)
    lab.check("network", f"sleep 3; kill -INT {pid}; sleep 1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert [n["host"] for n in report["nodes"]] == ["controller", "network", *COMPUTES]
    assert all(n["ok"] for n in report["nodes"]), report
    nodes = {n["host"]: n for n in report["nodes"]}
    for host in COMPUTES:
        assert installed(lab, host) == newer[host], host
        assert f"{PACKAGE} {newer[host]}" in nodes[host]["upgraded"], nodes[host]  # says what it changed
        assert nodes[host]["changed"] > 0
    assert f"{PACKAGE} " not in " ".join(nodes["controller"]["upgraded"])  # published on computes only
    controller = report["nodes"][0]
    record("rolling", "controller: APIs unanswered while it converged, s", controller["api_outage_s"])
    for node in report["nodes"]:
        record("rolling", f"{node['host']}: s", round(node["seconds"], 1))
    summary = re.search(r"(\d+) packets transmitted, (\d+) received", lab.check("network", f"cat {PING_LOG}"))
    assert summary, "the ping of the smoke VM printed no summary"
    sent, received = map(int, summary.groups())
    assert received > 0
    record(
        "rolling", "smoke VM: pings lost (100 ms apart) during the roll, s", round((sent - received) * 0.1, 1)
    )
    server = conn.compute.get_server(vm["server_id"])
    assert server.status == "ACTIVE"
    services = {s.host: s for s in conn.compute.services(binary="nova-compute")}
    assert all(services[h].status == "enabled" for h in COMPUTES)


def test_rolling_stops_at_a_node_that_does_not_come_back_and_leaves_the_rest(
    epoxy_cloud: SeedLab, rolling_cloud: dict[str, Any]
) -> None:
    lab = epoxy_cloud
    before = {host: installed(lab, host) for host in COMPUTES}
    for host in COMPUTES:
        publish_newer(lab, host, "+sw2")
    # running now; the upgrade's restart (or apply's start) cannot bring it back
    drop_in = "[Service]\\nExecStartPre=/bin/false\\n"
    lab.check(
        "compute1",
        f"mkdir -p {BROKEN.rsplit('/', 1)[0]} && printf '{drop_in}' > {BROKEN} && systemctl daemon-reload",
    )
    try:
        proc = stackwright(
            "apply", str(lab.inventory), "--yes", "--rolling", "--health-wait", "60", "--json", timeout=3600
        )
    finally:
        lab.exec(
            "compute1",
            f"rm -f {BROKEN}; systemctl daemon-reload; systemctl reset-failed nova-compute; "
            "systemctl start nova-compute",
        )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["stopped_at"] == "compute1" and report["reason"], report
    assert report["untouched"] == ["compute2"]
    assert installed(lab, "compute2") == before["compute2"]  # the roll never reached it
    assert stackwright("apply", str(lab.inventory), "--yes", "--limit", "compute1").returncode == 0
