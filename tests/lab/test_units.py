"""Offline checks of the lab's pure parts (no root, no hosts): names, sources, errors."""

from __future__ import annotations

from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from stackwright.inventory import load_inventory
from stackwright.lab import network, system
from stackwright.lab.hosts import network_file
from stackwright.lab.layout import LabLayout
from stackwright.lab.proxy import cache_path, is_immutable
from stackwright.lab.sources import AptSource, debian_mirrors, parse_deb822, parse_list
from stackwright.yamlsource import UserError
from tests.lab.conftest import SEED

SEED_LAYOUT = LabLayout.of(load_inventory(SEED).model, SEED)


def test_interface_names_fit_the_kernel_limit_and_are_unique() -> None:
    names = [b.name for b in SEED_LAYOUT.bridges] + [lk.veth for h in SEED_LAYOUT.hosts for lk in h.links]
    assert all(len(n) <= 15 for n in names)
    assert len(set(names)) == len(names)


def test_hosts_get_the_inventory_interfaces_and_addresses() -> None:
    net = SEED_LAYOUT.host("network")
    assert [(lk.ifname, str(lk.address)) for lk in net.links] == [
        ("eth0", "10.10.10.52/24"),
        ("eth1", "10.20.20.52/24"),
        ("eth2", "192.168.100.52/24"),
    ]
    assert [str(b.address) for b in SEED_LAYOUT.bridges] == [
        "10.10.10.1/24",
        "10.20.20.1/24",
        "192.168.100.1/24",
    ]


def test_network_files_sort_before_nspawns_own_and_set_no_gateway() -> None:
    assert "10-eth0.network" < "80-container-host0.network"
    layout = LabLayout.of(load_inventory(SEED).model, SEED)
    link = layout.host("compute1").links[1]
    text = network_file(link)
    assert "Name=eth1" in text and "Address=10.20.20.53/24" in text
    assert "Gateway" not in text and "LinkLocalAddressing=no" in text


def test_lab_network_files_are_the_ones_apply_writes_for_plain_interfaces(passwords: dict[str, str]) -> None:
    from stackwright.planner import plan_cluster

    layout = LabLayout.of(load_inventory(SEED).model, SEED)
    plan = plan_cluster(load_inventory(SEED), passwords)
    controller = layout.host("controller")
    files = plan.hosts["controller"].files()
    for link in controller.links:
        assert files[f"/etc/systemd/network/10-{link.ifname}.network"].content == network_file(link)


def test_render_only_release_is_refused(tmp_path: Path) -> None:
    inv = tmp_path / "old.yaml"
    inv.write_text(SEED.read_text().replace("release: epoxy", "release: grizzly"))
    with pytest.raises(UserError, match="render-only"):
        LabLayout.of(load_inventory(inv).model, inv)


def test_sources_both_formats_and_disabled_paragraphs() -> None:
    listed = parse_list("deb [arch=amd64] http://m.example/debian bookworm main contrib\ndeb-src x y z\n")
    assert listed == [AptSource("http://m.example/debian", ("bookworm",), ("main", "contrib"))]
    deb822 = parse_deb822(
        "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://off.example/x\nSuites: bookworm\nEnabled: no\n"
    )
    assert [s.host for s in deb822] == ["m.example"]


def test_mirrors_are_retargeted_and_vendor_repos_left_out() -> None:
    sources = [
        AptSource("https://m.example/debian", ("bullseye", "bullseye-updates"), ("main",)),
        AptSource("http://s.example/debian-security", ("bullseye-security",), ("main",)),
        AptSource("http://vendor.example/apt", ("stable",), ("main",)),
    ]
    mirrors = debian_mirrors("bookworm", sources, "bullseye")
    assert mirrors.archive.uri == "https://m.example/debian"
    assert mirrors.hosts == ("m.example", "s.example")
    assert mirrors.sources_list().splitlines() == [
        "deb http://m.example/debian bookworm main",
        "deb http://m.example/debian bookworm-updates main",
        "deb http://s.example/debian-security bookworm-security main",
    ]


def test_no_debian_source_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no Debian source"):
        debian_mirrors("bookworm", [AptSource("http://vendor.example/apt", ("stable",), ())], "bookworm")


def test_only_pool_and_by_hash_files_are_cached() -> None:
    assert is_immutable("/debian/pool/main/h/hello/hello_2.10-3_amd64.deb")
    assert is_immutable("/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/abc")
    assert not is_immutable("/debian/dists/bookworm/InRelease")
    assert not is_immutable("/debian/dists/bookworm/main/binary-amd64/Packages.xz")


def test_cache_paths_cannot_escape(tmp_path: Path) -> None:
    assert cache_path(tmp_path, "m.example", "/debian/pool/../../etc/passwd") is None
    assert cache_path(tmp_path, "m.example", "/debian/pool/%2e%2e/x") is None
    assert (
        cache_path(tmp_path, "m.example", "/debian/pool/a/b.deb")
        == tmp_path / "m.example/debian/pool/a/b.deb"
    )


def test_address_collision_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "machine_addresses", lambda: [("eth9", IPv4Interface("10.10.10.7/16"))])
    monkeypatch.setattr(network, "machine_routes", lambda: [])
    with pytest.raises(UserError, match=r"collides with 10\.10\.10\.7/16 already on eth9"):
        network.check_collisions(SEED_LAYOUT)


def test_own_bridges_do_not_count_as_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    mine = [(b.name, b.address) for b in SEED_LAYOUT.bridges]
    monkeypatch.setattr(network, "machine_addresses", lambda: mine)
    monkeypatch.setattr(network, "machine_routes", lambda: [(n, a.network) for n, a in mine])
    network.check_collisions(SEED_LAYOUT)


def test_not_root_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(UserError, match=r"needs root .* sudo"):
        system.require_root()


def test_missing_tool_names_the_package_and_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda t: None if t == "systemd-nspawn" else "/x")
    with pytest.raises(
        UserError, match=r"systemd-nspawn not found — install systemd-container .*--ensure-packages"
    ):
        system.require_tools(ensure_packages=False)


def test_ensure_packages_installs_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: list[str] = []
    monkeypatch.setattr("shutil.which", lambda t: "/x" if installed or t != "debootstrap" else None)
    monkeypatch.setattr(system, "install_packages", lambda pkgs: installed.extend(pkgs))
    system.require_tools(ensure_packages=True)
    assert installed == ["debootstrap"]


def test_not_enough_disk_says_how_much_is_needed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(system, "free_bytes", lambda path: 200 * 2**20)
    with pytest.raises(UserError, match=r"needs 1\.0 GB free under .* only 0\.2 GB left"):
        system.require_disk(tmp_path, 2**30, "`lab up`")
