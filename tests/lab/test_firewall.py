"""The nodes' firewalls on the session's Epoxy cloud (loaded since its first apply, so every other
cloud test, the smoke VMs and Tempest included, runs through them): real connections from the
lab hosts' own addresses open where the port matrix says and are dropped elsewhere; a table
removed behind stackwright's back is named by doctor and loaded again by its fix."""

from __future__ import annotations

import asyncio
import resource
import shlex
from collections.abc import Iterable

import pytest

from stackwright.context import host_contexts
from stackwright.firewall import openings
from stackwright.inventory import load_inventory
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
    ("compute2", "10.10.10.54", "10.10.10.53", 16514, {"open"}),  # libvirt's TLS: compute peers only
    ("network", "10.10.10.52", "10.10.10.53", 16514, {"filtered"}),
    ("compute2", "10.10.10.54", "10.10.10.53", 16509, {"filtered"}),  # the seed's TCP listener: none
    ("controller", "10.10.10.51", "10.10.10.53", 5900, {"open", "refused"}),  # VNC: the proxy only
    ("network", "10.10.10.52", "10.10.10.53", 5900, {"filtered"}),
    ("compute1", "10.20.20.53", "10.20.20.52", 22, {"filtered"}),  # the data network: tunnels only
    ("compute1", "10.10.10.53", "10.10.10.60", 3300, {"open"}),  # Ceph's monitor: management
    ("compute1", "10.10.10.53", "10.10.10.60", 5000, {"filtered"}),  # nothing else on a storage node
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


def matrix_ports(ports: str) -> set[int]:
    found: set[int] = set()
    for part in ports.split(","):
        low, _, high = part.partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


async def answering(source: str, target: str, ports: Iterable[int], timeout: float) -> set[int]:
    """The TCP ports of `target` that answer from `source` (open, or refused by an absent
    listener: either way the firewall let the SYN through); a dropped one times out."""
    gate = asyncio.Semaphore(1500)

    async def one(port: int) -> int | None:
        async with gate:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(target, port, local_addr=(source, 0)), timeout
                )
            except ConnectionRefusedError:
                return port
            except (TimeoutError, OSError):
                return None
            writer.close()
            return port

    return {p for p in await asyncio.gather(*(one(p) for p in ports)) if p is not None}


async def scan(source: str, expected: dict[str, tuple[str, set[int]]]) -> dict[str, set[int]]:
    """Every node's 65,535 ports at once; an expected port that missed the short timeout on a busy
    machine is asked again with a longer one."""
    names = list(expected)
    first = await asyncio.gather(*(answering(source, expected[n][0], range(1, 65536), 1.0) for n in names))
    again = await asyncio.gather(
        *(
            answering(source, expected[n][0], expected[n][1] - got, 5.0)
            for n, got in zip(names, first, strict=True)
        )
    )
    return {n: got | more for n, got, more in zip(names, first, again, strict=True)}


def test_a_scan_of_every_tcp_port_from_the_management_network_matches_the_matrix(
    epoxy_cloud: SeedLab,
) -> None:
    """From this machine's address on the management network (a management host that is not a
    node): every node's 65,535 TCP ports on its management address; those that answer are
    exactly the ones the port matrix opens to the management network."""
    second_compute_node(epoxy_cloud)
    loaded = load_inventory(epoxy_cloud.inventory)
    source = loaded.model.networks.management.lab_address
    expected = {
        name: (
            str(host.node.management),
            {
                port
                for o in openings(host)
                if o.proto == "tcp"
                and (o.sources is None or any(source in net for net in o.sources))
                and o.to in (None, host.node.management)
                for port in matrix_ports(o.ports)
            },
        )
        for name, host in host_contexts(loaded.model).items()
    }
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16384)), hard))
    try:
        got = asyncio.run(scan(str(source), expected))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for name, (_, want) in expected.items():
        assert got[name] == want, (
            name,
            f"unexpected {sorted(got[name] - want)}",
            f"missing {sorted(want - got[name])}",
        )
    record(
        "firewall",
        "management-network scan: TCP ports answering per node",
        {n: sorted(p) for n, p in got.items()},
    )


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
    assert probe(epoxy_cloud, "network", "10.10.10.52", "10.10.10.53", 16514) == "filtered"
    healthy_after(epoxy_cloud, 180)
