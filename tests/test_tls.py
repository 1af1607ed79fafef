"""The TLS front in the plan: HAProxy on the controller's external address, every API and the
dashboard behind it on the management address, the certificate from our CA or the operator's,
renewed near its expiry, never shown; and the same cloud with `tls: {enabled: false}`."""

from __future__ import annotations

import configparser
import datetime as dt
import ipaddress
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from stackwright.certs import CertStore, issue, make_authority
from stackwright.checks.doctor.front import front_endpoints
from stackwright.cli import app
from stackwright.cloud import cloud_config
from stackwright.inventory import load_inventory
from stackwright.planner import plan_cluster
from stackwright.releases.modern.controller import CATALOG_JSON
from stackwright.secrets import SECRET_NAMES
from stackwright.steps import ClusterPlan, Command, File, Service, Sysctl
from stackwright.tls import FRONT, client_ca, front_names

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed.yaml"
AIO = ROOT / "examples" / "aio.yaml"
PASSWORDS = {n: "x" * 16 for n in SECRET_NAMES}
APIS = {
    5000: "keystone",
    8774: "nova",
    8778: "placement",
    9292: "glance",
    9696: "neutron",
    6080: "novncproxy",
}


def inventory(tmp_path: Path, top: str = "", source: Path = SEED) -> Path:
    path = tmp_path / "cloud.yaml"
    path.write_text(top + source.read_text())
    return path


def subdir(tmp_path: Path, name: str) -> Path:
    """A second inventory's directory (its own tls/ store)."""
    path = tmp_path / name
    path.mkdir()
    return path


def plan_of(path: Path) -> ClusterPlan:
    return plan_cluster(load_inventory(path), PASSWORDS)


def files(plan: ClusterPlan, host: str) -> dict[str, File]:
    return {s.path: s for s in plan.hosts[host].steps if isinstance(s, File)}


def catalog_urls(base: str) -> list[str]:
    """Glance's, Placement's, Nova's and Neutron's endpoints at `base`, in the catalog's order."""
    return [f"{base}:9292", f"{base}:8778", f"{base}:8774/v2.1", f"{base}:9696"]


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    return parser


def test_haproxy_serves_every_api_over_https_on_the_external_address(tmp_path: Path) -> None:
    controller = files(plan_of(inventory(tmp_path)), "controller")
    cfg = controller["/etc/haproxy/haproxy.cfg"].content
    for port, name in APIS.items():
        block = cfg.split(f"listen {name}\n", 1)[1].split("\n\n", 1)[0]
        assert f"bind 192.168.100.51:{port} ssl crt /etc/haproxy/stackwright-front.pem" in block
        assert f"server controller 10.10.10.51:{port}" in block
        assert "X-Forwarded-Proto https" in block
    dashboard = cfg.split("listen dashboard\n", 1)[1].split("\n\n", 1)[0]
    assert "bind 192.168.100.51:443 ssl crt" in dashboard and "server controller 10.10.10.51:80" in dashboard
    assert "bind 192.168.100.51:80\n    http-request redirect scheme https" in cfg
    assert "ssl-min-ver TLSv1.2" in cfg
    assert "0.0.0.0" not in cfg and ":::" not in cfg


def test_the_apis_listen_on_management_only(tmp_path: Path) -> None:
    controller = files(plan_of(inventory(tmp_path)), "controller")
    for name, port, ini_path in (
        ("keystone", 5000, "/etc/keystone/keystone-uwsgi.ini"),
        ("nova-api", 8774, "/etc/nova/nova-api-uwsgi.ini"),
        ("nova-api-metadata", 8775, "/etc/nova/nova-api-metadata-uwsgi.ini"),
        ("placement-api", 8778, "/etc/placement/placement-api-uwsgi.ini"),
        ("neutron-server", 9696, "/etc/neutron/neutron-api-uwsgi.ini"),
    ):
        text = controller[f"/etc/default/{name}"].content
        assert f'DAEMON_ARGS="--http-socket 10.10.10.51:{port} --ini {ini_path}"' in text
    assert ini(controller["/etc/glance/glance-api.conf"].content)["DEFAULT"]["bind_host"] == "10.10.10.51"
    assert ini(controller["/etc/nova/nova.conf"].content)["vnc"]["novncproxy_host"] == "10.10.10.51"
    assert "Listen 10.10.10.51:80\n" in controller["/etc/apache2/ports.conf"].content
    for path in ("/etc/keystone/keystone.conf", "/etc/nova/nova.conf", "/etc/glance/glance-api.conf",
                 "/etc/neutron/neutron.conf", "/etc/placement/placement.conf"):  # fmt: skip
        assert ini(controller[path].content)["oslo_middleware"]["enable_proxy_headers_parsing"] == "true", (
            path
        )
    settings = controller["/etc/openstack-dashboard/local_settings.py"].content
    assert 'SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")' in settings
    assert "SESSION_COOKIE_SECURE = True" in settings and "CSRF_COOKIE_SECURE = True" in settings


def test_public_urls_say_https(tmp_path: Path) -> None:
    plan = plan_of(inventory(tmp_path))
    compute = ini(files(plan, "compute1")["/etc/nova/nova.conf"].content)
    assert compute["vnc"]["novncproxy_base_url"] == "https://192.168.100.51:6080/vnc_lite.html"
    assert "oslo_middleware" not in compute  # only the controller's APIs are behind the front
    controller = files(plan, "controller")
    catalog = controller[CATALOG_JSON].content
    assert re.findall(r'"public": "([^"]+)"', catalog) == catalog_urls("https://192.168.100.51")
    assert '"internal": "http://10.10.10.51:9292"' in catalog
    neutron = ini(controller["/etc/neutron/neutron.conf"].content)
    assert neutron["keystone_authtoken"]["www_authenticate_uri"] == "https://192.168.100.51:5000"


def test_the_front_certificate_is_ours_private_and_names_the_external_address(tmp_path: Path) -> None:
    path = inventory(tmp_path)
    loaded = load_inventory(path)
    assert loaded.tls is not None
    pem = files(plan_cluster(loaded, PASSWORDS), "controller")["/etc/haproxy/stackwright-front.pem"]
    assert (pem.mode, pem.group, pem.secret) == (0o640, "haproxy", True)
    blocks = re.findall(r"-----BEGIN ([A-Z ]+)-----", pem.content)
    assert blocks == ["CERTIFICATE", "CERTIFICATE", "PRIVATE KEY"]  # leaf, CA, key
    cert = x509.load_pem_x509_certificate(pem.content.encode())
    ca = (tmp_path / "tls" / "ca.crt").read_text()
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.encode()))
    assert front_names(loaded.model) == ["192.168.100.51", "controller"]
    assert stat.S_IMODE((tmp_path / "tls" / "front.key").stat().st_mode) == 0o600
    assert client_ca(loaded.model, path) == tmp_path / "tls" / "ca.crt"
    # the same certificate on every load: a re-apply writes nothing
    again = load_inventory(path).tls
    assert again is not None and again.cert_pem == loaded.tls.cert_pem and again.issued_because is None
    trust = files(plan_cluster(loaded, PASSWORDS), "controller")
    assert trust["/usr/local/share/ca-certificates/stackwright-cloud-ca.crt"].content == ca


def test_a_certificate_within_30_days_of_expiry_is_issued_again(tmp_path: Path) -> None:
    path = inventory(tmp_path)
    store = CertStore(tmp_path / "tls", ca_name="stackwright cloud CA")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=380)  # a 397-day certificate: 17 days left
    store._write(FRONT, issue(store.authority(), "192.168.100.51", ["192.168.100.51", "controller"], old))
    loaded = load_inventory(path)
    assert loaded.tls is not None and loaded.tls.issued_because is not None
    assert "within 30 days" in loaded.tls.issued_because
    assert loaded.tls.certificate.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    assert (tmp_path / "tls" / "front.crt.prev").exists()  # the old one is kept


def test_the_operators_own_certificate_is_used_as_given(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    ca = make_authority("Example Corp CA", now)
    leaf = issue(ca, "cloud.example.org", ["192.168.100.51", "cloud.example.org"], now)
    (tmp_path / "c.pem").write_text(leaf.cert_pem)
    (tmp_path / "k.pem").write_text(leaf.key_pem)
    (tmp_path / "ca.pem").write_text(ca.cert_pem)
    path = inventory(tmp_path, "tls: {cert: c.pem, key: k.pem, ca: ca.pem}\n")
    loaded = load_inventory(path)
    assert loaded.tls is not None
    assert (loaded.tls.cert_pem, loaded.tls.key_pem, loaded.tls.ca_pem) == (
        leaf.cert_pem,
        leaf.key_pem,
        ca.cert_pem,
    )
    assert client_ca(loaded.model, path) == tmp_path / "ca.pem"
    # our CA issues only the compute nodes' migration certificates
    assert sorted(f.name for f in (tmp_path / "tls").iterdir()) == [
        "ca.crt",
        "ca.key",
        "libvirt-compute1.crt",
        "libvirt-compute1.key",
    ]


@pytest.mark.parametrize(
    ("top", "says"),
    [
        ("tls: {cert: c.pem}\n", "tls: key, ca missing"),
        ("tls: {cert: c.pem, key: other.pem, ca: ca.pem}\n", "is not the key of"),
        ("tls: {cert: c.pem, key: k.pem, ca: other-ca.pem}\n", "did not issue"),
        ("tls: {cert: wrong-name.pem, key: wk.pem, ca: ca.pem}\n", "does not name 192.168.100.51"),
        ("tls: {cert: c.pem, key: k.pem, ca: missing.pem}\n", "cannot read"),
    ],
)
def test_a_wrong_certificate_is_one_line_and_exit_2(tmp_path: Path, top: str, says: str) -> None:
    now = dt.datetime.now(dt.UTC)
    ca, other_ca = make_authority("Example Corp CA", now), make_authority("Other CA", now)
    leaf = issue(ca, "c", ["192.168.100.51"], now)
    wrong = issue(ca, "c", ["192.168.100.99"], now)
    for name, text in {
        "c.pem": leaf.cert_pem,
        "k.pem": leaf.key_pem,
        "other.pem": wrong.key_pem,
        "ca.pem": ca.cert_pem,
        "other-ca.pem": other_ca.cert_pem,
        "wrong-name.pem": wrong.cert_pem,
        "wk.pem": wrong.key_pem,
    }.items():
        (tmp_path / name).write_text(text)
    result = CliRunner().invoke(app, ["validate", str(inventory(tmp_path, top))])
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert "PRIVATE KEY" not in result.output


@pytest.mark.parametrize("name", ["c pem", "c.pem;id", "$(id).pem", "c.pem\\n"])
def test_a_certificate_path_is_an_allow_listed_file_name(tmp_path: Path, name: str) -> None:
    path = inventory(tmp_path, f'tls: {{cert: "{name}", key: k.pem, ca: ca.pem}}\n')
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "tls.cert" in result.output and "not a valid file name" in result.output


def test_tls_needs_the_controllers_external_address(tmp_path: Path) -> None:
    text = SEED.read_text().replace("    external: 192.168.100.51\n", "", 1)
    path = tmp_path / "cloud.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "needs an external address on controller" in result.output
    path.write_text("tls: {enabled: false}\n" + text)
    assert CliRunner().invoke(app, ["validate", str(path)]).exit_code == 0


def test_the_plan_never_shows_the_key(tmp_path: Path) -> None:
    path = inventory(tmp_path)
    for argv in (["plan", str(path)], ["plan", str(path), "--json"]):
        result = CliRunner().invoke(app, argv)
        key_body = (tmp_path / "tls" / "front.key").read_text().splitlines()[1]
        assert result.exit_code == 0, result.output
        assert "/etc/haproxy/stackwright-front.pem" in result.output
        assert key_body[:40] not in result.output


def test_without_tls_the_apis_listen_everywhere_and_nothing_fronts_them(tmp_path: Path) -> None:
    plan = plan_of(inventory(tmp_path, "tls: {enabled: false}\n"))
    controller = files(plan, "controller")
    assert (
        "/etc/haproxy/haproxy.cfg" not in controller and "haproxy" not in plan.hosts["controller"].packages()
    )
    # an HAProxy an earlier apply started (TLS on) gives the ports back; on a fresh host: nothing to do
    assert [s for s in plan.hosts["controller"].steps if isinstance(s, Service) and s.name == "haproxy"] == [
        Service("haproxy", enabled=False, running=False)
    ]
    assert "--http-socket 0.0.0.0:5000 " in controller["/etc/default/keystone"].content
    assert "--http-socket 10.10.10.51:8775 " in controller["/etc/default/nova-api-metadata"].content
    assert "Listen 192.168.100.51:80\n" in controller["/etc/apache2/ports.conf"].content
    nova = ini(files(plan, "compute1")["/etc/nova/nova.conf"].content)
    assert nova["vnc"]["novncproxy_base_url"] == "http://192.168.100.51:6080/vnc_lite.html"
    assert not (tmp_path / "tls" / "front.crt").exists()


def test_haproxy_may_bind_the_external_address_before_it_is_up(tmp_path: Path) -> None:
    for source, host in ((AIO, "aio"), (SEED, "controller")):
        (tmp_path / host).mkdir()
        plan = plan_of(inventory(tmp_path / host, source=source))
        sysctls = {s.key: s.value for s in plan.hosts[host].steps if isinstance(s, Sysctl)}
        assert sysctls["net.ipv4.ip_nonlocal_bind"] == "1"
    assert "net.ipv4.ip_nonlocal_bind" not in {
        s.key for s in plan.hosts["compute1"].steps if isinstance(s, Sysctl)
    }


INTERNAL = "tls: {internal: true}\n"


def test_tls_internal_puts_the_internal_endpoints_behind_the_front(tmp_path: Path) -> None:
    plan = plan_of(inventory(tmp_path, INTERNAL))
    controller = files(plan, "controller")
    cfg = controller["/etc/haproxy/haproxy.cfg"].content
    for port, name in APIS.items():
        block = cfg.split(f"listen {name}\n", 1)[1].split("\n\n", 1)[0]
        assert f"bind 192.168.100.51:{port} ssl crt" in block and f"bind 10.10.10.51:{port} ssl crt" in block
        assert f"server controller 127.0.0.1:{port}" in block
    dashboard = cfg.split("listen dashboard\n", 1)[1].split("\n\n", 1)[0]
    assert "bind 10.10.10.51" not in dashboard and "server controller 127.0.0.1:80" in dashboard
    assert "8775" not in cfg  # the metadata API stays plain HTTP on management
    # every API and the dashboard on loopback; the metadata API on management
    for name, port in (
        ("keystone", 5000),
        ("nova-api", 8774),
        ("placement-api", 8778),
        ("neutron-server", 9696),
    ):
        assert f"--http-socket 127.0.0.1:{port} " in controller[f"/etc/default/{name}"].content
    assert "--http-socket 10.10.10.51:8775 " in controller["/etc/default/nova-api-metadata"].content
    assert ini(controller["/etc/glance/glance-api.conf"].content)["DEFAULT"]["bind_host"] == "127.0.0.1"
    assert ini(controller["/etc/nova/nova.conf"].content)["vnc"]["novncproxy_host"] == "127.0.0.1"
    assert "Listen 127.0.0.1:80\n" in controller["/etc/apache2/ports.conf"].content
    assert (
        "<VirtualHost 127.0.0.1:80>"
        in controller["/etc/apache2/sites-available/stackwright-dashboard.conf"].content
    )
    settings = controller["/etc/openstack-dashboard/local_settings.py"].content
    assert 'OPENSTACK_KEYSTONE_URL = "https://%s:5000/v3" % OPENSTACK_HOST' in settings
    # the catalog's internal and admin endpoints, and every service's Keystone, over https
    catalog = controller[CATALOG_JSON].content
    assert re.findall(r'"internal": "([^"]+)"', catalog) == catalog_urls("https://10.10.10.51")
    assert '"http://' not in catalog
    bootstrap = controller["/etc/stackwright/keystone-bootstrap.env"].content
    assert "OS_BOOTSTRAP_INTERNAL_URL=https://10.10.10.51:5000/v3/" in bootstrap
    for host, path in (
        ("controller", "/etc/nova/nova.conf"),
        ("controller", "/etc/neutron/neutron.conf"),
        ("controller", "/etc/glance/glance-api.conf"),
        ("compute1", "/etc/nova/nova.conf"),
    ):
        text = files(plan, host)[path].content
        assert "http://10.10.10.51:5000" not in text and "auth_url = https://10.10.10.51:5000" in text, path
    # the transport and the database stay as they are (RabbitMQ and MariaDB are not HTTP)
    assert "rabbit://openstack:" in files(plan, "compute1")["/etc/nova/nova.conf"].content


def test_tls_internal_every_node_trusts_the_ca_before_its_services_start(tmp_path: Path) -> None:
    plan = plan_of(inventory(tmp_path, INTERNAL))
    ca = (tmp_path / "tls" / "ca.crt").read_text()
    first_service = {"controller": "mariadb", "network": "openvswitch-switch", "compute1": "libvirtd"}
    for host, service in first_service.items():
        steps = plan.hosts[host].steps
        trust = files(plan, host)["/usr/local/share/ca-certificates/stackwright-cloud-ca.crt"]
        assert trust.content == ca
        assert "ca-certificates" in plan.hosts[host].packages()
        names = [getattr(s, "name", getattr(s, "description", "")) for s in steps]
        assert names.index("the host trusts the cloud's CA") < names.index(service), host
    # without tls.internal only the controller trusts it (its own clients of the public URLs)
    plain = plan_of(inventory(subdir(tmp_path, "plain")))
    assert "/usr/local/share/ca-certificates/stackwright-cloud-ca.crt" not in files(plain, "compute1")
    assert "/usr/local/share/ca-certificates/stackwright-cloud-ca.crt" in files(plain, "controller")


def test_the_front_starts_before_the_services_behind_it_and_frees_its_ports(tmp_path: Path) -> None:
    for top in ("", INTERNAL):
        steps = plan_of(inventory(subdir(tmp_path, str(len(top))), top)).hosts["controller"].steps
        names = [getattr(s, "name", getattr(s, "description", "")) for s in steps]
        free = names.index("services give the TLS front's addresses up to it")
        assert free < names.index("haproxy") < names.index("keystone") < names.index("Keystone answers")
        command = steps[free]
        assert isinstance(command, Command) and command.unless is not None
        assert command.argv[:2] == ("systemctl", "stop") and "keystone" in command.argv
        # it looks for holders on the addresses the front binds, and on the wildcards
        assert "192\\.168\\.100\\.51" in command.unless and "0\\.0\\.0\\.0" in command.unless
        assert ("10\\.10\\.10\\.51" in command.unless) == bool(top)


def test_tls_internal_needs_tls(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["validate", str(inventory(tmp_path, "tls: {enabled: false, internal: true}\n"))]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "tls.internal" in result.output and "enable TLS, or drop internal" in result.output


def test_tls_internal_certificate_names_the_management_address(tmp_path: Path) -> None:
    loaded = load_inventory(inventory(tmp_path, INTERNAL))
    assert front_names(loaded.model) == ["192.168.100.51", "controller", "10.10.10.51"]
    assert loaded.tls is not None
    sans = loaded.tls.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert x509.IPAddress(ipaddress.ip_address("10.10.10.51")) in sans
    # an operator's own certificate must name it too
    now = dt.datetime.now(dt.UTC)
    ca = make_authority("Example Corp CA", now)
    leaf = issue(ca, "cloud.example.org", ["192.168.100.51", "cloud.example.org"], now)
    (tmp_path / "c.pem").write_text(leaf.cert_pem)
    (tmp_path / "k.pem").write_text(leaf.key_pem)
    (tmp_path / "ca.pem").write_text(ca.cert_pem)
    top = "tls: {internal: true, cert: c.pem, key: k.pem, ca: ca.pem}\n"
    result = CliRunner().invoke(app, ["validate", str(inventory(tmp_path, top))])
    assert result.exit_code == 2 and "does not name 10.10.10.51" in result.output


def test_tls_internal_the_admin_connection_verifies_the_internal_endpoints(tmp_path: Path) -> None:
    path = inventory(tmp_path, INTERNAL)
    loaded = load_inventory(path)
    cafile = client_ca(loaded.model, path)
    config = cloud_config(loaded.model, PASSWORDS, cacert=cafile)
    assert config["auth"]["auth_url"] == "https://10.10.10.51:5000/v3"
    assert config["interface"] == "internal" and config["cacert"] == str(tmp_path / "tls" / "ca.crt")
    endpoints = front_endpoints(loaded.model)
    assert ("10.10.10.51", 5000) in endpoints and ("10.10.10.51", 443) not in endpoints
    assert ("10.10.10.51", 5000) not in front_endpoints(
        load_inventory(inventory(subdir(tmp_path, "plain"))).model
    )
