"""doctor on the session's Epoxy cloud: no false alarm when healthy, then each way of breaking a
real host is named with its cause, the safe fix (or `apply`) restores it, `verify` passes.

Runs after the plain-host lab tests (marker `cloud`). Every test that breaks a host repairs it in
`finally`, even when it fails. A break that edits a managed file also (rightly) shows as config drift.
A container cannot set the real clock (no CAP_SYS_TIME), so clock skew is made the way the issue
allows, by faking it for the whole host: libfaketime preloaded into every new process there
(/etc/ld.so.preload), so the host's processes, ours included, read a clock 120 s ahead.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stackwright.polling import poll
from stackwright.releases.modern.controller import RABBITMQ_PASSWORD
from tests.lab.cli import stackwright
from tests.lab.conftest import SeedLab

pytestmark = [pytest.mark.lab, pytest.mark.cloud]
LIBVIRT_UNITS = "libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket libvirtd-tls.socket"


def doctor(lab: SeedLab, *args: str) -> tuple[int, dict[str, Any]]:
    proc = stackwright("doctor", str(lab.inventory), "--json", *args)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    # shown with a failing test's captured output: what each doctor run found, and why
    for c in data["checks"]:
        if c["status"] in ("fail", "warn"):
            print(f"doctor {' '.join(args)}: {c['status']} {c['id']}@{c['host']}: {c['cause']}")
    return proc.returncode, data


def failing(data: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["id"], c["host"]) for c in data["checks"] if c["status"] in ("fail", "warn")}


def causes(data: dict[str, Any], ident: str) -> str:
    return " | ".join(c["cause"] for c in data["checks"] if c["id"] == ident and c["status"] == "fail")


def tunnel_hosts(lab: SeedLab) -> list[str]:
    return [h for h in lab.hosts if h == "network" or h.startswith("compute")]


def assert_verify(lab: SeedLab) -> None:
    proc = stackwright("verify", str(lab.inventory), "--json", "--wait", "180", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def apply_limit(lab: SeedLab, host: str) -> None:
    proc = stackwright("apply", str(lab.inventory), "--yes", "--no-upgrade", "--json", "--limit", host)
    assert proc.returncode == 0, proc.stderr[-3000:]


# True when this module's last doctor run passed every check and nothing was done to the cloud
# since: each fault test ends with healthy_after (call it last), so the next test's `cloud`
# fixture need not wait for the same answer again.
LAST_RUN_HEALTHY = [False]


def healthy_after(lab: SeedLab, within_s: float = 120) -> dict[str, Any]:
    """doctor again until every check passes (agents report in a few seconds after a restart)."""
    code, data = poll(lambda: doctor(lab), within_s=within_s, every_s=5, done=lambda result: result[0] == 0)
    assert code == 0, failing(data)
    LAST_RUN_HEALTHY[0] = True
    return data


@pytest.fixture(scope="module")
def converged(epoxy_cloud: SeedLab) -> SeedLab:
    assert_verify(epoxy_cloud)
    LAST_RUN_HEALTHY[0] = False  # other modules' runs (test_firewall's, test_tls's) do not count
    return epoxy_cloud


@pytest.fixture
def cloud(converged: SeedLab) -> Iterator[SeedLab]:
    """The converged seed cloud, healthy (every doctor check passing, waited for, bounded) before
    each test: what a test breaks is then all that fails, not what the previous one left settling."""
    if not LAST_RUN_HEALTHY[0]:
        healthy_after(converged, 180)
    LAST_RUN_HEALTHY[0] = False  # the test breaks something
    yield converged


def test_healthy_cloud_has_no_false_alarm(converged: SeedLab) -> None:
    """Right after `verify` passed, nothing waited for. (Its speed: benchmarks/run.py.)"""
    doctor(converged)  # first run on these hosts generates the cached option data
    code, data = doctor(converged)
    assert code == 0 and data["ok"], failing(data)
    statuses = {(c["id"], c["host"]): c["status"] for c in data["checks"]}
    assert set(statuses.values()) == {"ok"}, statuses
    ids = {c["id"] for c in data["checks"]}
    assert ids >= {"libvirtd", "instances-ownership", "service-down", "compute-connectivity", "clock-skew"}
    assert ids >= {"tunnel", "virt-type-kvm", "cell-mapping", "config-drift", "config-options"}


def test_libvirtd_stopped(cloud: SeedLab) -> None:
    """The seed's case 1, with the seed's own message quoted from nova-compute.log."""
    log = "/var/log/nova/nova-compute.log"
    count = f"grep -c 'Failed to connect socket' {log} || true"
    try:
        before = int(cloud.check("compute1", count).strip() or 0)
        cloud.check("compute1", f"systemctl stop {LIBVIRT_UNITS} libvirtd")
        # nova-compute's periodic resource update (every 60 s) is what runs into the missing socket.
        poll(lambda: int(cloud.check("compute1", count).strip() or 0) != before, within_s=100, every_s=5)
        code, data = doctor(cloud)
        assert code == 1
        # with compute2 in the cloud, its migrations to compute1 have no listener to go to either
        peers = {("migration-path", h) for h in cloud.hosts if h.startswith("compute") and h != "compute1"}
        assert failing(data) == {("libvirtd", "compute1")} | peers
        if peers:
            assert "compute1's libvirtd listener" in causes(data, "migration-path")
        cause = causes(data, "libvirtd")
        # systemd calls a stopped libvirtd `failed` when its stop ended in an error exit (once in the
        # CI rehearsal of e180fbd); either way doctor must name the state it is in
        state = cloud.exec("compute1", "systemctl show -p ActiveState,Result,ExecMainStatus libvirtd").stdout
        assert re.search(r"libvirtd is (inactive|failed)", cause), f"{cause}\n{state}"
        assert "/run/libvirt/libvirt-sock is missing" in cause
        assert (
            "nova-compute logged: " in cause
            and "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory"
            in cause
        )
        code, data = doctor(cloud, "--fix")
        assert code == 0, failing(data)
        assert any("started libvirtd" in f["description"] for f in data["fixes"])
        assert cloud.check("compute1", "systemctl is-active libvirtd").strip() == "active"
    finally:
        cloud.exec("compute1", f"systemctl start {LIBVIRT_UNITS}; systemctl start libvirtd")
    assert_verify(cloud)


def test_instances_dir_owned_by_root(cloud: SeedLab) -> None:
    try:
        cloud.check("compute1", "chown root:root /var/lib/nova/instances")
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("instances-ownership", "compute1")}
        assert "owned by root:root, not nova:nova" in causes(data, "instances-ownership")
        assert all("777" not in f["command"] for f in data["fixes"])
        code, data = doctor(cloud, "--fix")
        assert code == 0, failing(data)
        assert "nova nova" in cloud.check("compute1", "stat -c '%U %G %a' /var/lib/nova/instances")
        assert "755" in cloud.check("compute1", "stat -c '%a' /var/lib/nova/instances")
    finally:
        cloud.exec("compute1", "chown nova:nova /var/lib/nova/instances")
    assert_verify(cloud)


def test_rabbitmq_stopped(cloud: SeedLab) -> None:
    computes = [h for h in cloud.hosts if h.startswith("compute")]
    try:
        cloud.check("controller", "systemctl stop rabbitmq-server", timeout=180)
        code, data = doctor(cloud)
        assert code == 1
        expected = {("service-down", "controller")} | {("compute-connectivity", h) for h in computes}
        assert failing(data) == expected
        assert "rabbitmq-server is inactive" in causes(data, "service-down")
        cause = causes(data, "compute-connectivity")
        assert "RabbitMQ 10.10.10.51:5672: connection refused" in cause and "wrong password" not in cause
        code, data = doctor(cloud, "--fix")
        assert any(f["description"] == "started rabbitmq-server" for f in data["fixes"])
    finally:
        cloud.exec("controller", "systemctl start rabbitmq-server", timeout=180)
    healthy_after(cloud, 180)
    assert_verify(cloud)


def test_rabbitmq_password_changed_on_one_side(cloud: SeedLab) -> None:
    computes = [h for h in cloud.hosts if h.startswith("compute")]
    try:
        cloud.check("controller", "echo NotTheRightPassword1 | rabbitmqctl change_password openstack")
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("compute-connectivity", h) for h in computes}
        cause = causes(data, "compute-connectivity")
        assert "wrong password" in cause and "refused the login of user openstack" in cause
        assert "connection refused" not in cause
        assert "NotTheRightPassword1" not in json.dumps(data)
    finally:
        cloud.check("controller", f"rabbitmqctl change_password openstack < {RABBITMQ_PASSWORD}")
    healthy_after(cloud)
    assert_verify(cloud)


def test_data_address_removed(cloud: SeedLab) -> None:
    others = {("tunnel", h) for h in tunnel_hosts(cloud) if h != "compute1"}
    try:
        cloud.check("compute1", "ip addr del 10.20.20.53/24 dev br-phy")
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("tunnel", "compute1")} | others
        cause = causes(data, "tunnel")
        assert "local_ip 10.20.20.53 of the OVS agent is not on this host (expected on br-phy)" in cause
        assert "compute1's data address 10.20.20.53 does not answer" in cause
        code, data = doctor(cloud, "--fix")
        assert any(f["command"] == "networkctl reconfigure br-phy" for f in data["fixes"])
        assert code == 0, failing(data)
    finally:
        cloud.exec(
            "compute1", "ip -4 addr show dev br-phy | grep -q 10.20.20.53 || networkctl reconfigure br-phy"
        )
    assert_verify(cloud)


def test_tunnel_port_deleted(cloud: SeedLab) -> None:
    port = cloud.check(
        "network",
        "ovs-vsctl --format=csv --data=bare --no-headings --columns=name find Interface "
        "options:remote_ip=10.20.20.53",
    ).strip()
    assert port, "no tunnel port towards compute1 on the network node"
    try:
        cloud.check("network", f"ovs-vsctl del-port br-tun {port}")
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("tunnel", "network")}
        assert "no gre port on br-tun towards compute1 (10.20.20.53)" in causes(data, "tunnel")
        code, data = doctor(cloud, "--fix")
        assert code == 0, failing(data)
        assert any("restarted neutron-openvswitch-agent" in f["description"] for f in data["fixes"])
    finally:
        missing = cloud.exec("network", "ovs-vsctl list-ports br-tun | grep -qx " + port).returncode != 0
        if missing:
            cloud.exec("network", "systemctl restart neutron-openvswitch-agent")
    healthy_after(cloud)
    assert_verify(cloud)


def test_virt_type_kvm_where_kvm_cannot_run(cloud: SeedLab) -> None:
    conf = "/etc/nova/nova-compute.conf"
    try:
        cloud.check("compute1", f"printf '\\n[libvirt]\\nvirt_type = kvm\\n' >> {conf}")
        code, data = doctor(cloud)
        assert code == 1
        # The hand edit is also drift from the plan: both name it.
        assert failing(data) == {("virt-type-kvm", "compute1"), ("config-drift", "compute1")}
        assert f"virt_type = kvm ({conf}), but KVM cannot run guests here" in causes(data, "virt-type-kvm")
        assert conf in causes(data, "config-drift")
        apply_limit(cloud, "compute1")
    finally:
        if "virt_type = kvm" in cloud.check("compute1", f"cat {conf}"):
            apply_limit(cloud, "compute1")
    healthy_after(cloud)
    assert_verify(cloud)


def test_compute_node_not_mapped_to_a_cell(cloud: SeedLab) -> None:
    discover = 'su -s /bin/sh -c "nova-manage cell_v2 discover_hosts --by-service" nova'
    try:
        cloud.check("controller", "mysql -e \"DELETE FROM nova_api.host_mappings WHERE host = 'compute1'\"")
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("cell-mapping", "compute1")}
        assert "not mapped to any cell" in causes(data, "cell-mapping")
        code, data = doctor(cloud, "--fix")
        assert code == 0, failing(data)
    finally:
        mapped = cloud.check("controller", 'mysql -N -e "SELECT host FROM nova_api.host_mappings"').split()
        if "compute1" not in mapped:
            cloud.check("controller", discover)
    assert_verify(cloud)


def test_managed_file_edited(cloud: SeedLab) -> None:
    path = "/etc/modules-load.d/neutron-br_netfilter.conf"
    try:
        cloud.check("compute1", f"echo '# edited by hand' >> {path}")
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("config-drift", "compute1")}
        assert f"{path} (content)" in causes(data, "config-drift")
        apply_limit(cloud, "compute1")
    finally:
        if "edited by hand" in cloud.check("compute1", f"cat {path}"):
            apply_limit(cloud, "compute1")
    healthy_after(cloud)
    assert_verify(cloud)


def test_unknown_option_in_nova_conf(cloud: SeedLab) -> None:
    path = "/etc/nova/nova.conf"
    try:
        cloud.check("compute1", f"sed -i 's/^\\[DEFAULT\\]$/[DEFAULT]\\nno_such_option = 1/' {path}")
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("config-options", "compute1"), ("config-drift", "compute1")}
        assert "DEFAULT/no_such_option is not part of the sample config" in causes(data, "config-options")
        apply_limit(cloud, "compute1")
    finally:
        if "no_such_option" in cloud.check("compute1", f"cat {path}"):
            apply_limit(cloud, "compute1")
    healthy_after(cloud)
    assert_verify(cloud)


def test_placement_api_stopped(cloud: SeedLab) -> None:
    computes = [h for h in cloud.hosts if h.startswith("compute")]
    try:
        cloud.check("controller", "systemctl stop placement-api")
        code, data = doctor(cloud)
        assert code == 1
        expected = {("service-down", "controller")} | {("compute-connectivity", h) for h in computes}
        assert failing(data) == expected
        assert "placement-api is inactive" in causes(data, "service-down")
        cause = causes(data, "compute-connectivity")
        assert "Placement http://10.10.10.51:8778" in cause and "connection refused" in cause
        code, data = doctor(cloud, "--fix")
        assert code == 0, failing(data)
        assert any(f["description"] == "started placement-api" for f in data["fixes"])
    finally:
        cloud.exec("controller", "systemctl start placement-api")
    assert_verify(cloud)


def test_keystone_password_wrong_on_the_compute_side(cloud: SeedLab) -> None:
    path = "/etc/nova/nova.conf"
    edit = (
        'awk \'/^\\[/{s=$0} s=="[placement]" && /^password = /{print "password = NotTheRightOne2"; next} '
        f"{{print}}' {path} > /tmp/nova.conf.new && cat /tmp/nova.conf.new > {path} && rm /tmp/nova.conf.new"
    )
    try:
        cloud.check("compute1", edit)
        code, data = doctor(cloud)
        assert code == 1
        # A hand edit of a managed file is drift too.
        assert failing(data) == {("compute-connectivity", "compute1"), ("config-drift", "compute1")}
        cause = causes(data, "compute-connectivity")
        assert "Keystone" in cause and "HTTP 401" in cause and "wrong password" in cause
        assert "NotTheRightOne2" not in json.dumps(data)
        apply_limit(cloud, "compute1")
    finally:
        if "NotTheRightOne2" in cloud.check("compute1", f"cat {path}"):
            apply_limit(cloud, "compute1")
    healthy_after(cloud)
    assert_verify(cloud)


def test_neutron_agent_stopped(cloud: SeedLab) -> None:
    try:
        cloud.check("compute1", "systemctl stop neutron-openvswitch-agent")
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("service-down", "compute1")}
        cause = causes(data, "service-down")
        # SIGTERM makes this agent exit non-zero: systemd says failed, with the log's last errors.
        assert cause.startswith(
            ("neutron-openvswitch-agent is inactive", "neutron-openvswitch-agent is failed")
        )
        code, data = doctor(cloud, "--fix")
        assert any(f["description"] == "started neutron-openvswitch-agent" for f in data["fixes"])
    finally:
        cloud.exec("compute1", "systemctl start neutron-openvswitch-agent")
    healthy_after(cloud)
    assert_verify(cloud)


def test_tunnel_flow_deleted(cloud: SeedLab) -> None:
    ofport = cloud.check(
        "network",
        "ovs-vsctl --format=csv --data=bare --no-headings --columns=ofport find Interface "
        "options:remote_ip=10.20.20.53",
    ).strip()
    assert ofport.isdigit(), ofport
    flows = f"ovs-ofctl dump-flows br-tun table=0,in_port={ofport} | grep -c in_port= || true"
    try:
        # The agent re-adds this flow when a peer's agent (re)starts (a tunnel update, e.g. right
        # after the previous test): delete it until it stays deleted.
        for _ in range(6):
            cloud.check("network", f"ovs-ofctl del-flows br-tun table=0,in_port={ofport}")
            time.sleep(5)
            if cloud.check("network", flows).strip() == "0":
                break
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("tunnel", "network")}
        assert "br-tun has no flow for packets arriving from compute1" in causes(data, "tunnel")
        code, data = doctor(cloud, "--fix")
        assert code == 0, failing(data)
    finally:
        if cloud.check("network", flows).strip() == "0":
            cloud.exec("network", "systemctl restart neutron-openvswitch-agent")
    healthy_after(cloud)
    assert_verify(cloud)


FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def test_clock_ahead_on_a_compute_node(cloud: SeedLab) -> None:
    # Lab hosts share this machine's kernel clock (time namespaces do not cover CLOCK_REALTIME), so
    # the skew is faked: libfaketime for every login session on compute1, through pam_env's
    # /etc/environment. Not /etc/ld.so.preload: sshd's seccomp sandbox kills a pre-auth child that
    # runs libfaketime's start-up, and the host could no longer be reached over SSH.
    cloud.check(
        "compute1",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libfaketime >/dev/null",
        timeout=300,
    )
    environment = cloud.layout.host("compute1").root / "etc" / "environment"
    saved = environment.read_bytes() if environment.exists() else None
    try:
        with environment.open("a") as f:
            f.write(f"LD_PRELOAD={FAKETIME_LIB}\nFAKETIME=+120\n")
        ahead = float(cloud.check("compute1", "date +%s.%N")) - time.time()
        assert 100 < ahead < 140, ahead
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("clock-skew", "compute1")}
        cause = causes(data, "clock-skew")
        assert "s from controller's clock (tolerance 30 s)" in cause and "clock +1" in cause, cause
    finally:
        # From this machine, through the host's root: restoring must not depend on the host's sshd.
        if saved is None:
            environment.unlink(missing_ok=True)
        else:
            environment.write_bytes(saved)
    assert abs(float(cloud.check("compute1", "date +%s.%N")) - time.time()) < 5
    healthy_after(cloud)
    assert_verify(cloud)


# Storage (the cloud's storage1: Ceph with one OSD; Cinder on the controller).
STORAGE = "storage1"


def test_ceph_osd_stopped(cloud: SeedLab) -> None:
    try:
        cloud.check(STORAGE, "systemctl stop ceph-osd@0", timeout=120)
        # the monitors mark it down once it said goodbye (or its heartbeats stop): bounded wait
        code, data = poll(
            lambda: doctor(cloud),
            within_s=90,
            every_s=5,
            done=lambda result: ("ceph-osd", STORAGE) in failing(result[1]),
        )
        assert code == 1
        assert {("ceph-osd", STORAGE), ("service-down", STORAGE)} <= failing(data)
        assert "osd.0 is down (on storage1)" in causes(data, "ceph-osd")
        assert "ceph-osd@0 is inactive" in causes(data, "service-down")
        code, data = doctor(cloud, "--fix")
        assert any(f["command"] == "systemctl restart ceph-osd@0" for f in data["fixes"]), data["fixes"]
    finally:
        cloud.exec(STORAGE, "systemctl start ceph-osd@0", timeout=120)
    healthy_after(cloud, 180)
    assert_verify(cloud)


def test_ceph_health_not_ok_names_ceph_s_reason(cloud: SeedLab) -> None:
    try:
        cloud.check(STORAGE, "ceph osd set noout")
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("ceph-health", STORAGE)}
        cause = causes(data, "ceph-health")
        assert "HEALTH_WARN" in cause and "OSDMAP_FLAGS" in cause and "noout" in cause, cause
    finally:
        cloud.check(STORAGE, "ceph osd unset noout")
    healthy_after(cloud)


def test_cinder_volume_stopped(cloud: SeedLab) -> None:
    try:
        cloud.check("controller", "systemctl stop cinder-volume", timeout=120)
        # Cinder calls a service down once it missed its reports for service_down_time (60 s)
        code, data = poll(
            lambda: doctor(cloud),
            within_s=150,
            every_s=10,
            done=lambda result: ("cinder-volume", "controller") in failing(result[1]),
        )
        assert code == 1
        assert failing(data) == {("cinder-volume", "controller"), ("service-down", "controller")}
        assert "cinder-volume: controller@ceph down" in causes(data, "cinder-volume")
        assert "cinder-volume is inactive" in causes(data, "service-down")
        code, data = doctor(cloud, "--fix")
        assert any(f["command"] == "systemctl restart cinder-volume" for f in data["fixes"]), data["fixes"]
    finally:
        cloud.exec("controller", "systemctl start cinder-volume", timeout=120)
    healthy_after(cloud, 180)
    assert_verify(cloud)


def test_libvirt_secret_not_the_cinder_key(cloud: SeedLab) -> None:
    from stackwright.releases.modern.compute import LIBVIRT_SECRET_VALUE, LIBVIRT_SECRET_XML

    uuid = cloud.check("compute1", f"sed -n 's|.*<uuid>\\(.*\\)</uuid>.*|\\1|p' {LIBVIRT_SECRET_XML}").strip()
    assert uuid
    wrong = "AQ" + "D" * 35 + "A=="
    try:
        cloud.check("compute1", f"virsh -q secret-set-value --secret {uuid} --base64 {wrong}")
        code, data = doctor(cloud)
        assert code == 1
        assert failing(data) == {("ceph-secret", "compute1")}
        assert f"libvirt secret {uuid} holds another key than client.cinder's" in causes(data, "ceph-secret")
        code, data = doctor(cloud, "--fix")
        assert code == 0, failing(data)
        assert wrong not in cloud.check("compute1", f"virsh secret-get-value {uuid}")
    finally:
        cloud.exec("compute1", f"virsh -q secret-set-value --secret {uuid} --file {LIBVIRT_SECRET_VALUE}")
    healthy_after(cloud)
