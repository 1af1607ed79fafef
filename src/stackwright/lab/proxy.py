"""The lab's apt proxy: an HTTP forward proxy for lab hosts that caches immutable files.

Why our own: it is this machine's way out for the lab, and the lab needs only a small, strict
subset of a caching proxy. (apt-cacher-ng, first tried here, answered 503: its package's Remap
sends every /debian request to Debian's public mirror; the inventory's package_cache runs it with
stackwright's own configuration on a lab host, behind this proxy.) This one

- listens only on the management bridge's lab address (hosts reach it; nothing else can), and
  with `--client` serves only those hosts (an inventory with a package_cache: only its cache node
  reaches the mirror, as on a site where the other nodes have no route out),
- forwards only GET/HEAD to the mirror hosts of this machine's apt sources (`--upstream`, read
  from the sources at `lab up` time); any other host, port or method gets 403,
- keeps every pool/ and by-hash/ file (the .debs: immutable by name) in an on-disk cache, written
  atomically (temp file + rename), so repeated lab runs and many hosts download each file once,
- always fetches Release/InRelease/Packages/... indexes fresh (never from the cache),
- lets one request download a given file while concurrent requests for it wait, then read the
  cache.

    python -m stackwright.lab.proxy --listen 10.10.10.1:3142 --cache /var/cache/stackwright/apt \
        --upstream http://mirror.example --upstream http://security.example
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

from stackwright.atomic import TMP_PREFIX, atomic_writer

CHUNK = 256 * 1024
UPSTREAM_TIMEOUT = 60.0
LOCK_WAIT = 900.0  # a waiter gives up on another request's download after this long
MAX_REDIRECTS = 5
PASSED_HEADERS = ("content-type", "last-modified", "etag", "cache-control", "expires", "date")


@dataclass(frozen=True)
class Mirror:
    """A mirror as the machine's apt sources name it; lab hosts ask for it as http://host[:port]."""

    scheme: str  # how we fetch from it: http or https
    host: str
    port: int | None  # explicit port in the source URI, if any

    @property
    def key(self) -> tuple[str, int]:
        """(host, port) of the http URLs lab hosts request."""
        return (self.host, self.port or 80)

    @property
    def upstream_port(self) -> int:
        return self.port or (443 if self.scheme == "https" else 80)

    @classmethod
    def parse(cls, uri: str) -> Mirror | None:
        parts = urlsplit(uri)
        if not parts.hostname or parts.scheme not in ("http", "https"):
            return None
        return cls(parts.scheme, parts.hostname, parts.port)


@dataclass
class ProxyConfig:
    mirrors: dict[tuple[str, int], Mirror]  # by Mirror.key
    cache: Path
    # The only lab hosts that reach the mirror (a package_cache inventory: its cache node); None: all.
    clients: frozenset[str] | None = None
    locks: dict[Path, threading.Lock] = field(default_factory=dict)
    locks_guard: threading.Lock = field(default_factory=threading.Lock)

    def lock_for(self, path: Path) -> threading.Lock:
        with self.locks_guard:
            return self.locks.setdefault(path, threading.Lock())


def is_immutable(path: str) -> bool:
    """pool/ files (.deb, .dsc, ...) and by-hash/ indexes never change under the same name."""
    return "/pool/" in path or "/by-hash/" in path


def cache_path(cache: Path, host: str, path: str) -> Path | None:
    """Where a file is cached; None for a path that could escape the cache directory."""
    parts = PurePosixPath(unquote(path)).parts
    if not parts or any(p in ("..", ".") for p in parts) or "\0" in path:
        return None
    return cache / host / Path(*parts[1:])


class UpstreamError(Exception):
    pass


class Upstreams:
    """Keep-alive connections to the mirrors, one set per client connection (thread)."""

    def __init__(self) -> None:
        self.conns: dict[Mirror, http.client.HTTPConnection] = {}

    def request(
        self, mirror: Mirror, method: str, path: str, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        for attempt in (0, 1):
            conn = self.conns.get(mirror)
            if conn is None:
                https = mirror.scheme == "https"
                cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
                conn = cls(mirror.host, mirror.upstream_port, timeout=UPSTREAM_TIMEOUT)
                self.conns[mirror] = conn
            try:
                conn.request(method, path, headers={**headers, "Host": mirror.host})
                return conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                del self.conns[mirror]
                if attempt:
                    raise UpstreamError(f"{mirror.host}: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stackwright-lab-proxy"
    config: ProxyConfig  # set on the subclass made by `serve`

    def setup(self) -> None:
        super().setup()
        self.upstreams = Upstreams()

    def finish(self) -> None:
        self.upstreams.close()
        super().finish()

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} {self.client_address[0]} {format % args}\n")

    def refuse(self, code: int, why: str) -> None:
        body = f"{why}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_CONNECT(self) -> None:
        self.refuse(403, "CONNECT is not allowed: lab hosts use http mirrors through this proxy")

    do_POST = do_PUT = do_DELETE = do_CONNECT

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self.config.clients is not None and self.client_address[0] not in self.config.clients:
            self.refuse(403, f"{self.client_address[0]}: no route to the mirror in this lab (package_cache)")
            return
        url = urlsplit(self.path)
        try:
            mirror = self.config.mirrors.get((url.hostname or "", url.port or 80))
        except ValueError:  # a port that is not a number
            mirror = None
        if url.scheme != "http" or mirror is None:
            self.refuse(403, f"{url.netloc or self.path}: not a mirror of this machine's apt sources")
            return
        path = url.path + (f"?{url.query}" if url.query else "")
        try:
            if is_immutable(url.path):
                self.serve_immutable(mirror, path)
            else:
                self.pass_through(mirror, path)
        except UpstreamError as exc:
            self.refuse(502, f"upstream failed: {exc}")

    def request_headers(self, *, conditional: bool) -> dict[str, str]:
        keep = ["User-Agent", "Accept"]
        if conditional:
            keep += ["If-Modified-Since", "If-None-Match", "Range", "If-Range"]
        return {k: v for k in keep if (v := self.headers.get(k))}

    def fetch(self, mirror: Mirror, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """GET (or HEAD) from an allowed mirror, following redirects among allowed mirrors."""
        for _ in range(MAX_REDIRECTS + 1):
            resp = self.upstreams.request(mirror, self.command, path, headers)
            if resp.status not in (301, 302, 303, 307, 308):
                return resp
            resp.read()
            base = f"{mirror.scheme}://{mirror.host}:{mirror.upstream_port}{path}"
            target = urlsplit(urljoin(base, resp.getheader("Location", "")))
            found = next(
                (m for m in self.config.mirrors.values() if (m.host, m.upstream_port) == _hostport(target)),
                None,
            )
            if found is None:
                raise UpstreamError(
                    f"redirect to {target.netloc}, not a mirror of this machine's apt sources"
                )
            mirror = found
            path = target.path + (f"?{target.query}" if target.query else "")
        raise UpstreamError(f"more than {MAX_REDIRECTS} redirects")

    def pass_through(self, mirror: Mirror, path: str) -> None:
        resp = self.fetch(mirror, path, self.request_headers(conditional=True))
        length = resp.getheader("Content-Length")
        self.send_response(resp.status)
        for name in (*PASSED_HEADERS, "content-range", "accept-ranges"):
            if (value := resp.getheader(name)) is not None:
                self.send_header(name, value)
        chunked = length is None and self.command != "HEAD" and resp.status not in (204, 304)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if self.command == "HEAD":
            resp.read()
            return
        for block in iter_body(resp):
            self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def serve_immutable(self, mirror: Mirror, path: str) -> None:
        target = cache_path(self.config.cache, mirror.host, urlsplit(path).path)
        if target is None:
            self.refuse(403, "bad path")
            return
        if target.is_file():
            self.send_cached(target, "HIT")
            return
        lock = self.config.lock_for(target)
        if not lock.acquire(timeout=LOCK_WAIT):
            raise UpstreamError(f"gave up after {LOCK_WAIT:.0f} s waiting for another download of {path}")
        try:
            if target.is_file():  # another request fetched it while we waited
                self.send_cached(target, "HIT")
                return
            self.download_and_send(mirror, path, target)
        finally:
            lock.release()

    def send_cached(self, target: Path, how: str) -> None:
        stat = target.stat()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(stat.st_size))
        self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
        self.send_header("X-Stackwright-Cache", how)
        self.end_headers()
        if self.command == "HEAD":
            return
        with target.open("rb") as f:
            while block := f.read(CHUNK):
                self.wfile.write(block)

    def download_and_send(self, mirror: Mirror, path: str, target: Path) -> None:
        if self.command == "HEAD":
            self.pass_through(mirror, path)
            return
        resp = self.fetch(mirror, path, self.request_headers(conditional=False))
        if resp.status != 200:
            body = resp.read()
            self.send_response(resp.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = resp.getheader("Content-Length")
        client_ok = length is not None
        if client_ok:
            self.send_response(200)
            for name in PASSED_HEADERS:
                if (value := resp.getheader(name)) is not None:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(length))
            self.send_header("X-Stackwright-Cache", "MISS")
            self.end_headers()
        try:
            size = 0
            with atomic_writer(target, mode=0o644, sync=False) as out:
                for block in iter_body(resp):
                    out.write(block)
                    size += len(block)
                    if client_ok:
                        try:
                            self.wfile.write(block)
                        except OSError:
                            client_ok = False  # keep filling the cache for the next host
                if length is not None and size != int(length):
                    raise UpstreamError(f"{path}: got {size} of {length} bytes")
                out.flush()
                _set_mtime(out.fileno(), resp.getheader("Last-Modified"))
        except BaseException:
            self.close_connection = True
            raise
        if length is None:
            self.send_cached(target, "MISS")


def _hostport(url: SplitResult) -> tuple[str, int]:
    try:
        port = url.port
    except ValueError:
        port = None
    return (url.hostname or "", port or (443 if url.scheme == "https" else 80))


def iter_body(resp: http.client.HTTPResponse) -> Iterator[bytes]:
    while True:
        try:
            block = resp.read(CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamError(f"read failed: {exc}") from exc
        if not block:
            return
        yield block


def _set_mtime(fd: int, last_modified: str | None) -> None:
    if last_modified:
        try:
            stamp = parsedate_to_datetime(last_modified).timestamp()
        except (TypeError, ValueError):
            return
        os.utime(fd, (stamp, stamp))


def remove_stale_parts(cache: Path, older_than: float = 3600) -> None:
    """Temp files of downloads cut short (a proxy stopped mid-file); other labs' are younger."""
    cutoff = time.time() - older_than
    for part in cache.rglob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if part.stat().st_mtime < cutoff:
                part.unlink()


def serve(listen: str, port: int, config: ProxyConfig) -> ThreadingHTTPServer:
    handler = type("LabProxyHandler", (Handler,), {"config": config})
    server = ThreadingHTTPServer((listen, port), handler)
    server.daemon_threads = True
    return server


def parse_args(argv: list[str]) -> tuple[str, int, ProxyConfig]:
    parser = argparse.ArgumentParser(prog="python -m stackwright.lab.proxy")
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT (the management bridge)")
    parser.add_argument("--cache", required=True, type=Path)
    parser.add_argument("--upstream", action="append", default=[], help="scheme://host of a mirror")
    parser.add_argument("--client", action="append", help="the only host address served (repeatable)")
    args = parser.parse_args(argv)
    address, _, port = args.listen.rpartition(":")
    mirrors = {m.key: m for up in args.upstream if (m := Mirror.parse(up)) is not None}
    clients = frozenset(args.client) if args.client else None
    return address, int(port), ProxyConfig(mirrors=mirrors, cache=args.cache, clients=clients)


def main(argv: list[str]) -> int:
    address, port, config = parse_args(argv)
    config.cache.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(config.cache)
    server = serve(address, port, config)
    names = ", ".join(sorted(f"{m.scheme}://{m.host}" for m in config.mirrors.values()))
    print(f"listening on {address}:{port}, mirrors: {names}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
