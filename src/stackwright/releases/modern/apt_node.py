"""apt and dpkg on every node: what installing packages leaves out, and the fleet's package cache.

The steps of `preparation` come before a host's first Packages step, so converge runs them before
node preparation's apt update, upgrade and install (engine/converge.py).

What every node leaves out, as Debian's cloud and container images do (README: "What a node
leaves out"); measured in docs/benchmarks.md:
- dpkg path excludes: documentation (each package's copyright kept), man and info pages, message
  translations (locale.alias kept), lintian overrides. No service reads them.
- the Python packages' own test suites are not byte-compiled (dh-python's exclude list,
  /usr/share/python3/bcep/): no service imports them. They stay on disk — py3compile compiles
  from dpkg's file lists and fails a package whose listed file is missing.

With `package_cache: <node>` that node runs apt-cacher-ng on its management address (and loopback);
every node's apt, the cache node's own once the cache runs, fetches through it, so each .deb crosses
from the mirror once and the other nodes need no route to the mirror. The other nodes wait for the
cache before their apt runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.context import PACKAGE_CACHE_PORT, HostContext
from stackwright.steps import AwaitHost, File, Milestone, Service, Step, Wait

if TYPE_CHECKING:
    from stackwright.releases.base import Release

DPKG_EXCLUDES = "/etc/dpkg/dpkg.cfg.d/90stackwright-excludes"
NO_BYTE_COMPILE = "/usr/share/python3/bcep/stackwright"
APT_PROXY = "/etc/apt/apt.conf.d/90stackwright-package-cache"
CACHE_CONF = "/etc/apt-cacher-ng/acng.conf"
CACHE_LOG = "/var/log/apt-cacher-ng/apt-cacher.log"
CACHE_READY = "package cache answering"
CACHE_PACKAGES = ("apt-cacher-ng",)

_DPKG_EXCLUDES = """\
# Managed by stackwright: what packages do not install on this server (README: "What a node
# leaves out"). Remove this file (and stop managing the node) to get them back with a reinstall.
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
"""
# dh-python's format: type|Python versions|directory|pattern (see py3compile's get_exclude_patterns)
_NO_BYTE_COMPILE = """\
# Managed by stackwright: Python test suites are not byte-compiled on this server.
re|-|/usr/lib/python3/dist-packages/|.*/tests/.*
"""


def packages(host: HostContext) -> tuple[str, ...]:
    return CACHE_PACKAGES if host.is_package_cache else ()


def preparation(host: HostContext) -> list[Step]:
    """Before apt runs: what dpkg leaves out, and apt through the package cache once it answers."""
    steps: list[Step] = [File(DPKG_EXCLUDES, _DPKG_EXCLUDES), File(NO_BYTE_COMPILE, _NO_BYTE_COMPILE)]
    cache = host.inventory.package_cache_host
    if cache is not None and not host.is_package_cache:
        steps += [File(APT_PROXY, apt_proxy_file(host)), AwaitHost(cache, CACHE_READY)]
    return steps


def apt_proxy_file(host: HostContext) -> str:
    assert host.apt_proxy is not None
    cache = host.inventory.package_cache_host
    return (
        f"// Managed by stackwright: packages come through the fleet's cache on {cache} (package_cache).\n"
        f'Acquire::http::Proxy "{host.apt_proxy}";\n'
    )


def cache(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    """On the cache node, after its own first packages: the cache, then apt through it."""
    listening = f"{host.management_ip}:{PACKAGE_CACHE_PORT}"
    upstream = host.inventory.package_cache.upstream_proxy if host.inventory.package_cache else None
    return [
        File(
            CACHE_CONF, release.render("acng.conf.j2", host, pw, upstream=upstream, port=PACKAGE_CACHE_PORT)
        ),
        Service("apt-cacher-ng", restart_when=(CACHE_CONF,)),
        Wait(
            f"apt-cacher-ng listens on {listening}",
            f"ss -Hltn 'sport = :{PACKAGE_CACHE_PORT}' | grep -qF {shlex.quote(listening)}",
        ),
        File(APT_PROXY, apt_proxy_file(host)),
        Milestone(CACHE_READY),
    ]
