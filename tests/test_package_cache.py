"""`package_cache: <node>`: the inventory, the plan (apt-cacher-ng on that node, every other node's
apt through it after waiting for it), the firewall, what the lab gives its hosts, and verify's
reading of the cache's log (through the same awk script, run here on a sample log)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackwright import firewall
from stackwright.cli import app
from stackwright.context import host_contexts
from stackwright.engine.converge import split_preparation
from stackwright.inventory import load_inventory
from stackwright.lab.layout import LabLayout
from stackwright.package_cache import SUMMARY_SCRIPT, parse_summary, verify_line
from stackwright.planner import plan_cluster
from stackwright.releases.modern.apt_node import (
    APT_PROXY,
    CACHE_CONF,
    CACHE_LOG,
    CACHE_READY,
    DPKG_EXCLUDES,
    NO_BYTE_COMPILE,
)
from stackwright.steps import AwaitHost, File, Milestone, Packages, Service, Step, Wait
from stackwright.yamlsource import UserError
from tests.conftest import APT_SETUP, SEED

CACHE = "package_cache: {host: controller, upstream_proxy: 'http://10.10.10.1:3142'}\n"


def inventory(tmp_path: Path, top: str = CACHE) -> Path:
    path = tmp_path / "cloud.yaml"
    path.write_text(top + SEED.read_text())
    return path


def plan(tmp_path: Path, passwords: dict[str, str], top: str = CACHE) -> dict[str, list[Step]]:
    cluster = plan_cluster(load_inventory(inventory(tmp_path, top)), passwords)
    return {name: list(host.steps) for name, host in cluster.hosts.items()}


def test_the_cache_node_runs_the_cache_before_its_other_packages_and_then_uses_it(
    tmp_path: Path, passwords: dict[str, str]
) -> None:
    steps = plan(tmp_path, passwords)["controller"]
    apt_setup, rest = split_preparation(steps)
    assert [s.path for s in apt_setup if isinstance(s, File)] == APT_SETUP
    assert not any(isinstance(s, AwaitHost) for s in apt_setup)
    packages = [s for s in rest if isinstance(s, Packages)]
    assert packages[0] == rest[0] and set(packages[0].names) == {"apt-cacher-ng", "nftables"}
    assert len(packages) == 2 and "apt-cacher-ng" in packages[1].names  # the whole set, after
    index = {id(s): i for i, s in enumerate(rest)}
    conf = next(s for s in rest if isinstance(s, File) and s.path == CACHE_CONF)
    service = next(s for s in rest if isinstance(s, Service) and s.name == "apt-cacher-ng")
    wait = next(s for s in rest if isinstance(s, Wait) and "apt-cacher-ng" in s.description)
    own_apt = next(s for s in rest if isinstance(s, File) and s.path == APT_PROXY)
    ready = next(s for s in rest if isinstance(s, Milestone) and s.name == CACHE_READY)
    ruleset = next(s for s in rest if isinstance(s, File) and s.path.endswith("firewall.nft"))
    order = [index[id(s)] for s in (ruleset, conf, service, wait, own_apt, ready, packages[1])]
    assert order == sorted(order), "firewall, cache, its own apt through it, the rest of the packages"
    assert CACHE_CONF in service.restart_when
    assert "BindAddress: 10.10.10.51 127.0.0.1" in conf.content
    assert "Proxy: http://10.10.10.1:3142" in conf.content
    settings = [line for line in conf.content.splitlines() if line and not line.startswith("#")]
    assert not any(line.startswith(("Remap-", "ReportPage")) for line in settings), settings
    assert 'Acquire::http::Proxy "http://127.0.0.1:3142";' in own_apt.content


def test_every_other_node_waits_for_the_cache_then_fetches_through_it(
    tmp_path: Path, passwords: dict[str, str]
) -> None:
    for name, steps in plan(tmp_path, passwords).items():
        if name == "controller":
            continue
        apt_setup, rest = split_preparation(steps)
        proxy = next(s for s in apt_setup if isinstance(s, File) and s.path == APT_PROXY)
        assert 'Acquire::http::Proxy "http://10.10.10.51:3142";' in proxy.content, name
        assert apt_setup[-1] == AwaitHost("controller", CACHE_READY), name
        assert isinstance(rest[0], Packages) and "apt-cacher-ng" not in rest[0].names


def test_without_a_cache_no_node_gets_a_proxy_or_waits(tmp_path: Path, passwords: dict[str, str]) -> None:
    for name, steps in plan(tmp_path, passwords, top="").items():
        apt_setup, _ = split_preparation(steps)
        assert [s.path for s in apt_setup if isinstance(s, File)] == APT_SETUP, name
        assert not any(isinstance(s, AwaitHost) for s in apt_setup)
        assert not any(isinstance(s, File) and s.path == CACHE_CONF for s in steps)


def test_dpkg_leaves_out_docs_and_py3compile_skips_test_suites(
    tmp_path: Path, passwords: dict[str, str]
) -> None:
    apt_setup, _ = split_preparation(plan(tmp_path, passwords, top="")["compute1"])
    files = {s.path: s.content for s in apt_setup if isinstance(s, File)}
    excludes = files[DPKG_EXCLUDES].splitlines()
    assert (
        "path-exclude=/usr/share/doc/*" in excludes and "path-include=/usr/share/doc/*/copyright" in excludes
    )
    assert "path-exclude=/usr/share/locale/*" in excludes and "path-exclude=/usr/share/man/*" in excludes
    # nothing a service runs from: no exclude under /usr/lib, /etc or /var
    assert all(
        not line.split("=", 1)[1].startswith(("/usr/lib", "/etc", "/var")) for line in excludes if "=" in line
    )
    rule = [line for line in files[NO_BYTE_COMPILE].splitlines() if not line.startswith("#")]
    assert rule == ["re|-|/usr/lib/python3/dist-packages/|.*/tests/.*"]


def test_the_cache_port_is_open_to_the_management_network_on_the_cache_node_only(tmp_path: Path) -> None:
    """As the controller's other services: a node that joins (`apply --limit compute2`) fetches its
    packages before any other node's firewall learns of it."""
    hosts = host_contexts(load_inventory(inventory(tmp_path)).model)
    cache = [o for o in firewall.openings(hosts["controller"]) if o.ports == "3142"]
    assert [tuple(map(str, o.sources or ())) for o in cache] == [("10.10.10.0/24",)]
    assert not any(o.ports == "3142" for h in ("network", "compute1") for o in firewall.openings(hosts[h]))
    listens = [li for li in firewall.listeners(hosts["controller"]) if 3142 in li.ports]
    assert listens and all(li.addresses == frozenset({"10.10.10.51"}) for li in listens)


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ("package_cache: ghost\n", "package_cache: 'ghost' is not a node of this inventory — name one of"),
        (
            "package_cache: {host: controller, upstream_proxy: 'http://user:pw@10.10.10.1:3142'}\n",
            "is not a valid HTTP proxy (http://host:port, without credentials or a path)",
        ),
        (
            "package_cache: {host: controller, upstream_proxy: 'http://10.10.10.1:3142\\nProxy: x'}\n",
            "is not a valid HTTP proxy",
        ),
    ],
)
def test_a_wrong_cache_is_one_line_and_exit_2(tmp_path: Path, top: str, message: str) -> None:
    result = CliRunner().invoke(app, ["validate", str(inventory(tmp_path, top))])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error")]) == 1


def test_the_short_form_names_the_node(tmp_path: Path) -> None:
    model = load_inventory(inventory(tmp_path, "package_cache: network\n")).model
    assert model.package_cache is not None and model.package_cache.host == "network"
    assert model.package_cache.upstream_proxy is None


def test_in_the_lab_only_the_cache_node_reaches_the_mirror(tmp_path: Path) -> None:
    layout = LabLayout.of(load_inventory(inventory(tmp_path)).model, tmp_path / "cloud.yaml")
    assert [layout.reaches_mirror(h) for h in layout.hosts] == [True, False, False]
    plain = LabLayout.of(load_inventory(SEED).model, SEED)
    assert all(plain.reaches_mirror(h) for h in plain.hosts)
    wrong = inventory(tmp_path, "package_cache: controller\n")
    with pytest.raises(UserError, match=r"set package_cache.upstream_proxy: http://10.10.10.1:3142"):
        LabLayout.of(load_inventory(wrong).model, wrong)


SAMPLE_LOG = """\
1796442235|I|644728|10.10.10.52|debrep/pool/main/a/a.deb
1796442235|O|644513|10.10.10.52|debrep/pool/main/a/a.deb
1796442236|O|644513|10.10.10.53|debrep/pool/main/a/a.deb
1796442237|I|100|10.10.10.53|debrep/dists/trixie/InRelease
1796442237|O|100|10.10.10.53|debrep/dists/trixie/InRelease
"""


def test_verify_sums_the_log_on_the_host_and_names_the_hit_rate(tmp_path: Path) -> None:
    log = tmp_path / "apt-cacher.log"
    log.write_text(SAMPLE_LOG)
    script = SUMMARY_SCRIPT.replace(CACHE_LOG, str(log))
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    stats = parse_summary(out.replace("state \n", "state active\n"))
    assert (stats.files_served, stats.bytes_served, stats.bytes_fetched) == (3, 1289126, 644828)
    assert stats.fetched_for == {"10.10.10.52": 644728, "10.10.10.53": 100}
    assert stats.since == 1796442235 and stats.hit_rate == pytest.approx(0.4998, abs=1e-4)
    line = verify_line("controller", stats)
    assert line.ok and "package cache on controller: 50% hit rate" in line.message
    stopped = verify_line("controller", parse_summary(out.replace("state \n", "state inactive\n")))
    assert not stopped.ok and "apt-cacher-ng is not running" in stopped.message and stopped.hint
    assert not verify_line("controller", None, "no route").ok


def test_the_cache_node_converges_right_after_the_controller() -> None:
    from stackwright.deploy import converge_order

    hosts = ["compute1", "network", "controller", "compute2"]
    assert converge_order("controller", hosts, "network") == ["controller", "network", "compute1", "compute2"]
    assert converge_order("controller", hosts, "controller")[0] == "controller"


def test_parallel_1_with_the_cache_beside_the_controller_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = inventory(tmp_path, "package_cache: network\n")
    result = CliRunner().invoke(app, ["apply", str(path), "--parallel", "1", "--yes"])
    assert result.exit_code == 2, result.output
    assert "controller (the controller) and network (the package cache) wait for each other" in result.output
    assert "--parallel 2 or more" in result.output and "Traceback" not in result.output
