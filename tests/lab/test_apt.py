"""apt works inside hosts through the lab's proxy, which caches .debs and nothing mutable."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from stackwright.lab.layout import APT_CACHE, PROXY_PORT
from stackwright.lab.sources import lab_mirrors
from tests.lab.conftest import SeedLab

pytestmark = pytest.mark.lab

APT = "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0"


def _proxy_get(seed_lab: SeedLab, url: str, method: str = "GET") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(str(seed_lab.layout.proxy_address), PROXY_PORT, timeout=30)
    conn.request(method, url)
    return conn.getresponse()


def test_apt_get_install_works_inside(seed_lab: SeedLab) -> None:
    out = seed_lab.check("network", f"{APT} update && {APT} install hello && hello", timeout=300)
    assert "Hello, world!" in out


def test_debs_are_cached_and_served_from_the_cache(seed_lab: SeedLab) -> None:
    seed_lab.check("network", f"{APT} update && {APT} install --reinstall hello", timeout=300)
    debs = sorted(APT_CACHE.glob("*/**/pool/**/hello_*.deb"))
    assert debs, f"no hello .deb under {APT_CACHE}"
    rel = debs[0].relative_to(APT_CACHE)
    resp = _proxy_get(seed_lab, f"http://{rel.parts[0]}/{Path(*rel.parts[1:]).as_posix()}")
    body = resp.read()
    assert resp.status == 200 and resp.getheader("X-Stackwright-Cache") == "HIT"
    assert body == debs[0].read_bytes()


def test_indexes_are_never_cached(seed_lab: SeedLab) -> None:
    seed_lab.check("compute1", f"{APT} update", timeout=300)
    names = {p.name for p in APT_CACHE.rglob("*") if p.is_file()}
    assert not names & {"InRelease", "Release", "Release.gpg", "Packages", "Packages.xz"}


def test_proxy_refuses_hosts_not_in_the_apt_sources(seed_lab: SeedLab) -> None:
    resp = _proxy_get(seed_lab, "http://not-a-mirror.invalid/debian/pool/x.deb")
    assert resp.status == 403
    mirror = lab_mirrors(seed_lab.layout.codename).hosts[0]
    assert _proxy_get(seed_lab, f"http://{mirror}:8080/debian/", "GET").status == 403
    assert _proxy_get(seed_lab, f"{mirror}:443", "CONNECT").status == 403


def test_proxy_listens_only_on_the_management_bridge(seed_lab: SeedLab) -> None:
    ss = Path("/proc/net/tcp").read_text()
    port = f":{PROXY_PORT:04X}"
    listening = [line.split()[1] for line in ss.splitlines()[1:] if line.split()[3] == "0A"]
    ip = seed_lab.layout.proxy_address.packed[::-1].hex().upper()
    assert f"{ip}{port}" in listening, "the proxy does not listen on the management bridge"
    assert f"00000000{port}" not in listening, "the proxy listens on every address"


def test_hosts_use_the_proxy_and_the_machines_mirrors(seed_lab: SeedLab) -> None:
    conf = seed_lab.check("compute1", "apt-config dump Acquire::http::Proxy")
    assert f"http://{seed_lab.layout.proxy_address}:{PROXY_PORT}" in conf
    sources = seed_lab.check("compute1", "cat /etc/apt/sources.list")
    for src in lab_mirrors(seed_lab.layout.codename).sources:
        assert src.http_uri in sources
