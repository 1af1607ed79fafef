"""Release zed still deploys: Debian 12 hosts of their own, bare -> a Zed cloud whose smoke VM
leases across the tunnel and reads its metadata; a re-apply changes and restarts nothing.

Zed is the previous release (Debian 12's own packages); every other feature is proven on Epoxy.
"""

from __future__ import annotations

import json
import shlex
import time

import pytest

from stackwright.inventory import load_inventory
from tests.lab.cli import stackwright
from tests.lab.cloudkit import add_compute, apply_json, assert_compute_node
from tests.lab.conftest import SeedLab, start_zed_converge
from tests.lab.figures import record

pytestmark = [pytest.mark.lab, pytest.mark.cloud]


@pytest.fixture(scope="module")
def zed_cloud(zed_lab: SeedLab) -> SeedLab:
    """The Zed lab converged from bare: started in the background by `epoxy_cloud` when the session
    runs both (the figure is then the apply's own time, beside the Epoxy tests), else here."""
    job = start_zed_converge(zed_lab)
    proc = job.result()
    record("zed", "apply (bare hosts) s", round(job.seconds, 1))
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and set(report["hosts"]) == {"controller", "network", "compute1"}, report
    return zed_lab


def test_zed_hosts_run_zeds_packages(zed_cloud: SeedLab) -> None:
    version = zed_cloud.check("compute1", "dpkg-query -W -f '${Version}' nova-compute")
    assert version.split(":", 1)[-1].startswith("26."), version
    assert "bookworm" in zed_cloud.check("controller", "grep VERSION_CODENAME /etc/os-release")


def test_zed_smoke_vm_gets_its_lease_and_metadata(zed_cloud: SeedLab) -> None:
    start = time.monotonic()
    proc = stackwright("verify", str(zed_cloud.inventory), "--smoke", "--json", "--wait", "180", timeout=1800)
    record("zed", "verify --smoke s", round(time.monotonic() - start, 1))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert all(c["ok"] for c in data["checks"]), [c for c in data["checks"] if not c["ok"]]
    smoke = data["smoke"]
    assert smoke["ok"] and smoke["lease"] == smoke["fixed_ip"] and smoke["uuid"] == smoke["server_id"]


def test_zed_reapply_changes_nothing_and_restarts_nothing(zed_cloud: SeedLab) -> None:
    start = time.monotonic()
    proc = stackwright("apply", str(zed_cloud.inventory), "--yes", "--json", "--no-upgrade")
    record("zed", "no-op re-apply s", round(time.monotonic() - start, 1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for host, result in json.loads(proc.stdout)["hosts"].items():
        assert result["ok"] and result["changed"] == 0 and result["restarted"] == [], (host, result)


def test_zed_nodes_without_a_route_install_through_the_cache_and_a_new_compute_node_fetches_nothing(
    zed_cloud: SeedLab,
) -> None:
    """The inventory puts a package cache on the controller (conftest: ZED_PACKAGE_CACHE) and the lab
    gives the other hosts no route to the mirror: the lab's apt proxy refuses them. They converged
    through the cache; compute2, added from bare after them, gets every package from it: its
    converge fetches 0 bytes of packages from the mirror (the cache's own log, by client address).
    Only the signed indexes are fetched again, as apt-cacher-ng re-checks them."""
    proxy = zed_cloud.layout.proxy_url
    mirror = zed_cloud.check("compute1", "awk '/^deb /{print $2; exit}' /etc/apt/sources.list").strip()
    probe = (
        "import urllib.request as u, urllib.error as e\n"
        f"opener = u.build_opener(u.ProxyHandler({{'http': '{proxy}'}}))\n"
        "try:\n"
        f"    print(opener.open('{mirror}/dists/bookworm/InRelease', timeout=10).status)\n"
        "except e.HTTPError as err:\n"
        "    print(err.code)\n"
    )
    for host in ("network", "compute1"):
        assert zed_cloud.check(host, f"python3 -c {shlex.quote(probe)}").strip() == "403", host
        assert "10.11.10.51:3142" in zed_cloud.check(host, "apt-config dump Acquire::http::Proxy")
    assert zed_cloud.check("controller", f"python3 -c {shlex.quote(probe)}").strip() == "200"

    name = add_compute(zed_cloud, 2)
    address = str(load_inventory(zed_cloud.inventory).model.nodes[name].management)
    report = apply_json(zed_cloud, "--limit", name)
    assert report["ok"], report
    assert_compute_node(zed_cloud, name)
    # what the cache fetched from the mirror for compute2's requests and sent it, packages (pool/)
    # apart from the signed indexes apt-cacher-ng re-checks with the mirror (after 27 s: they change)
    sums = zed_cloud.check(
        "controller",
        f"awk -F'|' -v c={address} '$4 != c {{next}} $5 ~ /[/]pool[/]/ {{deb[$2] += $3; n[$2]++; next}} "
        f'{{idx[$2] += $3}} END {{print deb["I"] + 0, deb["O"] + 0, n["O"] + 0, idx["I"] + 0}}\' '
        "/var/log/apt-cacher-ng/apt-cacher.log",
    )
    fetched, served, files, indexes = map(int, sums.split())
    record("zed", "package cache: MB of packages served to a new compute node", round(served / 1e6, 1))
    record("zed", "package cache: kB of indexes re-checked for it", round(indexes / 1e3, 1))
    assert files > 100 and served > 50e6, sums  # its packages came through the cache
    assert fetched == 0, f"{fetched} bytes of packages came from the mirror for {name}'s requests"

    proc = stackwright("verify", str(zed_cloud.inventory), "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    data = json.loads(proc.stdout)
    line = next(c for c in data["checks"] if c["id"] == "package-cache:controller")
    assert line["ok"] and "hit rate" in line["message"], line
    assert data["package_cache"]["fetched_for"].get(address, 0) == indexes
    assert data["package_cache"]["hit_rate"] > 0.2, data["package_cache"]
