"""The apt proxy against a fake mirror on loopback (offline; no root, no hosts)."""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from stackwright.lab.proxy import Mirror, ProxyConfig, serve

DEB = b"!<arch>\n" + bytes(range(256)) * 4000  # ~1 MB, stands in for a .deb


class FakeMirror(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: ClassVar[Counter[str]] = Counter()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        FakeMirror.hits[self.path] += 1
        if self.path.endswith("hello_1.deb"):
            body = DEB
            time.sleep(0.3)  # slow enough for concurrent requests to overlap
        elif self.path.endswith("InRelease"):
            body = f"release {FakeMirror.hits[self.path]}\n".encode()
        elif self.path.endswith("short.deb"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)  # then the connection drops
            self.close_connection = True
            return
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _start(server: ThreadingHTTPServer) -> None:
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """(mirror base URL as hosts ask for it, proxy port, cache dir)"""
    FakeMirror.hits.clear()
    mirror = ThreadingHTTPServer(("127.0.0.1", 0), FakeMirror)
    _start(mirror)
    mport = mirror.server_address[1]
    m = Mirror("http", "127.0.0.1", mport)
    proxy = serve("127.0.0.1", 0, ProxyConfig(mirrors={m.key: m}, cache=tmp_path))
    _start(proxy)
    try:
        yield f"http://127.0.0.1:{mport}", proxy.server_address[1], tmp_path
    finally:
        proxy.shutdown()
        mirror.shutdown()


def get(port: int, url: str, method: str = "GET") -> tuple[int, bytes, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, url)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("X-Stackwright-Cache")
    finally:
        conn.close()


def test_a_deb_is_downloaded_once_for_many_requests(proxied: tuple[str, int, Path]) -> None:
    base, port, cache = proxied
    url = f"{base}/debian/pool/main/h/hello/hello_1.deb"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: get(port, url), range(4)))
    results.append(get(port, url))
    assert all(status == 200 and body == DEB for status, body, _ in results)
    assert FakeMirror.hits["/debian/pool/main/h/hello/hello_1.deb"] == 1
    assert sorted(how or "" for _, _, how in results).count("MISS") == 1
    assert (cache / "127.0.0.1/debian/pool/main/h/hello/hello_1.deb").read_bytes() == DEB
    assert not list(cache.rglob(".part-*"))


def test_indexes_are_fetched_fresh_every_time(proxied: tuple[str, int, Path]) -> None:
    base, port, cache = proxied
    first = get(port, f"{base}/debian/dists/bookworm/InRelease")
    second = get(port, f"{base}/debian/dists/bookworm/InRelease")
    assert (first[1], second[1]) == (b"release 1\n", b"release 2\n")
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_other_hosts_ports_and_connect_are_refused(proxied: tuple[str, int, Path]) -> None:
    base, port, _ = proxied
    assert get(port, "http://elsewhere.invalid/debian/pool/x.deb")[0] == 403
    assert get(port, "http://127.0.0.1:1/debian/pool/x.deb")[0] == 403
    assert get(port, base.removeprefix("http://"), "CONNECT")[0] == 403
    assert sum(FakeMirror.hits.values()) == 0


def test_missing_and_truncated_files_are_not_cached(proxied: tuple[str, int, Path]) -> None:
    base, port, cache = proxied
    assert get(port, f"{base}/debian/pool/main/n/none_1.deb")[0] == 404
    with contextlib.suppress(http.client.HTTPException, OSError):  # the client sees it break
        get(port, f"{base}/debian/pool/main/s/short.deb")
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_with_clients_named_every_other_host_is_refused(tmp_path: Path) -> None:
    """A package_cache lab: only the cache node reaches the mirror (here: 127.0.0.2 only)."""
    FakeMirror.hits.clear()
    mirror = ThreadingHTTPServer(("127.0.0.1", 0), FakeMirror)
    _start(mirror)
    m = Mirror("http", "127.0.0.1", mirror.server_address[1])
    proxy = serve(
        "127.0.0.1", 0, ProxyConfig(mirrors={m.key: m}, cache=tmp_path, clients=frozenset({"127.0.0.2"}))
    )
    _start(proxy)
    try:
        status, body, _ = get(
            proxy.server_address[1], f"http://127.0.0.1:{m.port}/debian/pool/main/h/hello/hello_1.deb"
        )
    finally:
        proxy.shutdown()
        mirror.shutdown()
    assert status == 403 and b"no route to the mirror" in body
    assert sum(FakeMirror.hits.values()) == 0
