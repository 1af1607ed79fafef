"""verify --tempest without a cloud: the rendered tempest.conf, the test selection, the results."""

from __future__ import annotations

import configparser
import dataclasses
import json
import re
from pathlib import Path

import pytest

from stackwright.inventory import load_inventory
from stackwright.release_table import ALL
from stackwright.secrets import SECRET_NAMES
from stackwright.tempest.conf import TempestCloud, project_cidr, tempest_conf
from stackwright.tempest.results import failure_reason, parse_lines, summarize
from stackwright.tempest.run import SMOKE, selection
from stackwright.tempest.venv import constraints, pinned_releases, tempest_version
from stackwright.yamlsource import UserError
from tests.conftest import SEED, STORAGE

PASSWORDS = {name: f"Pw{index:02d}{name.replace('_', '')}" for index, name in enumerate(SECRET_NAMES)}
CLOUD = TempestCloud("img-1", "flavor-1", "flavor-2", "net-public", "public")


def rendered(inventory: Path = SEED) -> configparser.ConfigParser:
    model = load_inventory(inventory).model
    text = tempest_conf(model, PASSWORDS, CLOUD, release=model.release, log_file=Path("/tmp/x/tempest.log"))
    # [DEFAULT] read as a section of its own, not as defaults of every other section
    parser = configparser.ConfigParser(interpolation=None, strict=True, default_section="-")
    parser.read_string(text)
    return parser


def test_tempest_conf_points_at_the_public_endpoints_and_the_runs_resources() -> None:
    conf = rendered()
    assert conf["identity"]["uri_v3"] == "https://192.168.100.51:5000/v3"
    assert conf["auth"]["admin_password"] == PASSWORDS["admin_password"]
    assert conf["auth"]["use_dynamic_credentials"] == "true"
    assert (conf["compute"]["image_ref"], conf["compute"]["flavor_ref"]) == ("img-1", "flavor-1")
    assert conf["compute"]["flavor_ref_alt"] == "flavor-2"
    assert conf["network"]["public_network_id"] == "net-public"
    assert conf["validation"]["run_validation"] == "true"
    assert conf["validation"]["connect_method"] == "floating"
    assert conf["compute"]["min_compute_nodes"] == "1"
    for feature in ("cold_migration", "live_migration", "block_migration_for_live_migration"):
        assert conf["compute-feature-enabled"][feature] == "false", feature  # one compute node


def test_only_deployed_services_are_available() -> None:
    available = {name: value for name, value in rendered()["service_available"].items()}
    deployed = {"nova", "neutron", "glance", "horizon"}
    assert {name for name, value in available.items() if value == "true"} == deployed
    assert {name for name, value in available.items() if value == "false"} == {"cinder", "swift"}
    assert not rendered().has_section("volume")


def test_volumes_are_tested_where_storage_nodes_serve_them(tmp_path: Path) -> None:
    conf = rendered(STORAGE)
    assert conf["service_available"]["cinder"] == "true"
    assert conf["volume"]["catalog_type"] == "volumev3"  # what the controller registers
    assert conf["volume"]["max_microversion"] == ALL["epoxy"].cinder_max_microversion == "3.71"
    assert conf["volume"]["storage_protocol"] == "ceph"
    assert conf["volume-feature-enabled"]["backup"] == "false"  # no cinder-backup deployed
    # two compute nodes: block migration with local disks; with servers' disks in Ceph live
    # migration needs no block copy (and Nova refuses one)
    second = "  compute2:\n    roles: [compute]\n    management: 10.10.10.55\n    data: 10.20.20.55\n"
    text = STORAGE.read_text().replace("  storage1:\n", second + "  storage1:\n")
    for disks, block in (("local", "true"), ("rbd", "false")):
        (tmp_path / "storage.yaml").write_text(text.replace("vm_disks: local", f"vm_disks: {disks}"))
        features = rendered(tmp_path / "storage.yaml")["compute-feature-enabled"]
        assert (features["live_migration"], features["block_migration_for_live_migration"]) == ("true", block)


def test_the_dashboard_test_logs_in_where_the_dashboard_is_and_only_where_there_is_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = rendered()
    model = load_inventory(SEED).model
    assert conf["dashboard"]["dashboard_url"] == f"https://{model.controller.external}/horizon/"
    # a release without a dashboard (both deployable ones have one today)
    monkeypatch.setitem(ALL, "zed", dataclasses.replace(ALL["zed"], dashboard=False))
    zed = rendered(SEED.parent / "seed-zed.yaml")
    assert zed["service_available"]["horizon"] == "false"
    assert not zed.has_section("dashboard")


def test_project_networks_avoid_every_inventory_network() -> None:
    inventory = load_inventory(SEED).model
    from ipaddress import IPv4Network

    cidr = IPv4Network(project_cidr(inventory))
    assert not any(cidr.overlaps(net.cidr) for _, net in inventory.networks.items())


def test_selection_smoke_full_and_regex() -> None:
    smoke = "tempest.api.compute.servers.test_servers.S.test_x[id-1,smoke]"
    slow = "tempest.api.compute.servers.test_servers.S.test_y[id-2,slow]"
    assert re.search(selection("smoke", None), smoke) and not re.search(selection("smoke", None), slow)
    combined = selection("smoke", r"tempest\.api\.network")
    assert not re.search(combined, smoke)
    assert re.search(combined, "tempest.api.network.test_ports.P.test_z[id-3,smoke]")
    assert re.search(selection("full", None), slow)
    assert selection("smoke", None) == SMOKE


def test_results_by_service_with_failure_reasons_and_skip_reasons() -> None:
    lines = [
        {"id": "tempest.api.compute.a.A.test_1[id-1,smoke]", "status": "success", "seconds": 2.0},
        {"id": "tempest.api.compute.a.A.test_2[id-2,smoke]", "status": "fail", "seconds": 1.0,
         "reason": "Traceback (most recent call last):\n  File x\ntempest.lib.exceptions.TimeoutException: "
                   "Request timed out\nDetails: server foo"},
        {"id": "tempest.api.volume.v.V.test_3[id-3,smoke]", "status": "skip",
         "reason": "Cinder not available"},
        {"id": "tempest.scenario.test_s.S.test_4[id-4,smoke]", "status": "success"},
        {"id": "setUpClass (tempest.api.object_storage.test_a.AccountTest)", "status": "skip",
         "reason": "AccountTest skipped as swift is not available"},
    ]  # fmt: skip
    summary = summarize(parse_lines("\n".join(json.dumps(line) for line in lines)))
    assert {s: (t.passed, t.failed, t.skipped) for s, t in summary.by_service.items()} == {
        "compute": (1, 1, 0), "volume": (0, 0, 1), "scenario": (1, 0, 0), "object_storage": (0, 0, 1),
    }  # fmt: skip
    assert not summary.ok and len(summary.skip_reasons()) == 2
    reason = failure_reason(summary.failures()[0].reason)
    assert reason == "tempest.lib.exceptions.TimeoutException: Request timed out"
    assert summary.as_json()["failures"][0]["test"] == "tempest.api.compute.a.A.test_2"


def test_epoxy_pins_tempest_and_every_dependency_exactly() -> None:
    pins = constraints("epoxy")
    assert pins is not None and "epoxy" in pinned_releases()
    assert tempest_version(pins) == "47.0.0"
    lines = [line for line in pins.splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+]*", line) for line in lines), lines
    assert "oslo.utils==8.2.0" in lines  # Debian 13's


def test_a_release_without_pins_is_refused_in_one_line() -> None:
    from stackwright.tempest.venv import ensure_venv

    with pytest.raises(UserError, match="release zed has none"):
        ensure_venv("zed")


def test_two_compute_nodes_enable_cold_and_live_migration(tmp_path: Path) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(
        SEED.read_text()
        + "  compute2:\n    roles: [compute]\n    management: 10.10.10.54\n    data: 10.20.20.54\n"
    )
    text = tempest_conf(
        load_inventory(path).model, PASSWORDS, CLOUD, release="epoxy", log_file=tmp_path / "t.log"
    )
    parser = configparser.ConfigParser(interpolation=None, strict=True, default_section="-")
    parser.read_string(text)
    assert parser["compute"]["min_compute_nodes"] == "2"
    for feature in ("cold_migration", "live_migration", "block_migration_for_live_migration"):
        assert parser["compute-feature-enabled"][feature] == "true", feature


def test_tempest_knows_the_scheduler_filters_nova_runs_and_the_release_s_fqdn_hostnames() -> None:
    from stackwright.planner import plan_cluster

    filters = rendered()["compute-feature-enabled"]["scheduler_enabled_filters"].split(",")
    assert {"SameHostFilter", "DifferentHostFilter", "ComputeFilter"} <= set(filters)
    nova = configparser.ConfigParser(interpolation=None)
    nova.read_string(
        plan_cluster(load_inventory(SEED), PASSWORDS)
        .hosts["controller"]
        .files()["/etc/nova/nova.conf"]
        .content
    )
    assert [f.strip() for f in nova["filter_scheduler"]["enabled_filters"].split(",")] == filters
    assert rendered()["compute-feature-enabled"]["hostname_fqdn_sanitization"] == "true"  # epoxy
    zed = rendered(SEED.parent / "seed-zed.yaml")
    assert zed["compute-feature-enabled"]["hostname_fqdn_sanitization"] == "false"
    # tests of microversions the release's nova does not serve skip rather than fail with 406
    assert (rendered()["compute"]["max_microversion"], zed["compute"]["max_microversion"]) == (
        "2.100",
        "2.93",
    )
