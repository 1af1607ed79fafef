"""Storage nodes (Ceph) behind Cinder, Glance and Nova: the inventory, the cluster model, the plan of
each role, the firewall, and verify's and doctor's reading of Ceph's answers (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from stackwright import firewall
from stackwright.ceph import cluster
from stackwright.checks.doctor.base import CloudData, Context, HostData, ServiceState
from stackwright.checks.doctor.storage import ceph_health, ceph_osd, ceph_secret, cinder_volume
from stackwright.context import host_contexts
from stackwright.inventory import load_inventory
from stackwright.lab.layout import LabLayout
from stackwright.planner import plan_cluster
from stackwright.releases.modern.ceph import CEPH_READY, MON_KEYRING, POOLS_SCRIPT
from stackwright.releases.modern.compute import LIBVIRT_SECRET_VALUE
from stackwright.secrets import MASK
from stackwright.steps import AwaitHost, Command, File, Milestone, Service, Step
from stackwright.storage_check import parse_status, verify_lines
from stackwright.yamlsource import UserErrors
from tests.conftest import STORAGE

POOL_NO_REDUNDANCY = {
    "severity": "HEALTH_WARN",
    "summary": {"message": "3 pool(s) have no replicas configured"},
    "detail": [{"message": "pool 'volumes' has no replicas configured"}],
}
HEALTH_SIZE_ONE = {"status": "HEALTH_WARN", "checks": {"POOL_NO_REDUNDANCY": POOL_NO_REDUNDANCY}}
OSD_STAT = {"epoch": 12, "num_osds": 1, "num_up_osds": 1, "num_in_osds": 1}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cloud.yaml"
    path.write_text(text)
    return path


def steps_of(tmp_path: Path, passwords: dict[str, str], text: str | None = None) -> dict[str, list[Step]]:
    loaded = load_inventory(write(tmp_path, text or STORAGE.read_text()))
    return {name: list(host.steps) for name, host in plan_cluster(loaded, passwords).hosts.items()}


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(UserErrors) as caught:
        load_inventory(write(tmp_path, text))
    return [str(e) for e in caught.value.errors]


def test_a_storage_node_needs_a_device_and_only_storage_nodes_have_them(tmp_path: Path) -> None:
    text = STORAGE.read_text()
    no_device = text.replace("    osd_devices: [/dev/sdb]", "")
    assert any(
        "storage1: a storage node needs at least one OSD device" in e for e in errors(tmp_path, no_device)
    )
    on_compute = text.replace(
        "    data: 10.20.20.53\n", "    data: 10.20.20.53\n    osd_devices: [/dev/sdc]\n"
    )
    assert any("only storage nodes run OSDs" in e for e in errors(tmp_path, on_compute))
    twice = text.replace("[/dev/sdb]", "[/dev/sdb, /dev/sdb]")
    assert any("/dev/sdb listed twice" in e for e in errors(tmp_path, twice))
    hostile = text.replace("[/dev/sdb]", "['/dev/sdb; reboot']")
    assert any("is not a valid OSD device" in e for e in errors(tmp_path, hostile))


def test_zed_refuses_the_storage_role_in_one_line_saying_why(tmp_path: Path) -> None:
    found = errors(tmp_path, STORAGE.read_text().replace("release: epoxy", "release: zed"))
    assert len(found) == 1
    assert "release zed gets no storage role" in found[0] and "Pacific" in found[0]
    assert "use release: epoxy" in found[0]


def test_rbd_disks_need_a_storage_node(tmp_path: Path) -> None:
    text = STORAGE.read_text().replace("vm_disks: local", "vm_disks: rbd")
    text = text[: text.index("  storage1:")]
    assert any(
        "ceph.vm_disks: rbd" in e and "no node has the storage role" in e for e in errors(tmp_path, text)
    )


def test_the_cluster_follows_the_inventory_and_the_mon_key(passwords: dict[str, str], tmp_path: Path) -> None:
    text = STORAGE.read_text() + (
        "  storage2: {roles: [storage], management: 10.10.10.55, osd_devices: [/dev/sdb, /dev/sdc]}\n"
    )
    model = load_inventory(write(tmp_path, text)).model
    ceph = cluster(model, passwords)
    assert ceph is not None
    assert [(o.id, o.host, o.device) for o in ceph.osds] == [
        (0, "storage1", "/dev/sdb"),
        (1, "storage2", "/dev/sdb"),
        (2, "storage2", "/dev/sdc"),
    ]
    assert len({o.uuid for o in ceph.osds}) == 3
    assert (
        ceph.mon_host == "[v2:10.10.10.54:3300,v1:10.10.10.54:6789],[v2:10.10.10.55:3300,v1:10.10.10.55:6789]"
    )
    assert (ceph.pool_size, ceph.pool_min_size) == (2, 2)
    assert cluster(model, passwords) == ceph  # the same from run to run
    other = dict(passwords, ceph_mon_key="AQ" + "C" * 35 + "A==")
    assert cluster(model, other).fsid != ceph.fsid  # type: ignore[union-attr]
    assert cluster(load_inventory(STORAGE).model, passwords).pool_size == 1  # type: ignore[union-attr]


def test_the_storage_node_bootstraps_then_the_first_monitor_makes_pools_and_users(
    tmp_path: Path, passwords: dict[str, str]
) -> None:
    steps = steps_of(tmp_path, passwords)["storage1"]
    files = {s.path: s for s in steps if isinstance(s, File)}
    mon = files[MON_KEYRING]  # root's: mkfs reads a private copy, removed after
    assert mon.mode == 0o600 and mon.group == "root" and mon.secret
    assert files["/usr/share/ceph/mgr/bcrypt.py"].mode == 0o644
    assert files["/etc/ceph/ceph.client.admin.keyring"].mode == 0o600
    assert "mon_allow_pool_size_one = true" in files["/etc/ceph/ceph.conf"].content
    assert "auth_allow_insecure_global_id_reclaim = false" in files["/etc/ceph/ceph.conf"].content
    names = [s.name for s in steps if isinstance(s, Service)]
    assert names.index("ceph-mon@storage1") < names.index("ceph-mgr@storage1") < names.index("ceph-osd@0")
    osd = next(s for s in steps if isinstance(s, Command) and "OSD 0" in s.description)
    assert osd.unless == "test -e /var/lib/ceph/osd/ceph-0/mkfs_done"
    assert "'/dev/sdb'" in osd.argv[-1] or " /dev/sdb" in osd.argv[-1]
    pools = files[POOLS_SCRIPT].content
    for pool in ("volumes", "images", "vms"):
        assert f"osd pool set {pool} size 1 --yes-i-really-mean-it" in pools
        assert f"rbd pool init {pool}" in pools
    assert steps.index(Milestone(CEPH_READY)) > max(steps.index(s) for s in steps if isinstance(s, File))


def test_cinder_glance_and_nova_use_the_cluster(tmp_path: Path, passwords: dict[str, str]) -> None:
    plans = steps_of(tmp_path, passwords)
    controller = plans["controller"]
    files = {s.path: s for s in controller if isinstance(s, File)}
    cinder = files["/etc/cinder/cinder.conf"].content
    assert "volume_driver = cinder.volume.drivers.rbd.RBDDriver" in cinder and "rbd_user = cinder" in cinder
    assert files["/etc/ceph/ceph.client.cinder.keyring"].group == "cinder"
    assert files["/etc/ceph/ceph.client.glance.keyring"].group == "glance"
    assert files["/etc/ceph/ceph.client.glance.keyring"].mode == 0o640
    glance = files["/etc/glance/glance-api.conf"].content
    assert "default_backend = rbd" in glance and "show_image_direct_url = true" in glance
    catalog = files["/etc/stackwright/keystone-catalog.json"].content
    assert "volumev3" in catalog and ":8776/v3/%(project_id)s" in catalog
    await_ceph = controller.index(AwaitHost("storage1", CEPH_READY))
    volume = next(i for i, s in enumerate(controller) if isinstance(s, Service) and s.name == "cinder-volume")
    assert await_ceph < volume
    compute = plans["compute1"]
    nova = next(s for s in compute if isinstance(s, File) and s.path == "/etc/nova/nova.conf").content
    ceph = cluster(load_inventory(STORAGE).model, passwords)
    assert ceph is not None
    assert f"rbd_secret_uuid = {ceph.libvirt_secret_uuid}" in nova and "images_type" not in nova
    assert "[cinder]" in nova and "catalog_info = volumev3:cinderv3:internalURL" in nova
    secret = next(s for s in compute if isinstance(s, File) and s.path == LIBVIRT_SECRET_VALUE)
    assert secret.mode == 0o600 and secret.secret
    rbd = steps_of(tmp_path, passwords, STORAGE.read_text().replace("vm_disks: local", "vm_disks: rbd"))
    nova = next(s for s in rbd["compute1"] if isinstance(s, File) and s.path == "/etc/nova/nova.conf").content
    assert "images_type = rbd" in nova and "images_rbd_pool = vms" in nova
    assert AwaitHost("storage1", CEPH_READY) in rbd["compute1"]


def test_compute_nodes_install_the_ceph_client_only_for_disks_in_ceph(
    tmp_path: Path, passwords: dict[str, str]
) -> None:
    def compute_packages(text: str) -> set[str]:
        loaded = load_inventory(write(tmp_path, text))
        return set(plan_cluster(loaded, passwords).hosts["compute1"].packages())

    client = {"ceph-common", "python3-rados", "python3-rbd"}
    local = compute_packages(STORAGE.read_text())
    assert "qemu-block-extra" in local and not local & client  # volumes: qemu's librbd alone
    rbd = compute_packages(STORAGE.read_text().replace("vm_disks: local", "vm_disks: rbd"))
    assert rbd - local == client  # nova-compute's rbd import and its librados bindings
    controller = set(plan_cluster(load_inventory(STORAGE), passwords).hosts["controller"].packages())
    assert client <= controller  # cinder-volume's and glance's RBD drivers


def test_no_cephx_key_shows_in_the_plan(tmp_path: Path, passwords: dict[str, str]) -> None:
    from typer.testing import CliRunner

    from stackwright.cli import app

    path = write(tmp_path, STORAGE.read_text())
    (tmp_path / "passwords.yaml").write_text("".join(f"{k}: '{v}'\n" for k, v in passwords.items()))
    (tmp_path / "passwords.yaml").chmod(0o600)
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    assert MASK in result.output and "client.cinder" in result.output
    for name in ("ceph_mon_key", "ceph_admin_key", "ceph_cinder_key", "ceph_glance_key"):
        assert passwords[name] not in result.output
        assert passwords[name][:20] not in result.output


def test_storage_nodes_open_ceph_to_the_management_network_only(
    tmp_path: Path, passwords: dict[str, str]
) -> None:
    contexts = host_contexts(load_inventory(STORAGE).model)
    storage = firewall.openings(contexts["storage1"])
    ceph = [o for o in storage if "Ceph" in o.why]
    assert [(o.ports, o.sources) for o in ceph] == [
        ("3300,6789", (contexts["storage1"].management_network,)),
        ("6800-7300", (contexts["storage1"].management_network,)),
    ]
    controller = " ".join(o.ports for o in firewall.openings(contexts["controller"]))
    assert "8776" in controller


def test_the_lab_gives_storage_nodes_files_not_devices(tmp_path: Path) -> None:
    model = load_inventory(STORAGE).model
    with pytest.raises(Exception, match="the lab gives OSDs files"):
        LabLayout.of(model, tmp_path / "storage.yaml")
    lab = load_inventory(write(tmp_path, STORAGE.read_text().replace("/dev/sdb", "/srv/ceph/osd0.img"))).model
    layout = LabLayout.of(lab, tmp_path / "cloud.yaml")
    assert layout.host("storage1").osd_files == ("/srv/ceph/osd0.img",)
    assert layout.host("compute1").osd_files == ()


def status_text(
    health: Mapping[str, object], osd: Mapping[str, int], pools: str = "volumes\nimages\nvms\n"
) -> str:
    return f"{json.dumps(health)}\n#osd\n{json.dumps(osd)}\n#pools\n{pools}"


def test_verify_counts_the_one_host_warning_as_expected_and_names_it(passwords: dict[str, str]) -> None:
    ceph = cluster(load_inventory(STORAGE).model, passwords)
    assert ceph is not None
    lines = verify_lines(parse_status(status_text(HEALTH_SIZE_ONE, OSD_STAT)), ceph)
    assert all(line.ok for line in lines), lines
    assert "POOL_NO_REDUNDANCY expected: one OSD host" in lines[0].message
    down = dict(OSD_STAT, num_up_osds=0)
    health = {"status": "HEALTH_WARN", "checks": {"OSD_DOWN": {"summary": {"message": "1 osds down"}}}}
    lines = verify_lines(parse_status(status_text(health, down, "volumes\n")), ceph)
    assert [line.ok for line in lines] == [False, False, False]
    assert "OSD_DOWN: 1 osds down" in lines[0].message and "images, vms" in lines[2].message
    lines = verify_lines(parse_status("", "Error initializing cluster client: TimedOut"), ceph)
    assert not lines[0].ok and "TimedOut" in lines[0].message


def doctor_context(tmp_path: Path, passwords: dict[str, str], data: dict[str, HostData]) -> Context:
    loaded = load_inventory(write(tmp_path, STORAGE.read_text()))
    plan = plan_cluster(loaded, passwords)
    return Context(loaded.model, plan, list(loaded.model.nodes), data, CloudData())


def test_doctor_names_ceph_s_reason_a_down_osd_and_a_wrong_libvirt_secret(
    tmp_path: Path, passwords: dict[str, str]
) -> None:
    health = {
        "status": "HEALTH_WARN",
        "checks": {
            "OSD_DOWN": {
                "summary": {"message": "1 osds down"},
                "detail": [{"message": "osd.0 (root=default,host=storage1) is down"}],
            }
        },
    }
    joined = status_text(health, dict(OSD_STAT, num_up_osds=0)).replace("\n", " ")
    storage = HostData("storage1", {"ceph": [f"status={joined}", "osd=0 0", "where=0 storage1"]})
    right = hashlib.sha256(passwords["ceph_cinder_key"].encode()).hexdigest()
    compute = HostData("compute1", {"cephsecret": ["libvirt=" + "0" * 64, f"file={right}"]})
    ctx = doctor_context(tmp_path, passwords, {"storage1": storage, "compute1": compute})
    (row,) = ceph_health(ctx)
    assert row.failed and "osd.0 (root=default,host=storage1) is down" in row.cause
    (row,) = ceph_osd(ctx)
    assert row.failed and row.host == "storage1" and row.action is not None
    assert row.action.command == "systemctl restart ceph-osd@0"
    (row,) = ceph_secret(ctx)
    assert row.failed and "another key" in row.cause and row.action is not None
    assert passwords["ceph_cinder_key"] not in row.action.command
    compute.sections["cephsecret"] = [f"libvirt={right}", f"file={right}"]
    storage.sections["ceph"] = [
        f"status={status_text(HEALTH_SIZE_ONE, OSD_STAT).replace(chr(10), ' ')}",
        "osd=0 1",
    ]
    assert not any(r.failed for r in [*ceph_health(ctx), *ceph_osd(ctx), *ceph_secret(ctx)])


def test_doctor_restarts_a_cinder_volume_reported_down(tmp_path: Path, passwords: dict[str, str]) -> None:
    ctx = doctor_context(tmp_path, passwords, {})
    ctx.cloud = CloudData(
        [ServiceState("volume", "cinder-volume", "controller@ceph", False, "down, enabled")]
    )
    (row,) = cinder_volume(ctx)
    assert row.failed and row.action is not None and row.action.command == "systemctl restart cinder-volume"
    ctx.cloud = CloudData([ServiceState("volume", "cinder-volume", "controller@ceph", True, "up, enabled")])
    assert not cinder_volume(ctx)[0].failed


def test_apply_parallel_holds_the_controller_and_the_storage_nodes_together(tmp_path: Path) -> None:
    from stackwright.deploy import check_parallel, converge_order
    from stackwright.yamlsource import UserError

    model = load_inventory(STORAGE).model
    hosts = list(model.nodes)
    assert converge_order("controller", hosts[::-1], None, ("storage1",))[:2] == ["controller", "storage1"]
    with pytest.raises(UserError, match=r"waits for the storage nodes \(storage1\).*--parallel 2 or more"):
        check_parallel(model, hosts, 1)
    check_parallel(model, hosts, 2)
    check_parallel(model, hosts, 0)  # the default: every host at once
    check_parallel(model, ["controller", "network", "compute1"], 1)  # storage1 not in the run
    check_parallel(model, ["storage1"], 1)
