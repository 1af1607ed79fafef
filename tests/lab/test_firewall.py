"""The nodes' firewalls on the session's Epoxy cloud (loaded since its first apply, so every other
cloud test, the smoke VMs and Tempest included, runs through them): real connections from the
lab hosts' own addresses open where the port matrix says and are dropped elsewhere; a table
removed behind stackwright's back is named by doctor and loaded again by its fix."""

from __future__ import annotations

import shlex

import pytest

from tests.lab.cloudkit import second_compute_node
from tests.lab.conftest import SeedLab
from tests.lab.figures import record
from tests.lab.test_doctor import causes, doctor, failing, healthy_after

pytestmark = [pytest.mark.lab, pytest.mark.cloud]

# One TCP connection from a given source address: open, refused (nothing listens, the firewall let
# it through) or filtered (dropped: no answer within the timeout).
PROBE = """import socket, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.settimeout(3)
s.bind((src, 0))
try:
    s.connect((dst, port))
    print("open")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("filtered")
"""

# (from host, its source address, to address, port, what the port matrix says happens)
CASES = (
    ("network", "192.168.100.52", "192.168.100.51", 5000, {"open"}),  # APIs: anyone, external address
    ("network", "192.168.100.52", "192.168.100.51", 6080, {"open"}),
    ("network", "192.168.100.52", "192.168.100.51", 3306, {"filtered"}),  # MariaDB: management only
    ("network", "192.168.100.52", "192.168.100.51", 22, {"filtered"}),  # SSH: management only
    ("compute1", "10.10.10.53", "10.10.10.51", 3306, {"open"}),
    ("compute1", "10.10.10.53", "10.10.10.51", 5672, {"open"}),
    ("compute1", "10.10.10.53", "10.10.10.51", 4369, {"filtered"}),  # epmd: nobody
    ("compute1", "10.10.10.53", "10.10.10.51", 8775, {"filtered"}),  # metadata: network nodes only
    ("network", "10.10.10.52", "10.10.10.51", 8775, {"open"}),
    ("compute2", "10.10.10.54", "10.10.10.53", 16509, {"open"}),  # libvirt: compute peers only
    ("network", "10.10.10.52", "10.10.10.53", 16509, {"filtered"}),
    ("controller", "10.10.10.51", "10.10.10.53", 5900, {"open", "refused"}),  # VNC: the proxy only
    ("network", "10.10.10.52", "10.10.10.53", 5900, {"filtered"}),
    ("compute1", "10.20.20.53", "10.20.20.52", 22, {"filtered"}),  # the data network: tunnels only
)


def probe(lab: SeedLab, host: str, source: str, target: str, port: int) -> str:
    args = " ".join(map(shlex.quote, (source, target, str(port))))
    return lab.check(host, f"python3 -c {shlex.quote(PROBE)} {args}", timeout=60).strip()


def test_connections_open_only_where_the_port_matrix_says(epoxy_cloud: SeedLab) -> None:
    second_compute_node(epoxy_cloud)
    for host in epoxy_cloud.hosts:
        assert epoxy_cloud.check(host, "systemctl is-active stackwright-firewall").strip() == "active"
        epoxy_cloud.check(host, "nft list table inet stackwright >/dev/null")
    seen = {}
    for host, source, target, port, expected in CASES:
        got = probe(epoxy_cloud, host, source, target, port)
        seen[f"{host} {source} -> {target}:{port}"] = got
        assert got in expected, f"{host} from {source} to {target}:{port}: {got}, expected {expected}"
    record("firewall", "probes", seen)


def test_a_removed_table_is_named_by_doctor_and_loaded_again_by_its_fix(epoxy_cloud: SeedLab) -> None:
    healthy_after(epoxy_cloud, 180)
    epoxy_cloud.check("compute1", "nft delete table inet stackwright")
    try:
        code, data = doctor(epoxy_cloud)
        assert code == 1 and ("firewall", "compute1") in failing(data)
        assert "not loaded: every port of compute1 is open" in causes(data, "firewall")
        code, data = doctor(epoxy_cloud, "--fix")
        assert any(f["command"] == "systemctl restart stackwright-firewall" for f in data["fixes"])
        assert code == 0, failing(data)
    finally:
        epoxy_cloud.exec("compute1", "systemctl restart stackwright-firewall")
    assert probe(epoxy_cloud, "network", "10.10.10.52", "10.10.10.53", 16509) == "filtered"
    healthy_after(epoxy_cloud, 180)
