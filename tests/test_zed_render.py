"""Zed role content: the key facts of the seed's and the all-in-one's plans (offline)."""

from __future__ import annotations

import configparser
import ipaddress
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from stackwright.context import HostFacts
from stackwright.engine.converge import split_preparation
from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.releases.modern.nftables import RULESET
from stackwright.releases.modern.nova_ssh import NOVA_KNOWN_HOSTS
from stackwright.secrets import SECRET_NAMES
from stackwright.steps import (
    ClusterPlan,
    Command,
    File,
    HostPlan,
    NetworkConfig,
    OvsBridge,
    Packages,
    Service,
    Sysctl,
    Wait,
)
from tests.conftest import APT_SETUP

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed.yaml"
AIO = ROOT / "examples" / "aio.yaml"
PASSWORDS = {name: f"Pw{index:02d}{name.replace('_', '')}" for index, name in enumerate(SECRET_NAMES)}
SERVICE_GROUPS = {"keystone", "glance", "placement", "nova", "neutron", "horizon"}

NOVA_CONF = "/etc/nova/nova.conf"
NEUTRON_CONF = "/etc/neutron/neutron.conf"
OVS_AGENT = "/etc/neutron/plugins/ml2/openvswitch_agent.ini"
ML2_CONF = "/etc/neutron/plugins/ml2/ml2_conf.ini"


def plan(path: Path = SEED, **facts: HostFacts) -> ClusterPlan:
    return plan_cluster(load_inventory(path), PASSWORDS, facts=facts)


def lab(path: Path = SEED) -> ClusterPlan:
    """The plan as preflight resolves it on lab hosts: containers without an OVS datapath."""
    names = load_inventory(path).model.nodes
    facts = HostFacts(virt_type="qemu", ovs_datapath="netdev", containerized=True)
    return plan_cluster(load_inventory(path), PASSWORDS, facts=dict.fromkeys(names, facts))


def write_inventory(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


def ini(host: HostPlan, path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.read_string(host.files()[path].content)
    return parser


def all_plans() -> list[tuple[str, ClusterPlan]]:
    return [("seed", plan(SEED)), ("seed-lab", lab(SEED)), ("aio", plan(AIO)), ("aio-lab", lab(AIO))]


def all_steps(cluster: ClusterPlan) -> list[object]:
    steps: list[object] = [s for host in cluster.hosts.values() for s in host.steps]
    steps += [s for _, _, after in cluster.after for s in after]
    return steps


def all_files(cluster: ClusterPlan) -> list[File]:
    return [f for host in cluster.hosts.values() for f in host.files().values()]


# --- the seed's key facts ------------------------------------------------------------------


def test_local_ip_is_each_nodes_data_address() -> None:
    cluster = plan()
    assert ini(cluster.hosts["network"], OVS_AGENT)["ovs"]["local_ip"] == "10.20.20.52"
    assert ini(cluster.hosts["compute1"], OVS_AGENT)["ovs"]["local_ip"] == "10.20.20.53"
    assert OVS_AGENT not in cluster.hosts["controller"].files()


@pytest.mark.parametrize("path", [NOVA_CONF, NEUTRON_CONF])
def test_transport_url_is_the_controllers_management_address(path: str) -> None:
    cluster = plan()
    hosts = [h for h in cluster.hosts.values() if path in h.files()]
    assert {h.host for h in hosts} >= {"controller", "compute1"}
    for host in hosts:
        url = urlsplit(ini(host, path)["DEFAULT"]["transport_url"])
        assert (url.scheme, url.hostname, url.port) == ("rabbit", "10.10.10.51", 5672), host.host
        assert (url.username, url.password) == ("openstack", PASSWORDS["rabbitmq_password"])


def test_vnc_proxyclient_address_is_the_nodes_management_address() -> None:
    cluster = plan()
    for name, address in (("controller", "10.10.10.51"), ("compute1", "10.10.10.53")):
        vnc = ini(cluster.hosts[name], NOVA_CONF)["vnc"]
        assert vnc["server_proxyclient_address"] == address
        assert vnc["server_listen"] == address
    compute_vnc = ini(cluster.hosts["compute1"], NOVA_CONF)["vnc"]
    assert compute_vnc["novncproxy_base_url"] == "https://192.168.100.51:6080/vnc_lite.html"


def test_virt_type_comes_from_the_inventory(tmp_path: Path) -> None:
    text = SEED.read_text().replace("virt_type: auto", "virt_type: qemu")
    cluster = plan(write_inventory(tmp_path, text))
    assert ini(cluster.hosts["compute1"], NOVA_CONF)["libvirt"]["virt_type"] == "qemu"
    # Debian's nova-compute.conf (read after nova.conf) must not put kvm back.
    compute_conf = ini(cluster.hosts["compute1"], "/etc/nova/nova-compute.conf")
    assert not any("virt_type" in compute_conf[section] for section in compute_conf)


def test_virt_type_follows_preflight_and_per_node_choice(tmp_path: Path) -> None:
    assert ini(plan().hosts["compute1"], NOVA_CONF)["libvirt"]["virt_type"] == "kvm"  # auto, offline
    assert ini(lab().hosts["compute1"], NOVA_CONF)["libvirt"]["virt_type"] == "qemu"
    text = SEED.read_text().replace("data: 10.20.20.53", "data: 10.20.20.53\n    virt_type: qemu")
    cluster = plan(write_inventory(tmp_path, text))
    assert ini(cluster.hosts["compute1"], NOVA_CONF)["libvirt"]["virt_type"] == "qemu"


def test_controller_nova_conf_has_databases_and_metadata_proxy() -> None:
    nova = ini(plan().hosts["controller"], NOVA_CONF)
    api_db = urlsplit(nova["api_database"]["connection"])
    db = urlsplit(nova["database"]["connection"])
    assert (api_db.hostname, api_db.path, api_db.password) == (
        "10.10.10.51",
        "/nova_api",
        PASSWORDS["nova_db_password"],
    )
    assert (db.hostname, db.path) == ("10.10.10.51", "/nova")
    assert nova["neutron"]["service_metadata_proxy"] == "true"
    assert "libvirt" not in nova


def test_compute_nova_conf_holds_no_database_password() -> None:
    content = plan().hosts["compute1"].files()[NOVA_CONF].content
    assert PASSWORDS["nova_db_password"] not in content
    assert "[api_database]" not in content and "[database]" not in content


def test_metadata_secret_is_shared_by_nova_and_the_metadata_agent() -> None:
    cluster = plan()
    nova = ini(cluster.hosts["controller"], NOVA_CONF)["neutron"]
    agent = ini(cluster.hosts["network"], "/etc/neutron/metadata_agent.ini")["DEFAULT"]
    assert nova["metadata_proxy_shared_secret"] == agent["metadata_proxy_shared_secret"]
    assert agent["metadata_proxy_shared_secret"] == PASSWORDS["metadata_secret"]
    assert agent["nova_metadata_host"] == "10.10.10.51"


def test_nova_and_neutron_agree_on_each_hosts_name() -> None:
    compute = plan().hosts["compute1"]
    assert ini(compute, NOVA_CONF)["DEFAULT"]["host"] == "compute1"
    assert ini(compute, NEUTRON_CONF)["DEFAULT"]["host"] == "compute1"


@pytest.mark.parametrize(("path", "kind"), [(SEED, "gre"), (AIO, "vxlan")])
def test_ml2_and_agent_tunnels_follow_tenant_network_type(path: Path, kind: str) -> None:
    cluster = plan(path)
    controller = next(h for h in cluster.hosts.values() if "controller" in h.roles)
    ml2 = ini(controller, ML2_CONF)["ml2"]
    assert ml2["tenant_network_types"] == kind
    assert ml2["type_drivers"] == "flat,vlan,gre,vxlan"
    assert ml2["mechanism_drivers"] == "openvswitch"
    assert ini(controller, ML2_CONF)["ml2_type_flat"]["flat_networks"] == "external"
    for host in cluster.hosts.values():
        if OVS_AGENT in host.files():
            assert ini(host, OVS_AGENT)["agent"]["tunnel_types"] == kind


def test_tenant_network_type_vxlan_switches_the_seed(tmp_path: Path) -> None:
    text = SEED.read_text().replace("tenant_network_type: gre", "tenant_network_type: vxlan")
    cluster = plan(write_inventory(tmp_path, text))
    assert ini(cluster.hosts["controller"], ML2_CONF)["ml2"]["tenant_network_types"] == "vxlan"
    assert ini(cluster.hosts["compute1"], OVS_AGENT)["agent"]["tunnel_types"] == "vxlan"


def test_neutron_server_finds_its_ml2_file_like_debians_init_script() -> None:
    # /etc/init.d/neutron-api greps core_plugin with this pattern to pick ml2_conf.ini.
    content = plan().hosts["controller"].files()[NEUTRON_CONF].content
    matches = re.findall(r"^[ \t]*core_plugin[ \t]*=[ \t]*([._a-zA-Z0-9]*)$", content, re.MULTILINE)
    assert matches == ["ml2"]


def test_agents_bridge_mappings_only_on_the_network_node() -> None:
    cluster = plan()
    assert ini(cluster.hosts["network"], OVS_AGENT)["ovs"]["bridge_mappings"] == "external:br-ex"
    assert "bridge_mappings" not in ini(cluster.hosts["compute1"], OVS_AGENT)["ovs"]
    for name in ("network", "compute1"):
        assert ini(cluster.hosts[name], OVS_AGENT)["securitygroup"]["firewall_driver"] == "iptables_hybrid"


# --- secrets, guards, restarts ------------------------------------------------------------


@pytest.mark.parametrize(("label", "cluster"), all_plans())
def test_every_file_holding_a_password_is_secret_and_closed(label: str, cluster: ClusterPlan) -> None:
    holders = [f for f in all_files(cluster) if any(v in f.content for v in PASSWORDS.values())]
    assert holders
    for f in holders:
        assert f.secret, f.path
        assert f.owner == "root", f.path
        if f.group == "root":
            assert f.mode == 0o600, f.path
        else:
            assert (f.mode, f.group in SERVICE_GROUPS) == (0o640, True), f.path
    for f in all_files(cluster):
        assert f.mode & 0o007 == 0 or not f.secret, f.path


def test_service_config_files_are_readable_by_their_service_group() -> None:
    files = plan(AIO).hosts["aio"].files()
    expected = {
        NOVA_CONF: "nova",
        NEUTRON_CONF: "neutron",
        "/etc/keystone/keystone.conf": "keystone",
        "/etc/glance/glance-api.conf": "glance",
        "/etc/placement/placement.conf": "placement",
        "/etc/neutron/metadata_agent.ini": "neutron",
        "/etc/pki/qemu/server-key.pem": "libvirt-qemu",  # QEMU reads its own key, as libvirt-qemu
        "/etc/pki/qemu/client-key.pem": "libvirt-qemu",
    }
    for path, group in expected.items():
        assert (files[path].mode, files[path].owner, files[path].group, files[path].secret) == (
            0o640,
            "root",
            group,
            True,
        ), path


@pytest.mark.parametrize(("label", "cluster"), all_plans())
def test_no_password_in_any_argv_or_shell_test(label: str, cluster: ClusterPlan) -> None:
    for step in all_steps(cluster):
        if isinstance(step, Command):
            shell = [*step.argv, step.unless or "", step.description]
        elif isinstance(step, Wait):
            shell = [step.check]
        else:
            continue
        for text in shell:
            for name, value in PASSWORDS.items():
                assert value not in text, f"{name} in {step}"


def test_passwords_reach_commands_only_through_env_or_root_files() -> None:
    steps = all_steps(plan())
    catalog = next(s for s in steps if isinstance(s, Command) and "service users" in s.description)
    assert dict(catalog.env)["OS_PASSWORD"] == PASSWORDS["admin_password"]
    bootstrap = plan().hosts["controller"].files()["/etc/stackwright/keystone-bootstrap.env"]
    assert f"OS_BOOTSTRAP_PASSWORD={PASSWORDS['admin_password']}\n" in bootstrap.content
    assert (bootstrap.mode, bootstrap.secret) == (0o600, True)


@pytest.mark.parametrize(("label", "cluster"), all_plans())
def test_every_command_is_guarded(label: str, cluster: ClusterPlan) -> None:
    commands = [s for s in all_steps(cluster) if isinstance(s, Command)]
    assert len(commands) > 10
    for command in commands:
        assert command.unless or command.once_marker, command.description
        if command.once_marker:
            assert command.once_marker.startswith("/var/lib/stackwright/markers/")


@pytest.mark.parametrize(("label", "cluster"), all_plans())
def test_restart_when_lists_only_files_in_the_plan(label: str, cluster: ClusterPlan) -> None:
    for host in cluster.hosts.values():
        files = host.files()
        for service in host.services():
            for path in service.restart_when:
                assert path in files, f"{host.host}: {service.name} waits on {path}, never written"


def test_services_restart_only_for_the_files_they_read() -> None:
    services = {s.name: set(s.restart_when) for s in plan(AIO).hosts["aio"].services()}
    assert services["nova-compute"] == {NOVA_CONF, "/etc/nova/nova-compute.conf"}
    assert services["nova-conductor"] == {NOVA_CONF}
    assert services["neutron-openvswitch-agent"] == {NEUTRON_CONF, OVS_AGENT}
    assert services["neutron-l3-agent"] == {NEUTRON_CONF, "/etc/neutron/l3_agent.ini"}
    assert services["neutron-api"] == {
        NEUTRON_CONF,
        ML2_CONF,
        "/etc/neutron/neutron-api-uwsgi.ini",
        "/etc/default/neutron-server",  # where it listens (Debian's init script reads it)
    }
    assert services["neutron-rpc-server"] == {NEUTRON_CONF, ML2_CONF}
    assert services["glance-api"] == {"/etc/glance/glance-api.conf"}
    assert services["chrony"] == {"/etc/chrony/chrony.conf"}
    assert services["haproxy"] == {"/etc/haproxy/haproxy.cfg", "/etc/haproxy/stackwright-front.pem"}
    assert services["openvswitch-switch"] == set()
    assert "/etc/libvirt/auth.conf" not in services["libvirtd"]  # read per connection


def test_debian_disabled_services_are_enabled() -> None:
    enabled = {s.name for s in plan(AIO).hosts["aio"].services() if s.enabled and s.running}
    assert {
        "placement-api",
        "neutron-api",
        "neutron-rpc-server",
        "neutron-openvswitch-agent",
        "neutron-l3-agent",
        "neutron-dhcp-agent",
        "neutron-metadata-agent",
    } <= enabled
    stopped = {s.name for s in plan(AIO).hosts["aio"].services() if not s.enabled and not s.running}
    assert "libvirt-guests" in stopped


# --- one host, one plan ------------------------------------------------------------------


def test_aio_renders_each_shared_file_once_with_all_roles_in_view() -> None:
    host = plan(AIO).hosts["aio"]
    paths = [s.path for s in host.steps if isinstance(s, File)]
    assert paths.count(NOVA_CONF) == 1 and paths.count(NEUTRON_CONF) == 1 and paths.count(OVS_AGENT) == 1
    nova = ini(host, NOVA_CONF)
    assert {"api_database", "database", "keystone_authtoken", "libvirt", "vnc", "placement"} <= set(nova)
    assert nova["neutron"]["service_metadata_proxy"] == "true"
    assert nova["vnc"]["novncproxy_base_url"] == "https://192.168.200.11:6080/vnc_lite.html"
    assert ini(host, OVS_AGENT)["ovs"]["bridge_mappings"] == "external:br-ex"
    names = [s.name for s in host.steps if isinstance(s, Service)]
    assert len(names) == len(set(names))
    bridges = [s.name for s in host.steps if isinstance(s, OvsBridge)]
    assert len(bridges) == len(set(bridges))


@pytest.mark.parametrize(("label", "cluster"), all_plans())
def test_dpkgs_settings_then_one_package_step_and_network_config_last(
    label: str, cluster: ClusterPlan
) -> None:
    for host in cluster.hosts.values():
        apt_setup, rest = split_preparation(host.steps)
        assert [s.path for s in apt_setup if isinstance(s, File)] == APT_SETUP
        assert isinstance(rest[0], Packages)
        assert sum(isinstance(s, Packages) for s in host.steps) == 1
        assert isinstance(host.steps[-1], NetworkConfig)
        assert host.steps[-1].probe_address == str(
            load_inventory(SEED if "seed" in label else AIO).model.nodes[host.host].management
        )


def test_compute_packages_are_kvm_flavoured_and_minimal() -> None:
    names = plan().hosts["compute1"].packages()
    assert {"nova-compute", "nova-compute-kvm", "neutron-openvswitch-agent", "openvswitch-switch"} <= set(
        names
    )
    assert "nova-compute-qemu" not in names
    assert "mariadb-server" not in names and "neutron-l3-agent" not in names
    controller = plan().hosts["controller"].packages()
    assert "nova-compute" not in controller and "openvswitch-switch" not in controller


def test_step_order_respects_dependencies() -> None:
    steps = plan().hosts["controller"].steps

    def index(predicate: object) -> int:
        return next(i for i, s in enumerate(steps) if predicate(s))  # type: ignore[operator]

    def command(words: str) -> int:
        return index(lambda s: isinstance(s, Command) and words in " ".join(s.argv))

    def service(name: str) -> int:
        return index(lambda s: isinstance(s, Service) and s.name == name)

    assert service("mariadb") < command("openstack-databases.sql") < command("keystone-manage db_sync")
    assert command("keystone-manage bootstrap") < service("keystone") < command("keystone-catalog.py")
    assert (
        command("api_db sync")
        < command("map_cell0")
        < command("create_cell")
        < command("nova-manage db sync")
    )
    assert service("placement-api") < service("nova-conductor")
    assert command("neutron-db-manage") < service("neutron-api")


# --- networks and bridges ------------------------------------------------------------------


def network_files(host: HostPlan) -> dict[str, str]:
    step = host.steps[-1]
    assert isinstance(step, NetworkConfig)
    return {f.path: f.content for f in step.files}


def test_network_node_external_address_moves_to_br_ex() -> None:
    network = plan().hosts["network"]
    files = network_files(network)
    assert "Address=" not in files["/etc/systemd/network/10-eth2.network"]
    assert "Address=192.168.100.52/24" in files["/etc/systemd/network/10-br-ex.network"]
    assert "Address=10.20.20.52/24" in files["/etc/systemd/network/10-eth1.network"]
    bridges = {s.name: s for s in network.steps if isinstance(s, OvsBridge)}
    assert bridges["br-ex"].ports == ("eth2",) and bridges["br-ex"].datapath_type == "system"
    assert "br-phy" not in bridges
    assert not any(isinstance(s, Sysctl) and "arp_ignore" in s.key for s in network.steps)
    assert "datapath_type" not in ini(network, OVS_AGENT)["ovs"]


def test_userspace_ovs_puts_tunnel_endpoints_on_br_phy() -> None:
    cluster = lab()
    for name, nic, address in (("network", "eth1", "10.20.20.52"), ("compute1", "eth1", "10.20.20.53")):
        host = cluster.hosts[name]
        bridges = {s.name: s for s in host.steps if isinstance(s, OvsBridge)}
        assert bridges["br-phy"].ports == (nic,)
        assert {b.datapath_type for b in bridges.values()} == {"netdev"}
        files = network_files(host)
        assert "Address=" not in files[f"/etc/systemd/network/10-{nic}.network"]
        assert f"Address={address}/24" in files["/etc/systemd/network/10-br-phy.network"]
        assert ini(host, OVS_AGENT)["ovs"]["datapath_type"] == "netdev"
        assert Sysctl("net.ipv4.conf.all.arp_ignore", "1") in host.steps
        # every bridge the agent names exists before the agent starts (DESIGN §5)
        agent = next(
            i
            for i, s in enumerate(host.steps)
            if isinstance(s, Service) and s.name.endswith("openvswitch-agent")
        )
        assert all(i < agent for i, s in enumerate(host.steps) if isinstance(s, OvsBridge))
    assert "br-ex" not in {s.name for s in cluster.hosts["compute1"].steps if isinstance(s, OvsBridge)}


def test_ip_forward_where_a_role_needs_it_and_chrony_follows_the_controller() -> None:
    cluster = plan()
    for name in ("network", "compute1"):
        assert Sysctl("net.ipv4.ip_forward", "1") in cluster.hosts[name].steps
    assert Sysctl("net.ipv4.ip_forward", "0") in cluster.hosts["controller"].steps
    assert Sysctl("net.ipv4.ip_forward", "1") in plan(AIO).hosts["aio"].steps
    assert "server 10.10.10.51 iburst" in cluster.hosts["compute1"].files()["/etc/chrony/chrony.conf"].content
    assert "allow 10.10.10.0/24" in cluster.hosts["controller"].files()["/etc/chrony/chrony.conf"].content


# --- controller services -----------------------------------------------------------------


def test_mariadb_listens_on_management_and_accounts_stay_there() -> None:
    files = plan().hosts["controller"].files()
    cnf = ini(plan().hosts["controller"], "/etc/mysql/mariadb.conf.d/99-openstack.cnf")
    assert cnf["mysqld"]["bind-address"] == "10.10.10.51"
    sql = files["/etc/stackwright/openstack-databases.sql"].content
    for database in ("keystone", "glance", "placement", "nova_api", "nova", "nova_cell0", "neutron"):
        assert f"CREATE DATABASE IF NOT EXISTS {database};" in sql
    for user, secret in (("keystone", "keystone_db_password"), ("nova", "nova_db_password")):
        account = f"'{user}'@'10.10.10.0/255.255.255.0'"
        assert f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{PASSWORDS[secret]}';" in sql
        assert f"ALTER USER {account} IDENTIFIED BY '{PASSWORDS[secret]}';" in sql
    assert "'%'" not in sql


def test_rabbitmq_has_its_own_user_and_no_guest() -> None:
    steps = plan().hosts["controller"].steps
    commands = [s for s in steps if isinstance(s, Command)]
    user = next(c for c in commands if "add_user openstack" in " ".join(c.argv))
    assert "< /etc/stackwright/rabbitmq-openstack.password" in user.argv[-1]
    assert "rabbitmqctl delete_user guest" in user.argv[-1]
    assert not any("rabbitmqctl" in (c.unless or "") for c in commands)  # an Erlang VM per apply
    conf = plan().hosts["controller"].files()["/etc/rabbitmq/rabbitmq.conf"].content
    assert "listeners.tcp.1 = 10.10.10.51:5672" in conf


def test_keystone_endpoints_public_on_public_address_internal_on_management() -> None:
    import json

    files = plan().hosts["controller"].files()
    catalog = json.loads(files["/etc/stackwright/keystone-catalog.json"].content)
    services = {s["type"]: s for s in catalog["services"]}
    assert set(services) == {"image", "placement", "compute", "network"}
    assert services["compute"]["endpoints"] == {
        "public": "https://192.168.100.51:8774/v2.1",
        "internal": "http://10.10.10.51:8774/v2.1",
        "admin": "http://10.10.10.51:8774/v2.1",
    }
    assert {u["name"] for u in catalog["users"]} == {"glance", "placement", "nova", "neutron"}
    env = files["/etc/stackwright/keystone-bootstrap.env"].content
    assert "OS_BOOTSTRAP_PUBLIC_URL=https://192.168.100.51:5000/v3/\n" in env
    assert "OS_BOOTSTRAP_INTERNAL_URL=http://10.10.10.51:5000/v3/\n" in env


def test_catalog_script_is_valid_python_and_root_only() -> None:
    script = plan().hosts["controller"].files()["/usr/local/lib/stackwright/keystone-catalog.py"]
    compile(script.content, script.path, "exec")
    assert (script.mode, script.owner) == (0o700, "root")
    assert "import openstack" in script.content


def test_uwsgi_apis_are_small_and_eventlet_ones_single_threaded() -> None:
    host = plan().hosts["controller"]
    for path in (
        "/etc/neutron/neutron-api-uwsgi.ini",
        "/etc/nova/nova-api-uwsgi.ini",
        "/etc/nova/nova-api-metadata-uwsgi.ini",
    ):
        uwsgi = ini(host, path)["uwsgi"]
        assert uwsgi["threads"] == "1", path
        assert int(uwsgi["processes"]) <= 2, path
    for path in ("/etc/keystone/keystone-uwsgi.ini", "/etc/placement/placement-api-uwsgi.ini"):
        assert int(ini(host, path)["uwsgi"]["processes"]) <= 2, path
    assert ini(host, "/etc/glance/glance-api.conf")["DEFAULT"]["workers"] == "2"


def test_glance_offers_no_copy_between_stores_it_does_not_have() -> None:
    # one store: copy-image has nothing to copy (Tempest's copy test waited 300 s for it)
    glance = plan().hosts["controller"].files()["/etc/glance/glance-api.conf"].content
    assert "enabled_backends = fs:file\n" in glance
    assert "enabled_import_methods = [glance-direct, web-download]\n" in glance


def test_novncproxy_is_selected() -> None:
    default = plan().hosts["controller"].files()["/etc/default/nova-consoleproxy"].content
    assert "NOVA_CONSOLE_PROXY_TYPE=novnc\n" in default


# --- libvirt --------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "cluster"), all_plans())
def test_nothing_world_writable_nor_unauthenticated(label: str, cluster: ClusterPlan) -> None:
    for f in all_files(cluster):
        assert "777" not in f.content and f.mode & 0o002 == 0, f.path
        assert not re.search(r'auth_tcp\s*=\s*"?none', f.content), f.path
    for step in all_steps(cluster):
        if isinstance(step, Command):
            assert "777" not in " ".join(step.argv)


def test_libvirt_listens_for_migration_over_tls_on_management_only() -> None:
    files = plan().hosts["compute1"].files()
    conf = files["/etc/libvirt/libvirtd.conf"].content
    assert "listen_tcp = 0" in conf and 'listen_addr = "10.10.10.53"' in conf
    assert 'tls_allowed_dn_list = ["CN=libvirt-*"]' in conf and "tls_no_verify_certificate = 0" in conf
    assert 'auth_unix_ro = "polkit"' in conf  # not every local user (root passes without polkitd)
    socket = files["/etc/systemd/system/libvirtd-tls.socket.d/stackwright.conf"].content
    assert re.findall(r"^ListenStream=(.*)$", socket, re.MULTILINE) == ["", "10.10.10.53:16514"]
    assert not [f for f in files if "sasl" in f or "libvirtd-tcp" in f or f == "/etc/libvirt/auth.conf"]
    unix = files["/etc/systemd/system/libvirtd.socket.d/stackwright.conf"].content
    assert "SocketMode=0660" in unix and "SocketGroup=libvirt" in unix
    steps = plan().hosts["compute1"].steps
    bind = next(s for s in steps if isinstance(s, Command) and "sockets" in s.description)
    assert bind.unless is not None and "10.10.10.53:16514" in bind.unless and "sport = :16509" in bind.unless
    tcp = next(s for s in steps if isinstance(s, Service) and s.name == "libvirtd-tcp.socket")
    assert (tcp.enabled, tcp.running) == (False, False)
    qemu = files["/etc/libvirt/qemu.conf"].content
    assert "default_tls_x509_verify = 1" in qemu and "migrate_tls_force = 1" in qemu
    nova = ini(plan().hosts["compute1"], NOVA_CONF)["libvirt"]
    assert (nova["live_migration_scheme"], nova["live_migration_with_native_tls"]) == ("tls", "true")
    assert nova["live_migration_inbound_addr"] == "10.10.10.53"


def test_each_compute_node_gets_its_own_migration_certificate_from_the_cloud_ca(tmp_path: Path) -> None:
    text = (
        SEED.read_text()
        + "  compute2:\n    roles: [compute]\n    management: 10.10.10.54\n    data: 10.20.20.54\n"
    )
    cluster = plan(write_inventory(tmp_path, text))
    ca = x509.load_pem_x509_certificate((tmp_path / "tls" / "ca.crt").read_bytes())
    for host, address in (("compute1", "10.10.10.53"), ("compute2", "10.10.10.54")):
        files = cluster.hosts[host].files()
        cert = x509.load_pem_x509_certificate(files["/etc/pki/libvirt/servercert.pem"].content.encode())
        cert.verify_directly_issued_by(ca)
        assert cert.subject.rfc4514_string() == f"CN=libvirt-{host}"
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(address)]
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        # libvirtd (root) and QEMU (libvirt-qemu) read the same pair from their own places
        for path in (
            "/etc/pki/libvirt/clientcert.pem",
            "/etc/pki/qemu/server-cert.pem",
            "/etc/pki/qemu/client-cert.pem",
        ):
            assert files[path].content == files["/etc/pki/libvirt/servercert.pem"].content, path
        for path, mode, group in (
            ("/etc/pki/libvirt/private/serverkey.pem", 0o600, "root"),
            ("/etc/pki/libvirt/private/clientkey.pem", 0o600, "root"),
            ("/etc/pki/qemu/server-key.pem", 0o640, "libvirt-qemu"),
        ):
            assert (files[path].mode, files[path].group, files[path].secret) == (mode, group, True), path
        assert files["/etc/pki/qemu/ca-cert.pem"].content == files["/etc/pki/CA/cacert.pem"].content
        assert files["/etc/pki/CA/cacert.pem"].content == (tmp_path / "tls" / "ca.crt").read_text()
    assert "/etc/pki/libvirt/servercert.pem" not in cluster.hosts["controller"].files()
    # the store keeps them: the next plan writes the same files
    again = plan(write_inventory(tmp_path, text))
    assert again.hosts["compute2"].files() == cluster.hosts["compute2"].files()


def test_rabbitmq_s_erlang_distribution_and_epmd_bind_management_only() -> None:
    files = plan().hosts["controller"].files()
    advanced = files["/etc/rabbitmq/advanced.config"].content
    assert "[{kernel, [{inet_dist_use_interface, {10,10,10,51}}]}]." in advanced
    epmd = files["/etc/systemd/system/epmd.socket.d/stackwright.conf"].content
    assert re.findall(r"^ListenStream=(.*)$", epmd, re.MULTILINE) == [
        "",
        "127.0.0.1:4369",
        "10.10.10.51:4369",
    ]
    rabbit = next(
        s for s in plan().hosts["controller"].steps if isinstance(s, Service) and s.name == "rabbitmq-server"
    )
    assert set(rabbit.restart_when) >= {
        "/etc/rabbitmq/advanced.config",
        "/etc/systemd/system/epmd.socket.d/stackwright.conf",
    }


def test_an_upgraded_node_loses_the_sasl_credentials() -> None:
    host = plan().hosts["compute1"]
    cleanup = next(s for s in host.steps if isinstance(s, Command) and "SASL" in s.description)
    for leftover in (
        "/etc/libvirt/passwd.db",
        "/etc/libvirt/auth.conf",
        "/etc/stackwright/libvirt-sasl.password",
    ):
        assert leftover in cleanup.argv[-1] and f"! test -e {leftover}" in (cleanup.unless or "")
    assert not [p for p in host.packages() if "sasl" in p]


def test_qemu_conf_device_acl_and_cgroups_only_in_containers() -> None:
    plain = plan().hosts["compute1"].files()["/etc/libvirt/qemu.conf"].content
    contained = lab().hosts["compute1"].files()["/etc/libvirt/qemu.conf"].content
    for text in (plain, contained):
        assert '"/dev/net/tun"' in text and '"/dev/kvm"' in text
    assert "cgroup_controllers" not in plain
    assert "cgroup_controllers = [ ]" in contained


def test_instances_directory_belongs_to_nova() -> None:
    from stackwright.steps import Directory

    dirs = {s.path: s for s in plan().hosts["compute1"].steps if isinstance(s, Directory)}
    instances = dirs["/var/lib/nova/instances"]
    assert (instances.owner, instances.group, instances.mode) == ("nova", "nova", 0o755)


def test_default_libvirt_network_removed_once() -> None:
    host = plan().hosts["compute1"]
    remove = next(s for s in host.steps if isinstance(s, Command) and "net-undefine" in " ".join(s.argv))
    assert remove.unless == "! virsh net-uuid default >/dev/null 2>&1"


# --- cells v2 ----------------------------------------------------------------------------


def test_discover_hosts_runs_on_the_controller_after_compute_nodes() -> None:
    (host, waits_for, steps), *firewalls = plan().after
    assert all(steps[0].path == RULESET for _, _, steps in firewalls)  # type: ignore[union-attr]
    assert (host, waits_for) == ("controller", ("compute1",))
    discover = next(s for s in steps if isinstance(s, Command))
    assert "discover_hosts" in " ".join(discover.argv)
    # runs only while a registered compute node lacks its cell mapping
    assert discover.unless is not None and "nova_api.host_mappings" in discover.unless
    assert "nova.compute_nodes" in discover.unless
    assert isinstance(steps[0], Wait) and "compute1" in steps[0].check and steps[0].about_host == "compute1"


def test_second_compute_node_joins_discovery(tmp_path: Path) -> None:
    text = (
        SEED.read_text()
        + "  compute2:\n    roles: [compute]\n    management: 10.10.10.54\n    data: 10.20.20.54\n"
    )
    before = plan().hosts["compute1"]
    shutil.copytree(SEED.parent / "tls", tmp_path / "tls")  # the same CA: compute1's certificate stands
    cluster = plan(write_inventory(tmp_path, text))
    (_, waits_for, steps), *cross = cluster.after
    assert waits_for == ("compute1", "compute2")
    # each compute node learns the other's host key once both converged (nova's SSH between them)
    peer_keys = [(host, peers) for host, peers, steps in cross if steps[0].path == NOVA_KNOWN_HOSTS]  # type: ignore[union-attr]
    assert peer_keys == [("compute1", ("compute2",)), ("compute2", ("compute1",))]
    # and every node whose firewall names another node reloads it when that node joins
    firewalls = {host: peers for host, peers, steps in cross if steps[0].path == RULESET}  # type: ignore[union-attr]
    assert firewalls == {
        "controller": ("network",),
        "network": ("compute1", "compute2"),
        "compute1": ("network", "compute2", "controller"),
        "compute2": ("network", "compute1", "controller"),
    }
    assert ini(cluster.hosts["compute2"], OVS_AGENT)["ovs"]["local_ip"] == "10.20.20.54"
    waits = [s for s in steps if isinstance(s, Wait)]
    assert [w.about_host for w in waits] == ["compute1", "compute2"]
    assert "compute2" in waits[1].check
    # compute1's plan changes only in the peers nova's SSH trusts and its firewall lets in when
    # compute2 is added
    after = cluster.hosts["compute1"]
    changed = {p for p in before.files() | after.files() if before.files().get(p) != after.files().get(p)}
    assert changed == {NOVA_KNOWN_HOSTS, RULESET}
    assert [s for s in before.steps if not isinstance(s, File)] == [
        s for s in after.steps if not isinstance(s, File)
    ]


def test_aio_discovers_itself_without_waiting_on_others() -> None:
    ((host, waits_for, _),) = plan(AIO).after  # and no firewall peers: it is alone
    assert (host, waits_for) == ("aio", ())


# --- templates ---------------------------------------------------------------------------


def test_every_template_is_used() -> None:
    templates = ROOT / "src" / "stackwright" / "releases" / "zed" / "templates"
    text = "\n".join(p.read_text() for p in (templates.parent).glob("*.py"))
    text += "\n".join(p.read_text() for p in templates.glob("*.j2"))
    cluster = plan(AIO)
    produced = {Path(p).name for p in cluster.hosts["aio"].files()}
    for template in templates.glob("*.j2"):
        name = template.name.removesuffix(".j2")
        assert name in produced or f'"{template.name}"' in text, template.name


def test_br_netfilter_loaded_on_servers_but_not_tried_in_containers() -> None:
    def modprobe(cluster: ClusterPlan) -> list[Command]:
        steps = cluster.hosts["compute1"].steps
        return [s for s in steps if isinstance(s, Command) and s.argv[:1] == ("modprobe",)]

    (load,) = modprobe(plan())
    assert load.argv == ("modprobe", "br_netfilter") and load.unless == "test -d /proc/sys/net/bridge"
    assert modprobe(lab()) == []
    assert (
        "br_netfilter"
        in lab().hosts["compute1"].files()["/etc/modules-load.d/neutron-br_netfilter.conf"].content
    )


def test_every_services_token_cache_is_encrypted_with_the_shared_key() -> None:
    """keystonemiddleware's cache in memcached: ENCRYPT with one generated key in every service
    (whoever reaches memcached can neither read nor forge a validated token)."""
    seen = []
    for host in plan().hosts.values():
        for path, file in host.files().items():
            if file.format != "ini" or "[keystone_authtoken]" not in file.content:
                continue
            section = ini(host, path)["keystone_authtoken"]
            assert section["memcache_security_strategy"] == "ENCRYPT", path
            assert section["memcache_secret_key"] == PASSWORDS["memcache_secret_key"], path
            assert file.secret and file.mode == 0o640, path
            seen.append(path)
    assert {"/etc/nova/nova.conf", "/etc/neutron/neutron.conf", "/etc/glance/glance-api.conf"} <= set(seen)
