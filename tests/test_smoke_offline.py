"""Offline tests of the smoke test's pure parts: console parsing, networks, verdicts, clouds.yaml."""

from __future__ import annotations

import os
import stat
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import yaml

from stackwright.cloud import auth_url, cloud_config, write_clouds_yaml
from stackwright.inventory import Inventory, load_inventory
from stackwright.smoke.console import DiskCheck, parse_console, volume_serial
from stackwright.smoke.run import external_pool, judge_console, pick_tenant_cidr
from stackwright.yamlsource import UserError
from tests.conftest import SEED

SERVER = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.fixture
def seed() -> Inventory:
    return load_inventory(SEED).model


def inventory(external: str, gateway: str | None, node_external: list[str]) -> Inventory:
    nodes: dict[str, object] = {
        "controller": {"roles": ["controller"], "management": "10.10.10.51"},
        "network": {
            "roles": ["network"],
            "management": "10.10.10.52",
            "data": "10.20.20.52",
            "external": node_external[0],
        },
    }
    for i, address in enumerate(node_external[1:]):
        nodes[f"extra{i}"] = {
            "roles": ["compute"],
            "management": f"10.10.10.{60 + i}",
            "data": f"10.20.20.{60 + i}",
            "external": address,
        }
    ext: dict[str, str] = {"cidr": external}
    if gateway:
        ext["gateway"] = gateway
    return Inventory.model_validate(
        {
            "networks": {
                "management": {"cidr": "10.10.10.0/24"},
                "data": {"cidr": "10.20.20.0/24"},
                "external": ext,
            },
            "nodes": nodes,
        }
    )


# ------------------------------------------------------------------ console


CONSOLE = """\
[    1.777766] Run /init as init process\r
STACKWRIGHT-SMOKE start 6.1.0-56-cloud-amd64\r
udhcpc: started, v1.35.0\r
udhcpc: lease of 10.99.0.23 obtained from 10.99.0.2, lease time 86400\r
STACKWRIGHT-SMOKE lease 10.99.0.23\r
[   14.2] random: crng init done STACKWRIGHT-SMOKE uuid 0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0\r
STACKWRIGHT-SMOKE done\r
"""


def test_console_full_run() -> None:
    report = parse_console(CONSOLE)
    assert report.started and report.kernel == "6.1.0-56-cloud-amd64"
    assert report.lease == IPv4Address("10.99.0.23")
    assert report.uuid == SERVER  # found mid-line, lowercased
    assert report.done and report.uuid_failed is None
    assert judge_console(report, SERVER, "10.99.0.23").ok


def test_console_partial_and_failures() -> None:
    assert not parse_console("").started
    assert "not started" in parse_console("[ 1.0] booting").summary()
    waiting = parse_console(
        "STACKWRIGHT-SMOKE start x\nSTACKWRIGHT-SMOKE dhcp-retry 1\nSTACKWRIGHT-SMOKE dhcp-retry 2\n"
    )
    assert waiting.dhcp_retries == 2 and waiting.lease is None
    assert "2 rounds" in waiting.summary()
    verdict = judge_console(waiting, SERVER, "10.99.0.23")
    assert not verdict.finished and not verdict.ok and verdict.hint

    failed = parse_console(
        "STACKWRIGHT-SMOKE start x\nSTACKWRIGHT-SMOKE lease 10.99.0.23\n"
        "STACKWRIGHT-SMOKE uuid-failed after 20 tries: wget: server returned error: HTTP/1.1 404 Not Found\n"
        "STACKWRIGHT-SMOKE done\n"
    )
    assert failed.uuid is None and failed.uuid_failed is not None and "404" in failed.uuid_failed
    verdict = judge_console(failed, SERVER, "10.99.0.23")
    assert verdict.finished and not verdict.ok and "metadata" in (verdict.hint or "")

    no_lease = parse_console("STACKWRIGHT-SMOKE start x\nSTACKWRIGHT-SMOKE lease-failed\n")
    assert judge_console(no_lease, SERVER, None).finished


def test_console_rejects_malformed_values_and_restarts() -> None:
    report = parse_console("STACKWRIGHT-SMOKE lease 10.99.0.999\nSTACKWRIGHT-SMOKE uuid not-a-uuid\n")
    assert report.started and report.lease is None and report.uuid is None
    # A guest that rebooted starts over: the earlier lease no longer counts.
    rebooted = parse_console(
        "STACKWRIGHT-SMOKE start a\nSTACKWRIGHT-SMOKE lease 10.99.0.5\nSTACKWRIGHT-SMOKE start a\n"
    )
    assert rebooted.lease is None


def test_console_verdict_mismatches() -> None:
    leased = parse_console(
        f"STACKWRIGHT-SMOKE start x\nSTACKWRIGHT-SMOKE lease 10.99.0.7\nSTACKWRIGHT-SMOKE uuid {SERVER}\n"
    )
    wrong_ip = judge_console(leased, SERVER, "10.99.0.23")
    assert wrong_ip.finished and not wrong_ip.ok and "10.99.0.23" in wrong_ip.message
    other = "11111111-2222-3333-4444-555555555555"
    wrong_uuid = judge_console(leased, other, "10.99.0.7")
    assert wrong_uuid.finished and not wrong_uuid.ok and other in wrong_uuid.message
    lease_only = parse_console("STACKWRIGHT-SMOKE start x\nSTACKWRIGHT-SMOKE lease 10.99.0.7\n")
    assert not judge_console(lease_only, SERVER, "10.99.0.7").finished


VOLUME = "5c0ffee0-0001-4bbb-8ccc-0123456789ab"
TOKEN = "6a6a02bd-ea26-46f0-9f7f-e005e1f73d94"


def test_volume_serial_is_the_first_20_characters_of_the_id() -> None:
    assert volume_serial(VOLUME) == "5c0ffee0-0001-4bbb-8"


def test_console_disk_lines() -> None:
    report = parse_console(
        CONSOLE
        + f"[  30.1] virtio_blk virtio3: [vdb] 16384 512-byte logical blocks STACKWRIGHT-SMOKE disk vdb "
        f"5c0ffee0-0001-4bbb-8 wrote {TOKEN} read {TOKEN}\r\n"
        "STACKWRIGHT-SMOKE disk vdc none wrote 0b1c2d3e-0000-4000-8000-000000000000 read none\r\n"
    )
    assert report.done and report.uuid == SERVER  # the other lines as before
    assert report.disks == (
        DiskCheck("vdb", "5c0ffee0-0001-4bbb-8", TOKEN, TOKEN),
        DiskCheck("vdc", None, "0b1c2d3e-0000-4000-8000-000000000000", None),
    )
    found = report.disk_for(VOLUME)
    assert found is not None and found.dev == "vdb" and found.ok and found.attached
    assert not report.disks[1].ok  # nothing read back
    assert report.disk_for("5c0ffee0-0002-4bbb-8ccc-0123456789ab") is None


def test_console_disk_check_fails_on_a_stale_or_unwritten_marker() -> None:
    stale = parse_console(
        f"STACKWRIGHT-SMOKE disk vdb x wrote {TOKEN} read 11111111-2222-4333-8444-555555555555\n"
    )
    unwritten = parse_console(f"STACKWRIGHT-SMOKE disk vdb x wrote none read {TOKEN}\n")
    assert not stale.disks[0].ok and not unwritten.disks[0].ok
    assert unwritten.disks[0].wrote is None
    # malformed lines are ignored, not guessed at
    malformed = "STACKWRIGHT-SMOKE disk vdb x wrote\nSTACKWRIGHT-SMOKE disk sda x wrote a read a\n"
    assert parse_console(malformed).disks == ()


def test_console_disk_gone_and_attached_again() -> None:
    def checked(token: str) -> str:
        return f"STACKWRIGHT-SMOKE disk vdb {volume_serial(VOLUME)} wrote {token} read {token}\n"

    again = "0b1c2d3e-0000-4000-8000-000000000000"
    detached = parse_console(checked(TOKEN) + "STACKWRIGHT-SMOKE disk-gone vdb\n")
    gone = detached.disk_for(VOLUME)
    assert gone is not None and gone.ok and not gone.attached
    reattached = parse_console(checked(TOKEN) + "STACKWRIGHT-SMOKE disk-gone vdb\n" + checked(again))
    latest = reattached.disk_for(VOLUME)
    assert latest is not None and latest.wrote == again and latest.attached
    assert [d.attached for d in reattached.disks] == [False, True]
    # a guest that rebooted starts over: its earlier disks no longer count
    assert parse_console(checked(TOKEN) + "STACKWRIGHT-SMOKE start x\n").disks == ()


# ------------------------------------------------------------------ networks


def test_tenant_cidr_avoids_inventory_networks(seed: Inventory) -> None:
    assert pick_tenant_cidr(seed) == IPv4Network("10.99.0.0/24")
    clash = Inventory.model_validate(
        {
            "networks": {"management": {"cidr": "10.96.0.0/12"}},
            "nodes": {"c": {"roles": ["controller"], "management": "10.96.0.5"}},
        }
    )
    assert pick_tenant_cidr(clash) == IPv4Network("172.31.99.0/24")


def test_external_pool_for_the_seed(seed: Inventory) -> None:
    start, end = external_pool(seed)
    assert (start, end) == (IPv4Address("192.168.100.191"), IPv4Address("192.168.100.254"))
    reserved = {IPv4Address("192.168.100.1"), IPv4Address("192.168.100.51"), IPv4Address("192.168.100.52")}
    assert not any(start <= r <= end for r in reserved)


def test_external_pool_picks_the_longest_free_run() -> None:
    # /27: hosts .1-.30; gateway .1, nodes .20 and .29: runs .2-.19 (18) and .21-.28 (8), .30 (1)
    inv = inventory("192.168.5.0/27", "192.168.5.1", ["192.168.5.20", "192.168.5.29"])
    assert external_pool(inv) == (IPv4Address("192.168.5.2"), IPv4Address("192.168.5.19"))


def test_external_pool_without_gateway_avoids_the_lab_bridge_address() -> None:
    inv = inventory("192.168.6.0/29", None, ["192.168.6.6"])  # hosts .1-.6; lab bridge .1
    assert external_pool(inv) == (IPv4Address("192.168.6.2"), IPv4Address("192.168.6.5"))


def test_external_pool_too_small() -> None:
    inv = inventory("192.168.7.0/30", "192.168.7.1", ["192.168.7.2"])
    with pytest.raises(UserError, match="fewer than 2 free"):
        external_pool(inv)


def test_smoke_needs_an_external_network() -> None:
    inv = Inventory.model_validate(
        {
            "networks": {"management": {"cidr": "10.10.10.0/24"}},
            "nodes": {"c": {"roles": ["controller"], "management": "10.10.10.5"}},
        }
    )
    with pytest.raises(UserError, match=r"networks\.external"):
        external_pool(inv)


# ------------------------------------------------------------------ clouds.yaml


def test_cloud_config(seed: Inventory, passwords: dict[str, str]) -> None:
    config = cloud_config(seed, passwords)
    assert config["auth"]["auth_url"] == auth_url(seed) == "http://10.10.10.51:5000/v3"
    assert config["auth"]["password"] == passwords["admin_password"]
    assert config["auth"]["username"] == "admin" and config["auth"]["project_name"] == "admin"
    assert config["auth"]["user_domain_name"] == config["auth"]["project_domain_name"] == "Default"
    assert config["region_name"] == "RegionOne" and config["interface"] == "internal"
    assert config["api_timeout"] > 0
    assert cloud_config(seed, passwords, interface="public")["interface"] == "public"
    with pytest.raises(UserError, match="admin_password"):
        cloud_config(seed, {})


def test_write_clouds_yaml_is_private_and_atomic(
    seed: Inventory, passwords: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "clouds.yaml"
    write_clouds_yaml(path, seed, passwords, cacert=tmp_path / "tls" / "ca.crt")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cloud = yaml.safe_load(path.read_text())["clouds"]["stackwright"]
    # users' clouds.yaml: Keystone and the endpoints through the TLS front, verified with the CA
    assert cloud["auth"]["auth_url"] == "https://192.168.100.51:5000/v3"
    assert cloud["interface"] == "public"
    assert cloud["cacert"] == str(tmp_path / "tls" / "ca.crt")
    write_clouds_yaml(path, seed, {**passwords, "admin_password": "Changed123"}, cacert=None)
    assert "Changed123" in path.read_text()
    assert sorted(os.listdir(tmp_path)) == ["clouds.yaml"]  # no temp files or .prev left


def test_connect_builds_without_contacting(seed: Inventory, passwords: dict[str, str]) -> None:
    pytest.importorskip("openstack")
    from stackwright.cloud import connect

    conn = connect(seed, passwords)  # nothing is sent until the first call
    assert conn.config.get_auth_args()["auth_url"] == "http://10.10.10.51:5000/v3"
    assert conn.config.get_region_name() == "RegionOne"
    assert conn.config.get_interface() == "internal"
