"""Preflight's reading of a host's free space and installed OpenStack (the probe's lines), offline."""

from __future__ import annotations

from stackwright.checks.preflight import DISK_MIN_MB, _disk_line, installed_openstack_line
from stackwright.releases.registry import get_release


def test_a_full_filesystem_fails_naming_the_mount_and_the_host() -> None:
    line = _disk_line("compute3", ["/ 41943040", "/var/cache/apt/archives 0", "/tmp 2457600"])
    assert not line.ok and not line.warning
    assert line.message.startswith("/var/cache/apt/archives has 0 MB free — free space on compute3")
    assert f"at least {DISK_MIN_MB} MB" in line.message


def test_enough_space_names_the_fullest_filesystem() -> None:
    line = _disk_line("compute1", ["/ 41943040", "/ 41943040", "/tmp 2457600"])
    assert line.ok and line.message == "2400 MB free on /tmp (the fullest)"


def test_just_below_the_minimum_fails() -> None:
    assert not _disk_line("h", [f"/ {(DISK_MIN_MB - 1) * 1024}"]).ok
    assert _disk_line("h", [f"/ {DISK_MIN_MB * 1024}"]).ok


def test_no_df_output_is_a_warning_not_a_failure() -> None:
    line = _disk_line("h", [])
    assert line.warning and "unknown" in line.message


def test_zed_packages_under_an_epoxy_inventory_are_refused_in_one_line() -> None:
    line = installed_openstack_line(
        ["ii nova-common 2:26.2.0-1+deb12u1", "ii keystone 2:22.0.0-2"], get_release("epoxy")
    )
    assert not line.ok and not line.warning
    assert line.message.startswith(
        "nova 26.2.0 (OpenStack Zed) is installed, but release epoxy installs nova 31"
    )
    assert "fresh Debian trixie host, or keep release zed" in line.message
    assert "\n" not in line.message


def test_epoxy_packages_under_a_zed_inventory_are_refused_too() -> None:
    line = installed_openstack_line(["ii neutron-common 2:26.0.3-1"], get_release("zed"))
    assert not line.ok and "neutron 26.0.3 (OpenStack Epoxy) is installed, but release zed" in line.message


def test_the_releases_own_packages_and_a_bare_host_pass() -> None:
    epoxy = get_release("epoxy")
    assert installed_openstack_line(["ii nova-common 2:31.0.0-6", "ii glance-common 2:30.0.0-3"], epoxy).ok
    assert installed_openstack_line([], epoxy).message == "no OpenStack installed yet"


def test_removed_packages_with_config_files_left_do_not_count() -> None:
    line = installed_openstack_line(["rc nova-common 2:26.2.0-1", "un keystone <none>"], get_release("epoxy"))
    assert line.ok


def test_an_unknown_release_is_named_as_such() -> None:
    line = installed_openstack_line(["ii nova-common 3:33.1.0-1"], get_release("epoxy"))
    assert not line.ok and "(another OpenStack release)" in line.message
