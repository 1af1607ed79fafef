"""Preflight's reading of a host's free space (the probe's `disk=` lines), offline."""

from __future__ import annotations

from stackwright.checks.preflight import DISK_MIN_MB, _disk_line


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
