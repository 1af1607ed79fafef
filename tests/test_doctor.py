"""doctor, offline: parsing what hosts print, and each check's decision (no host, no cloud)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from stackwright.checks.doctor import CHECKS
from stackwright.checks.doctor.base import CloudData, Context, HostData, Row, ServiceState
from stackwright.checks.doctor.clock import SKEW_FAIL_S, skew_rows
from stackwright.checks.doctor.connectivity import probe_results
from stackwright.checks.doctor.drift import drifted
from stackwright.checks.doctor.front import front_endpoints
from stackwright.checks.doctor.gather import host_script, parse_sections
from stackwright.checks.doctor.options import findings, validated_files
from stackwright.checks.doctor.runner import run_checks
from stackwright.checks.doctor.services import unit_states
from stackwright.checks.doctor.tunnels import TunnelPort, planned_interface, tunnel_ports
from stackwright.checks.doctor.virt import effective_virt_type
from stackwright.context import HostFacts
from stackwright.engine.facts import sha256
from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.secrets import SECRET_NAMES
from stackwright.steps import File
from tests.conftest import SEED

FACTS = HostFacts(virt_type="qemu", ovs_datapath="netdev", containerized=True)


def seed_plan(passwords: dict[str, str]) -> tuple[object, object]:
    loaded = load_inventory(SEED)
    plan = plan_cluster(loaded, passwords, facts=dict.fromkeys(loaded.model.nodes, FACTS))
    return loaded, plan


def healthy(loaded: object, plan: object) -> dict[str, HostData]:
    """What the three seed hosts print when all is well (built from the plan itself)."""
    from stackwright.inventory import LoadedInventory
    from stackwright.steps import ClusterPlan

    assert isinstance(loaded, LoadedInventory) and isinstance(plan, ClusterPlan)
    inventory = loaded.model
    data: dict[str, HostData] = {}
    for name, host_plan in plan.hosts.items():
        units = []
        for service in host_plan.services():
            if service.running:
                units += [f"Id={service.name}.service", "ActiveState=active", "SubState=running", ""]
        files = [
            f"file={p} {f.mode:o} {f.owner} {f.group} {sha256(f.content)}"
            for p, f in host_plan.files().items()
        ]
        sections: dict[str, list[str]] = {"units": units, "logs": [], "files": files}
        sections["options"] = [f"O {p} validated" for ps in validated_files(host_plan).values() for p in ps]
        sections["firewall"] = ["live=" + "a" * 64, "loaded=" + "a" * 64]
        if name == inventory.controller_name:
            a_year = f"ok {time.time() + 365 * 86400:.0f}"
            sections["tls"] = [f"{address}:{port}={a_year}" for address, port in front_endpoints(inventory)]
        sections["listen"] = [f"listen={line}" for line in SEED_LISTENERS[name]]
        node = inventory.nodes[name]
        if node.data is not None:
            peers = [str(n.data) for o, n in inventory.nodes.items() if o != name and n.data is not None]
            sections["tunnel"] = [
                f"local_ip={node.data}",
                f"addr=br-phy {node.data}/24",
                *[f"brtun=gre-{i}" for i in range(len(peers))],
                *[
                    f"iface=gre-{i},gre,{i + 3},,local_ip={node.data} remote_ip={p}"
                    for i, p in enumerate(peers)
                ],
                *[f"flow0=in_port={i + 3}" for i in range(len(peers))],
                *[f"peer={p} yes" for p in peers],
            ]
        if node.has("compute"):
            sections["units"] += ["Id=libvirtd.socket", "ActiveState=active", "SubState=running", ""]
            sections["libvirt"] = ["sock=present", "connect=ok"]
            sections["instances"] = [
                "stat=/var/lib/nova root root 755",
                "stat=/var/lib/nova/instances nova nova 755",
                "nova_writes=yes",
                "qemu_enters=yes",
            ]
            sections["virt"] = ["virt_type=/etc/nova/nova.conf qemu"]
            sections["tools"] = ["genisoimage=yes", "qemu-img=yes"]
            sections["probe"] = [
                json.dumps({"target": t, "status": "ok", "detail": "x"})
                for t in ("rabbitmq", "keystone", "placement")
            ]
            sections["vnc"] = [
                f"server_listen={node.management}",
                f"server_proxyclient_address={node.management}",
                "address=127.0.0.1",
                f"address={node.management}",
            ]
        if name == inventory.controller_name:
            computes = inventory.names_with("compute")
            sections["cells"] = [f"mapped={c}" for c in computes] + [f"registered={c}" for c in computes]
            sections["dashboard"] = ["novnc=200", "dashboard=200"]
        data[name] = HostData(
            name,
            sections=sections,
            preflight={"kvm": ["no the kernel offers only kvm_pvm"]},
            clock_offset=0.0,
        )
    return data


# `ss -Hltnp` on the seed's nodes as `apply` leaves them (captured on the lab's Epoxy cloud).
SEED_LISTENERS = {
    "controller": [
        *(
            f'10.10.10.51:{p} users:(("uwsgi_python3",pid=14245,fd=3))'
            for p in (5000, 8774, 8775, 8778, 9696)
        ),
        *(
            f'192.168.100.51:{p} users:(("haproxy",pid=15966,fd=9))'
            for p in (5000, 8774, 8778, 9292, 9696, 6080, 443, 80)
        ),
        '10.10.10.51:3306 users:(("mariadbd",pid=13611,fd=25))',
        '10.10.10.51:5672 users:(("beam.smp",pid=13804,fd=41))',
        '10.10.10.51:25672 users:(("beam.smp",pid=13804,fd=25))',
        '10.10.10.51:4369 users:(("epmd",pid=13840,fd=4),("systemd",pid=1,fd=115))',
        '127.0.0.1:4369 users:(("epmd",pid=13840,fd=3),("systemd",pid=1,fd=114))',
        '10.10.10.51:11211 users:(("memcached",pid=14101,fd=26))',
        '10.10.10.51:9292 users:(("glance-api",pid=14479,fd=11))',
        '10.10.10.51:6080 users:(("nova-novncproxy",pid=14823,fd=7))',
        '10.10.10.51:80 users:(("apache2",pid=15827,fd=3))',
        '0.0.0.0:22 users:(("sshd",pid=72,fd=6))',
        '[::]:22 users:(("sshd",pid=72,fd=7))',
    ],
    "network": [
        '0.0.0.0:22 users:(("sshd",pid=72,fd=6))',
        '127.0.0.1:6633 users:(("neutron-openvsw",pid=6407,fd=8))',
        '127.0.0.1:6640 users:(("ovsdb-server",pid=6258,fd=23))',
        '[::]:22 users:(("sshd",pid=72,fd=7))',
    ],
    "compute1": [
        '0.0.0.0:22 users:(("sshd",pid=72,fd=6))',
        '10.10.10.53:5900 users:(("qemu-system-x86",pid=11335,fd=19))',
        '10.10.10.53:5903 users:(("qemu-system-x86",pid=10665,fd=19))',
        '127.0.0.1:6633 users:(("neutron-openvsw",pid=9509,fd=8))',
        '127.0.0.1:6640 users:(("ovsdb-server",pid=9365,fd=23))',
        '[::]:22 users:(("sshd",pid=72,fd=7))',
    ],
}


@pytest.fixture
def cluster(passwords: dict[str, str]) -> tuple[Context, dict[str, HostData]]:
    from stackwright.inventory import LoadedInventory
    from stackwright.steps import ClusterPlan

    loaded, plan = seed_plan(passwords)
    assert isinstance(loaded, LoadedInventory) and isinstance(plan, ClusterPlan)
    data = healthy(loaded, plan)
    cloud = CloudData([ServiceState("nova", "nova-compute", "compute1", True, "up, enabled")])
    return Context(loaded.model, plan, list(loaded.model.nodes), data, cloud), data


def failing(rows: list[Row]) -> set[tuple[str, str]]:
    return {(r.id, r.host) for r in rows if r.status in ("fail", "warn")}


def test_every_check_has_an_id_a_symptom_and_an_explanation() -> None:
    assert set(CHECKS) >= {
        "libvirtd",
        "instances-ownership",
        "service-down",
        "compute-connectivity",
        "clock-skew",
        "tunnel",
        "virt-type-kvm",
        "cell-mapping",
        "config-drift",
        "config-options",
        "compute-tools",
        "firewall",
        "listen-address",
        "tls-front",
    }
    for spec in CHECKS.values():
        assert spec.symptom and spec.explanation, spec.id


def test_healthy_cluster_has_no_failures(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, _ = cluster
    rows = run_checks(ctx)
    assert failing(rows) == set()
    # the storage checks have nothing to look at without storage nodes (test_storage.py has them)
    assert {r.id for r in rows} == set(CHECKS) - {"ceph-health", "ceph-osd", "cinder-volume", "ceph-secret"}


def test_libvirtd_down_quotes_nova_compute(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, data = cluster
    data["compute1"].sections["libvirt"] = [
        "sock=missing",
        "connect=No such file or directory",
        "logged=... Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
    ]
    rows = run_checks(ctx)
    assert failing(rows) == {("libvirtd", "compute1")}
    row = next(r for r in rows if r.failed)
    assert "is missing" in row.cause and "nova-compute logged: " in row.cause
    assert row.action is not None and "systemctl start" in row.action.command


def test_instances_owned_by_root_is_fixed_by_ownership_never_777(
    cluster: tuple[Context, dict[str, HostData]],
) -> None:
    ctx, data = cluster
    data["compute1"].sections["instances"] = [
        "stat=/var/lib/nova root root 755",
        "stat=/var/lib/nova/instances root root 755",
        "nova_writes=no",
        "qemu_enters=yes",
    ]
    rows = run_checks(ctx)
    assert failing(rows) == {("instances-ownership", "compute1")}
    row = next(r for r in rows if r.failed)
    assert "owned by root:root, not nova:nova" in row.cause
    assert row.action is not None and "chown nova:nova /var/lib/nova/instances" in row.action.command
    assert "777" not in row.action.command and "chmod 777" not in row.fix.replace("never chmod 777", "")


def test_stopped_unit_reports_its_journal_and_a_start_fix(
    cluster: tuple[Context, dict[str, HostData]],
) -> None:
    ctx, data = cluster
    units = data["controller"].sections["units"]
    i = units.index("Id=rabbitmq-server.service")
    units[i + 1 : i + 3] = ["ActiveState=inactive", "SubState=dead"]
    data["controller"].sections["logs"] = ["rabbitmq-server journal Something broke badly"]
    rows = run_checks(ctx)
    assert failing(rows) == {("service-down", "controller")}
    row = next(r for r in rows if r.failed)
    assert row.cause.startswith("rabbitmq-server is inactive (dead)") and "Something broke badly" in row.cause
    assert row.action is not None and row.action.command == "systemctl start rabbitmq-server"


def test_condition_skipped_unit_is_not_down() -> None:
    data = HostData(
        "h",
        {
            "units": [
                "Id=chrony.service",
                "ActiveState=inactive",
                "SubState=dead",
                "ConditionResult=no",
                "ConditionTimestamp=Tue 2026-11-24 10:00:00 UTC",
                "",
                "Id=nova-api.service",
                "ActiveState=failed",
                "SubState=failed",
                "ConditionResult=yes",
            ]
        },
    )
    assert unit_states(data) == {"chrony": "skipped", "nova-api": "failed (failed)"}


def test_service_down_in_api_while_running(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, data = cluster
    assert ctx.cloud is not None
    ctx.cloud.services = [ServiceState("agent", "Open vSwitch agent", "network", False, "dead")]
    data["network"].sections["logs"] = ["neutron-openvswitch-agent log 2026 ERROR x: AMQP unreachable"]
    rows = run_checks(ctx)
    assert failing(rows) == {("service-down", "network")}
    row = next(r for r in rows if r.failed)
    assert "although neutron-openvswitch-agent runs" in row.cause and "AMQP unreachable" in row.cause


@pytest.mark.parametrize(
    ("status", "words"),
    [("refused", "nothing listens"), ("auth", "wrong password"), ("unreachable", "no answer")],
)
def test_connectivity_tells_refused_from_wrong_password(
    cluster: tuple[Context, dict[str, HostData]], status: str, words: str
) -> None:
    ctx, data = cluster
    data["compute1"].sections["probe"][0] = json.dumps(
        {"target": "rabbitmq", "status": status, "detail": "10.10.10.51:5672"}
    )
    rows = run_checks(ctx)
    assert failing(rows) == {("compute-connectivity", "compute1")}
    row = next(r for r in rows if r.failed)
    assert row.cause.startswith("RabbitMQ 10.10.10.51:5672") and words in row.cause


def test_probe_results_ignore_noise() -> None:
    lines = ["Traceback?", '{"target": "keystone", "status": "auth", "detail": "HTTP 401"}']
    assert probe_results(lines) == {"keystone": ("auth", "HTTP 401")}


def test_clock_skew_arithmetic() -> None:
    rows = skew_rows(
        {"controller": 100.0, "compute1": 100.5, "network": 100.0 + SKEW_FAIL_S + 1}, "controller"
    )
    by_host = {r.host: r for r in rows}
    assert by_host["compute1"].status == "ok"
    assert by_host["network"].status == "fail" and "+31.0 s from controller" in by_host["network"].cause
    assert skew_rows({"controller": -3.0, "compute1": 0.0}, "controller")[0].status == "warn"
    assert skew_rows({"controller": None, "compute1": 0.0}, "controller")[0].status == "skip"


def test_clock_skew_in_the_cluster(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, data = cluster
    data["compute1"].clock_offset = -45.0
    assert failing(run_checks(ctx)) == {("clock-skew", "compute1")}


def test_data_address_removed(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, data = cluster
    tunnel = data["compute1"].sections["tunnel"]
    tunnel.remove("addr=br-phy 10.20.20.53/24")
    data["network"].sections["tunnel"] = [
        line.replace("peer=10.20.20.53 yes", "peer=10.20.20.53 no")
        for line in data["network"].sections["tunnel"]
    ]
    rows = run_checks(ctx)
    assert failing(rows) == {("tunnel", "compute1"), ("tunnel", "network")}
    mine = next(r for r in rows if r.failed and r.host == "compute1")
    assert "local_ip 10.20.20.53 of the OVS agent is not on this host (expected on br-phy)" in mine.cause
    assert mine.action is not None and mine.action.command == "networkctl reconfigure br-phy"
    theirs = next(r for r in rows if r.failed and r.host == "network")
    assert "compute1's data address 10.20.20.53 does not answer" in theirs.cause


def test_tunnel_port_missing(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, data = cluster
    data["network"].sections["tunnel"] = [
        line for line in data["network"].sections["tunnel"] if "remote_ip=10.20.20.53" not in line
    ]
    rows = run_checks(ctx)
    assert failing(rows) == {("tunnel", "network")}
    row = next(r for r in rows if r.failed)
    assert "no gre port on br-tun towards compute1 (10.20.20.53)" in row.cause
    assert row.action is not None and "restart neutron-openvswitch-agent" in row.action.command


def test_tunnel_ports_parse_ovs_csv() -> None:
    data = HostData(
        "n",
        {
            "tunnel": [
                "brtun=gre-0a141435",
                "brtun=gre-0a141436",
                "brtun=patch-int",
                "iface=gre-0a141435,gre,5,,df_default=true egress_pkt_mark=0 in_key=flow "
                "local_ip=10.20.20.52 out_key=flow remote_ip=10.20.20.53",
                'iface=gre-0a141436,gre,-1,"could not add network device gre-0a141436 to ofproto '
                '(File exists)",'
                "remote_ip=10.20.20.54",
                "iface=patch-int,patch,1,,peer=patch-tun",
                "iface=gre-x,gre,7,,remote_ip=10.9.9.9",
                "flow0=in_port=1",
                "flow0=in_port=5",
            ]
        },
    )
    ports = tunnel_ports(data)
    assert set(ports) == {"10.20.20.53", "10.20.20.54"}
    assert ports["10.20.20.53"] == TunnelPort("gre-0a141435", "gre", "5", "", True)
    assert ports["10.20.20.54"].ofport == "-1" and "File exists" in ports["10.20.20.54"].error


def test_tunnel_port_without_flows_or_broken(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, data = cluster
    tunnel = data["network"].sections["tunnel"]
    port = next(line for line in tunnel if line.startswith("iface=") and "remote_ip=10.20.20.53" in line)
    ofport = port.split(",")[2]
    tunnel.remove(f"flow0=in_port={ofport}")
    rows = run_checks(ctx)
    assert failing(rows) == {("tunnel", "network")}
    row = next(r for r in rows if r.failed)
    assert "br-tun has no flow for packets arriving from compute1" in row.cause
    assert row.action is not None and "restart neutron-openvswitch-agent" in row.action.command
    tunnel[tunnel.index(port)] = port.replace(f",{ofport},,", ',-1,"could not open",')
    rows = run_checks(ctx)
    assert "exists but OVS could not create it: could not open" in next(r for r in rows if r.failed).cause


def test_planned_interface_for_the_data_address(passwords: dict[str, str]) -> None:
    _, plan = seed_plan(passwords)
    from stackwright.steps import ClusterPlan

    assert isinstance(plan, ClusterPlan)
    assert planned_interface(plan.hosts["compute1"], "10.20.20.53") == "br-phy"
    assert planned_interface(plan.hosts["compute1"], "10.20.20.99") is None


def test_virt_type_kvm_where_kvm_cannot_run(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, data = cluster
    data["compute1"].sections["virt"].append("virt_type=/etc/nova/nova-compute.conf kvm")
    rows = run_checks(ctx)
    assert failing(rows) == {("virt-type-kvm", "compute1")}
    row = next(r for r in rows if r.failed)
    assert "virt_type = kvm (/etc/nova/nova-compute.conf), but KVM cannot run guests here: " in row.cause
    assert "kvm_pvm" in row.cause and "stackwright apply" in row.fix


def test_effective_virt_type_follows_nova_compute_reading_order() -> None:
    assert effective_virt_type([]) == ("kvm", "nova's default (no virt_type set)")
    assert effective_virt_type(["/etc/nova/nova.conf qemu"])[0] == "qemu"
    assert effective_virt_type(["/a qemu", "/b kvm"]) == ("kvm", "/b")


def test_compute_not_mapped_to_a_cell(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, data = cluster
    data["controller"].sections["cells"].remove("mapped=compute1")
    rows = run_checks(ctx)
    assert failing(rows) == {("cell-mapping", "compute1")}
    row = next(r for r in rows if r.failed)
    assert "not mapped to any cell" in row.cause
    assert row.action is not None and row.action.host == "controller"
    assert "discover_hosts --by-service" in row.action.command


def test_drift_names_content_and_owner() -> None:
    planned = {
        "/etc/a": File("/etc/a", "x\n"),
        "/etc/b": File("/etc/b", "y\n", mode=0o640, group="nova"),
        "/etc/c": File("/etc/c", "z\n"),
    }
    lines = [
        f"/etc/a 644 root root {sha256('x')}",
        f"/etc/b 644 root root {sha256('y' + chr(10))}",
        "/etc/c MISSING",
    ]
    assert drifted(planned, lines) == [
        "/etc/a (content)",
        "/etc/b (644 root:root, not 640 root:nova)",
        "/etc/c (missing)",
    ]


def test_drift_in_the_cluster(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, data = cluster
    files = data["compute1"].sections["files"]
    i = next(i for i, line in enumerate(files) if line.startswith("file=/etc/nova/nova.conf "))
    files[i] = files[i][:-64] + "0" * 64
    rows = run_checks(ctx)
    assert failing(rows) == {("config-drift", "compute1")}
    assert "/etc/nova/nova.conf (content)" in next(r for r in rows if r.failed).cause


def test_unknown_option_fails_validation(cluster: tuple[Context, dict[str, HostData]]) -> None:
    ctx, data = cluster
    data["compute1"].sections["options"].append(
        "E /etc/nova/nova.conf DEFAULT/no_such_option is not part of the sample config"
    )
    rows = run_checks(ctx)
    assert failing(rows) == {("config-options", "compute1")}
    assert (
        "DEFAULT/no_such_option is not part of the sample config" in next(r for r in rows if r.failed).cause
    )


def test_options_findings_parse() -> None:
    found = findings(["O /etc/x.conf validated", "E /etc/x.conf a/b not found", "noise", "W /etc/y dep"])
    assert found == {"/etc/x.conf": {"O": ["validated"], "E": ["a/b not found"]}, "/etc/y": {"W": ["dep"]}}


def test_option_data_gets_what_services_register_at_run_time(tmp_path: Path) -> None:
    """Cinder's option list lacks the password plugin's options of [nova] (loaded with its
    auth_type) and auth_type of [service_user]; its volume drivers' options sit under
    backend_defaults and come back under each enabled backend's own group."""
    from stackwright.checks.doctor.optcheck import dynamic_backends, keystoneauth_groups

    conf = tmp_path / "cinder.conf"
    conf.write_text(
        "[DEFAULT]\nenabled_backends = ceph\n[ceph]\nrbd_pool = volumes\n"
        "[nova]\nauth_type = password\nusername = cinder\n[service_user]\nauth_type = password\n"
        "[glance]\nusername = cinder\n"
    )
    data = {
        "options": {
            "nova": {"opts": [{"name": "auth_type", "deprecated_opts": []}]},
            "service_user": {"opts": [{"name": "auth-url", "deprecated_opts": []}]},
            "glance": {"opts": [{"name": "region_name", "deprecated_opts": []}]},
            "backend_defaults": {"opts": [{"name": "rbd_pool", "deprecated_opts": []}]},
        }
    }
    keystoneauth_groups(data, str(conf))
    dynamic_backends(data, str(conf), "backend_defaults")
    names = {group: [o["name"] for o in value["opts"]] for group, value in data["options"].items()}
    assert {"username", "password", "auth_url", "auth_section"} <= set(names["nova"])
    assert names["nova"].count("auth_type") == 1
    assert "auth_type" in names["service_user"] and "auth_url" not in names["service_user"]  # has auth-url
    assert names["glance"] == ["region_name"]  # no auth_type there: the service ignores username
    assert names["ceph"] == ["rbd_pool"]


def test_a_files_findings_are_kept_for_the_same_bytes_data_and_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The host keeps each file's lines: unchanged, they are printed again without validating
    (oslo.config is not even imported — this machine has none); another byte, option data or
    script version is another result, and a file keeps only its newest one."""
    import json

    from stackwright.checks.doctor import optcheck

    monkeypatch.setattr(optcheck, "RESULTS", str(tmp_path / "results"))
    conf = tmp_path / "nova.conf"
    conf.write_text("[DEFAULT]\ndebug = true\n")
    data = optcheck.opt_data_path("nova", optcheck.versions_key())
    prefix, name = optcheck.result_name(str(conf), conf.read_bytes(), data, "script1")
    lines = f"O {conf} validated\nW {conf} DEFAULT/x is deprecated\n"
    optcheck.store_result(prefix, name, lines)
    monkeypatch.setattr("sys.argv", ["-", json.dumps({"nova": [str(conf)]}), "script1"])
    optcheck.main()
    assert capsys.readouterr().out == lines
    other_data = optcheck.opt_data_path("nova", "other")
    for other in (
        optcheck.result_name(str(conf), b"[DEFAULT]\ndebug = false\n", data, "script1"),
        optcheck.result_name(str(conf), conf.read_bytes(), other_data, "script1"),
        optcheck.result_name(str(conf), conf.read_bytes(), data, "script2"),
    ):
        assert other[0] == prefix and other[1] != name
    optcheck.store_result(*optcheck.result_name(str(conf), b"changed", data, "script1"), "O x validated\n")
    assert len(list((tmp_path / "results").iterdir())) == 1


def test_sections_parse() -> None:
    assert parse_sections("noise\n@@sw:a\nx=1\n@@sw:b\n@@sw:a\ny=2\n") == {"a": ["x=1", "y=2"], "b": []}


def test_host_scripts_are_valid_sh_and_hold_no_secret(passwords: dict[str, str], tmp_path: Path) -> None:
    import subprocess

    loaded, plan = seed_plan(passwords)
    from stackwright.inventory import LoadedInventory
    from stackwright.steps import ClusterPlan

    assert isinstance(loaded, LoadedInventory) and isinstance(plan, ClusterPlan)
    for name, host_plan in plan.hosts.items():
        script = host_script(loaded.model, name, host_plan)
        for secret in passwords.values():
            assert secret not in script
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        assert subprocess.run(["sh", "-n", str(path)], check=False).returncode == 0, name


def test_probe_and_optcheck_compile() -> None:
    import py_compile
    from importlib import resources

    for name in ("probe.py", "optcheck.py"):
        path = resources.files("stackwright.checks.doctor").joinpath(name)
        py_compile.compile(str(path), doraise=True)


def test_a_host_that_does_not_answer_is_a_failing_row(
    passwords: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stackwright.checks.doctor import runner
    from stackwright.inventory import load_inventory
    from stackwright.yamlsource import UserError

    def refuse(inventory: object, names: list[str], trust: object) -> dict[str, object]:
        raise UserError(f"cannot reach {names[0]} over SSH")

    monkeypatch.setattr(runner, "connect", refuse)
    monkeypatch.setattr(runner, "gather_cloud", lambda *_: CloudData(error="not asked"))
    loaded = load_inventory(SEED)
    report, remotes = runner.run_doctor(loaded, passwords, release="zed", hosts=["compute1"])
    assert remotes == {}
    assert not report.ok
    reach = [r for r in report.rows if r.id == "reach"]
    assert [(r.host, r.status) for r in reach] == [("compute1", "fail")]
    assert "cannot reach compute1 over SSH" in reach[0].cause


def test_missing_genisoimage_names_config_drives_and_the_package(
    cluster: tuple[Context, dict[str, HostData]],
) -> None:
    ctx, data = cluster
    data["compute1"].sections["tools"] = ["genisoimage=no", "qemu-img=yes"]
    rows = [r for r in run_checks(ctx) if r.id == "compute-tools" and r.failed]
    assert len(rows) == 1 and rows[0].host == "compute1"
    assert "genisoimage (for config drives" in rows[0].cause
    assert "apt-get install --no-install-recommends genisoimage" in rows[0].fix


def test_compute_role_installs_every_tool_doctor_looks_for() -> None:
    from stackwright.releases.modern.compute import COMPUTE_TOOLS

    loaded = load_inventory(SEED)
    plan = plan_cluster(loaded, {n: "x" * 16 for n in SECRET_NAMES})
    packages = plan.hosts["compute1"].packages()
    assert {package for package, _ in COMPUTE_TOOLS.values()} <= set(packages)


def test_console_proxy_dashboard_and_vnc_address_name_their_cause(
    cluster: tuple[Context, dict[str, HostData]],
) -> None:
    ctx, data = cluster
    data["controller"].sections["dashboard"] = [
        "novnc=none [Errno 111] Connection refused",
        "dashboard=500",
        "error=[wsgi:error] ImproperlyConfigured: SECRET_KEY must not be empty",
    ]
    data["compute1"].sections["vnc"] = [
        "server_listen=10.10.10.53",
        "server_proxyclient_address=10.10.10.52",
        "address=10.10.10.53",
    ]
    rows = {(r.id, r.host): r for r in run_checks(ctx)}
    proxy = rows[("console-proxy", "controller")]
    assert proxy.failed and "Connection refused" in proxy.cause
    assert proxy.action is not None and proxy.action.command == "systemctl restart nova-novncproxy"
    dashboard = rows[("dashboard", "controller")]
    assert dashboard.failed and "answers 500" in dashboard.cause
    assert "SECRET_KEY must not be empty" in dashboard.cause
    vnc = rows[("vnc-address", "compute1")]
    assert vnc.failed and "10.10.10.52 is not an address of compute1" in vnc.cause


def test_firewall_missing_or_changed_by_hand_is_named_and_reloaded(
    cluster: tuple[Context, dict[str, HostData]],
) -> None:
    ctx, data = cluster
    data["network"].sections["firewall"] = ["live=missing", "loaded=" + "a" * 64]
    data["compute1"].sections["firewall"] = ["live=" + "b" * 64, "loaded=" + "a" * 64]
    rows = {(r.id, r.host): r for r in run_checks(ctx)}
    missing = rows[("firewall", "network")]
    assert missing.failed and "not loaded: every port of network is open" in missing.cause
    changed = rows[("firewall", "compute1")]
    assert changed.failed and "changed since they were loaded" in changed.cause
    for row in (missing, changed):
        assert row.action is not None and row.action.command == "systemctl restart stackwright-firewall"
        assert row.action.host == row.host
    assert not rows[("firewall", "controller")].failed


def test_no_firewall_check_where_the_inventory_disables_it(
    cluster: tuple[Context, dict[str, HostData]],
) -> None:
    ctx, data = cluster
    data["network"].sections["firewall"] = ["live=missing"]
    off = ctx.inventory.model_copy(
        update={"firewall": ctx.inventory.firewall.model_copy(update={"enabled": False})}
    )
    rows = run_checks(Context(off, ctx.plan, ctx.hosts, data, ctx.cloud))
    assert not [r for r in rows if r.id == "firewall"]
    assert "@@sw:firewall" not in host_script(off, "network", ctx.plan.hosts["network"])
    assert "@@sw:firewall" in host_script(ctx.inventory, "network", ctx.plan.hosts["network"])


def test_the_tls_front_names_a_closed_port_a_bad_or_expiring_certificate(
    cluster: tuple[Context, dict[str, HostData]],
) -> None:
    ctx, data = cluster
    soon = f"ok {time.time() + 10 * 86400:.0f}"
    data["controller"].sections["tls"] = [
        "192.168.100.51:5000=none [Errno 111] Connection refused",
        "192.168.100.51:8774=bad certificate has expired",
        f"192.168.100.51:8778={soon}",
    ]
    by_port = {r.cause.split(" ", 1)[0]: r for r in run_checks(ctx) if r.id == "tls-front"}
    closed = by_port["https://192.168.100.51:5000:"]
    assert closed.failed and "Connection refused" in closed.cause
    assert closed.action is not None and closed.action.command == "systemctl restart haproxy"
    assert "does not verify (certificate has expired)" in by_port["https://192.168.100.51:8774:"].cause
    assert "expires in 10 days" in by_port["https://192.168.100.51:8778:"].cause
    assert "not probed" in by_port["https://192.168.100.51:9292:"].cause
    script = host_script(ctx.inventory, "controller", ctx.plan.hosts["controller"])
    assert "@@sw:tls" in script and "192.168.100.51" in script
    off = ctx.inventory.model_copy(update={"tls": ctx.inventory.tls.model_copy(update={"enabled": False})})
    assert not [
        r for r in run_checks(Context(off, ctx.plan, ctx.hosts, data, ctx.cloud)) if r.id == "tls-front"
    ]


def test_a_listener_where_the_plan_does_not_put_it_is_named(
    cluster: tuple[Context, dict[str, HostData]],
) -> None:
    ctx, data = cluster
    assert [r.cause for r in run_checks(ctx) if r.id == "listen-address" and r.host == "compute1"] == [
        "6 TCP listeners, each where the plan puts it"
    ]
    data["compute1"].sections["listen"] += [
        'listen=0.0.0.0:16509 users:(("systemd",pid=1,fd=60))',  # Debian's libvirtd-tcp.socket
        'listen=10.20.20.53:16514 users:(("libvirtd",pid=9,fd=6))',  # the data network
        'listen=127.0.0.1:8000 users:(("python3",pid=7,fd=3))',  # loopback: nobody else's business
    ]
    data["controller"].sections["listen"] += [
        'listen=192.168.100.51:3306 users:(("mariadbd",pid=1,fd=25))',
        'listen=[::]:11211 users:(("memcached",pid=2,fd=26))',
    ]
    rows = {r.host: r for r in run_checks(ctx) if r.id == "listen-address"}
    assert rows["compute1"].failed and rows["controller"].failed and not rows["network"].failed
    assert rows["compute1"].cause == (
        "listening where the plan does not put it: libvirtd on 10.20.20.53:16514, "
        "systemd on every address, port 16509"
    )
    assert "mariadbd on 192.168.100.51:3306" in rows["controller"].cause
    assert "memcached on every address, port 11211" in rows["controller"].cause
    # not probed: nothing said
    del data["network"].sections["listen"]
    assert "network" not in {r.host for r in run_checks(ctx) if r.id == "listen-address"}


def test_listeners_follow_the_tls_front(tmp_path: Path) -> None:
    from stackwright.context import host_contexts
    from stackwright.firewall import listeners

    def allowed(top: str, port: int) -> set[str] | None:
        path = tmp_path / f"{len(top)}.yaml"
        path.write_text(top + SEED.read_text())
        host = host_contexts(load_inventory(path).model)["controller"]
        found = [listener.addresses for listener in listeners(host) if port in listener.ports]
        return None if None in found else {a for addresses in found if addresses for a in addresses}

    assert allowed("", 5000) == {"10.10.10.51", "192.168.100.51"}  # the API, the front
    assert allowed("tls: {enabled: false}\n", 5000) is None  # the APIs on every address
    assert allowed("", 3306) == {"10.10.10.51"}
    assert allowed("", 25672) == {"10.10.10.51"}
    assert allowed("", 22) is None
    # an all-in-one node: the metadata API and libvirtd's TLS listener with nobody to open them to
    aio = host_contexts(load_inventory(SEED.with_name("aio.yaml")).model)["aio"]
    mine = {port: listener.addresses for listener in listeners(aio) for port in listener.ports}
    assert mine[8775] == mine[16514] == frozenset({str(aio.node.management)})
