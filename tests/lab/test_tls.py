"""The TLS front on the session's Epoxy cloud, seen from outside: this machine's address on the lab's
external network (the gateway's) is a client that has only the external network.

Every public port answers HTTPS with a certificate that verifies against the cloud's CA (and not
against another CA); plain HTTP gets no answer from the APIs and a redirect from the dashboard;
the database, the broker, memcached, libvirt and VNC are unreachable from there; clouds.yaml gets a
token with verification on; the APIs listen on management only. A certificate about to expire is
named by doctor and replaced by `apply`, and the cloud's CA renews its own near expiry.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import ipaddress
import os
import re
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from stackwright.certs import issue, make_authority
from stackwright.checks.doctor.front import front_ports
from stackwright.cloud import connect, identity_v3
from stackwright.inventory import Inventory, load_inventory
from stackwright.releases.modern.api import answers
from stackwright.releases.modern.tls_front import FRONT_PEM
from stackwright.secrets import load_passwords
from stackwright.tls import FRONT, client_ca, front_names, store_for
from tests.lab.cli import stackwright
from tests.lab.cloudkit import verify_json
from tests.lab.conftest import SeedLab
from tests.lab.test_doctor import causes, doctor, failing, healthy_after

pytestmark = [pytest.mark.lab, pytest.mark.cloud]


def model(lab: SeedLab) -> Inventory:
    return load_inventory(lab.inventory).model


def client_address(inventory: Inventory) -> str:
    external = inventory.networks.external
    assert external is not None
    return str(external.lab_address)


def connect_from(source: str, address: str, port: int, timeout: float = 5) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout, source_address=(source, 0))


def served_certificate(source: str, address: str, port: int, cafile: Path) -> x509.Certificate:
    context = ssl.create_default_context(cafile=str(cafile))
    with connect_from(source, address, port) as raw, context.wrap_socket(raw, server_hostname=address) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def https_status(source: str, address: str, port: int, cafile: Path, path: str = "/") -> int:
    context = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection(address, port, timeout=10, context=context, source_address=(source, 0))
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def plain_http(source: str, address: str, port: int) -> str:
    """What a plain-HTTP request gets: 'HTTP <status>', or how the connection ended without one."""
    conn = http.client.HTTPConnection(address, port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return f"HTTP {response.status} {response.getheader('Location') or ''}".strip()
    except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as exc:
        return f"no answer ({type(exc).__name__})"
    finally:
        conn.close()


def reachable(source: str, address: str, port: int) -> str:
    try:
        with connect_from(source, address, port, timeout=3):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "filtered"


def test_public_ports_answer_https_that_verifies_against_the_clouds_ca(
    epoxy_cloud: SeedLab, tmp_path: Path
) -> None:
    inventory = model(epoxy_cloud)
    source, address = client_address(inventory), str(inventory.controller.external)
    cafile = client_ca(inventory, epoxy_cloud.inventory)
    assert cafile is not None and cafile.exists()
    for port in front_ports(inventory):
        cert = served_certificate(source, address, port, cafile)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert x509.IPAddress(ipaddress.ip_address(address)) in sans
        path = "/horizon/auth/login/" if port == 443 else "/vnc_lite.html" if port == 6080 else "/"
        status = https_status(source, address, port, cafile, path)
        assert status < 500, f"https://{address}:{port}{path}: HTTP {status}"
    # another CA does not vouch for it: verification fails
    other = tmp_path / "other-ca.crt"
    other.write_text(make_authority("another CA", dt.datetime.now(dt.UTC)).cert_pem)
    with pytest.raises(ssl.SSLCertVerificationError):
        served_certificate(source, address, 5000, other)


def test_plain_http_is_refused_or_redirected(epoxy_cloud: SeedLab) -> None:
    inventory = model(epoxy_cloud)
    source, address = client_address(inventory), str(inventory.controller.external)
    for port in (5000, 8774, 9696):
        assert plain_http(source, address, port).startswith("no answer"), port
    assert plain_http(source, address, 80) == f"HTTP 301 https://{address}/"


def test_nothing_else_is_reachable_from_the_external_network(epoxy_cloud: SeedLab) -> None:
    inventory = model(epoxy_cloud)
    source = client_address(inventory)
    controller = inventory.controller
    compute = inventory.nodes[inventory.names_with("compute")[0]]
    targets = [
        *(
            (str(a), p)
            for a in (controller.external, controller.management)
            for p in (3306, 5672, 4369, 25672, 11211)
        ),
        *((str(compute.management), p) for p in (16509, 16514, 5900)),
    ]
    with ThreadPoolExecutor(len(targets)) as pool:  # each filtered port waits out its timeout
        results = pool.map(lambda target: reachable(source, *target), targets)
    seen = {f"{address}:{port}": result for (address, port), result in zip(targets, results, strict=True)}
    assert set(seen.values()) == {"filtered"}, seen


def test_clouds_yaml_gets_a_token_through_the_front_with_verification_on(epoxy_cloud: SeedLab) -> None:
    import openstack

    clouds = epoxy_cloud.inventory.parent / "clouds.yaml"
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    try:
        conn = openstack.connect(cloud="stackwright")
        assert conn.config.config["auth"]["auth_url"].startswith("https://")
        assert conn.config.config["cacert"] == str(client_ca(model(epoxy_cloud), epoxy_cloud.inventory))
        assert conn.session.get_token()  # what `openstack --os-cloud stackwright token issue` asks for
        assert conn.compute.get("/").status_code < 400  # the public compute endpoint, over https
    finally:
        del os.environ["OS_CLIENT_CONFIG_FILE"]


def test_the_apis_listen_on_management_and_haproxy_on_the_external_address(epoxy_cloud: SeedLab) -> None:
    inventory = model(epoxy_cloud)
    controller = inventory.controller_name
    listening = epoxy_cloud.check(controller, "ss -Hltnp").splitlines()
    for port in (5000, 8774, 8775, 8778, 9292, 9696, 6080, 80):
        owners = [line for line in listening if line.split()[3].endswith(f":{port}")]
        local = {line.split()[3].rsplit(":", 1)[0] for line in owners}
        expected = {str(inventory.controller.management)}
        if port not in (8775,):
            expected.add(str(inventory.controller.external))
        assert local == expected, (port, owners)
    # RabbitMQ's Erlang distribution and epmd: management (and loopback, where RabbitMQ registers)
    management = str(inventory.controller.management)
    for port, expected in ((25672, {management}), (4369, {management, "127.0.0.1"})):
        local = {
            line.split()[3].rsplit(":", 1)[0] for line in listening if line.split()[3].endswith(f":{port}")
        }
        assert local == expected, (port, local)
    epoxy_cloud.check(controller, "rabbitmqctl --quiet status >/dev/null")  # the CLI still finds the node
    epoxy_cloud.check(controller, "haproxy -c -f /etc/haproxy/haproxy.cfg")  # exits 0: valid


def test_an_expiring_certificate_is_named_by_doctor_and_renewed_by_apply(epoxy_cloud: SeedLab) -> None:
    inventory = model(epoxy_cloud)
    store = store_for(epoxy_cloud.inventory)
    names = front_names(inventory)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=380)  # 397-day certificate: 17 days left
    expiring = issue(store.authority(), names[0], names, old)
    bundle = expiring.cert_pem + store.authority().cert_pem + expiring.key_pem
    # served by hand on the controller, as a certificate nobody renewed would be
    encoded = base64.b64encode(bundle.encode()).decode()
    controller = inventory.controller_name
    epoxy_cloud.check(controller, f"echo {encoded} | base64 -d > {FRONT_PEM} && systemctl restart haproxy")
    code, data = doctor(epoxy_cloud)
    assert code == 1 and ("tls-front", controller) in failing(data)
    assert re.search(r"the certificate expires in 1[67] days", causes(data, "tls-front")), causes(
        data, "tls-front"
    )
    # the same certificate in the CA's store: apply issues a new one and serves it
    store._write(FRONT, expiring)
    proc = stackwright("apply", str(epoxy_cloud.inventory), "--yes", "--limit", controller)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cafile = client_ca(inventory, epoxy_cloud.inventory)
    assert cafile is not None
    served = served_certificate(client_address(inventory), names[0], 5000, cafile)
    assert served.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    assert served.serial_number != expiring.certificate.serial_number
    code, data = doctor(epoxy_cloud)
    assert ("tls-front", controller) not in failing(data), causes(data, "tls-front")


def listeners(lab: SeedLab, host: str) -> dict[int, set[str]]:
    """TCP port -> the local addresses something listens on."""
    found: dict[int, set[str]] = {}
    for line in lab.check(host, "ss -Hltn").splitlines():
        address, _, port = line.split()[3].rpartition(":")
        found.setdefault(int(port), set()).add(address)
    return found


def test_tls_internal_puts_the_internal_endpoints_behind_the_front_and_back(epoxy_cloud: SeedLab) -> None:
    """`tls: {internal: true}` applied to the running cloud and taken back: meanwhile every internal
    endpoint answers HTTPS on the management address with a certificate that verifies for it, the
    APIs listen on loopback only, a compute node reaches Keystone over HTTPS through its system
    trust, the catalog says https, a VM boots and leases (nova-compute fetches its image from
    Glance and talks to Placement and Neutron through the front), and doctor is healthy."""
    inventory = model(epoxy_cloud)
    data = yaml.safe_load(epoxy_cloud.inventory.read_text())
    data.setdefault("tls", {})["internal"] = True
    internal = replace(epoxy_cloud, inventory=epoxy_cloud.inventory.with_name("internal-tls.yaml"))
    internal.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    controller, management = inventory.controller_name, str(inventory.controller.management)
    external = str(inventory.controller.external)
    source = str(inventory.networks.management.lab_address)
    apis = (5000, 8774, 8778, 9292, 9696, 6080)
    try:
        proc = stackwright("apply", str(internal.inventory), "--yes", "--json", timeout=1800)
        assert proc.returncode == 0, proc.stderr[-4000:]
        cafile = client_ca(inventory, epoxy_cloud.inventory)
        assert cafile is not None
        listening = listeners(epoxy_cloud, controller)
        for port in apis:
            assert listening[port] == {"127.0.0.1", management, external}, (port, listening[port])
            cert = served_certificate(source, management, port, cafile)
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert x509.IPAddress(ipaddress.ip_address(management)) in sans
            path = "/vnc_lite.html" if port == 6080 else "/"
            assert https_status(source, management, port, cafile, path) < 500, port
        assert listening[80] == {"127.0.0.1", external} and listening[8775] == {management}
        assert plain_http(source, management, 5000).startswith("no answer")
        compute = inventory.names_with("compute")[0]
        epoxy_cloud.check(compute, answers(f"https://{management}:5000/v3"))  # the CA in its trust
        passwords = load_passwords(epoxy_cloud.inventory.parent / "passwords.yaml")
        conn = connect(load_inventory(internal.inventory).model, passwords, cacert=cafile)
        urls = {e.interface: e.url for e in identity_v3(conn).endpoints() if e.interface != "public"}
        assert urls and all(url.startswith(f"https://{management}:") for url in urls.values()), urls
        smoke = verify_json(internal, "--smoke", "--no-volumes", "--wait", "180", timeout=1800)["smoke"]
        assert smoke["ok"] and smoke["lease"] == smoke["fixed_ip"], smoke
        healthy_after(internal, 180)
    finally:
        back = stackwright("apply", str(epoxy_cloud.inventory), "--yes", "--json", timeout=1800)
        internal.inventory.unlink()
    assert back.returncode == 0, back.stderr[-4000:]
    listening = listeners(epoxy_cloud, controller)
    for port in apis:
        assert listening[port] == {management, external}, (port, listening[port])
    assert plain_http(source, management, 5000).startswith("HTTP ")
