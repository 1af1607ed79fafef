"""apt and dpkg on every node: what installing packages leaves out, and the fleet's package cache.

The steps of `preparation` come before a host's first Packages step, so converge runs them before
node preparation's apt update, upgrade and install (engine/converge.py).

What every node leaves out, as Debian's cloud and container images do (README: "What a node
leaves out"); measured in docs/benchmarks.md:
- dpkg path excludes: documentation (each package's copyright kept), man and info pages, message
  translations (locale.alias kept), lintian overrides. No service reads them.
- Python modules are byte-compiled once per apt run, not once per package. dh-python's postinst
  runs `py3compile -p PACKAGE`, which starts an interpreter and a compile worker for each package
  (~200 of each for a compute node). apt runs maintainer scripts with its own PATH (`DPkg::Path`),
  which the apt file here starts with a directory holding a stand-in `py3compile`: for a package
  whose modules are all in /usr/lib/python3/dist-packages it does nothing, anything else goes to
  Debian's. After dpkg, the same file's `DPkg::Post-Invoke` compiles that directory in one
  pass (compile_dist_packages.py: compileall's own compile, the files in chunks to one worker per
  CPU), which skips what is up to date. dpkg run by hand (`dpkg -i`) keeps
  Debian's PATH, so Debian's py3compile; taking the apt file away restores Debian's behaviour.
  This and the next are the changes to packaging scripts stackwright makes: files outside
  /usr/bin, through apt's own setting, no diversion of a Debian file (docs/benchmarks.md has the
  figures).
- While stackwright installs packages with services held (engine/apt.py), the maintainer scripts'
  `systemctl daemon-reload`s (~40 for a compute node, each running every systemd generator) are
  one after apt: the same directory's stand-in systemctl leaves a marker instead, only with the
  engine's variable set and only for a daemon-reload; nothing starts from a unit file meanwhile.
- the Python packages' own test suites are not byte-compiled (dh-python's exclude list,
  /usr/share/python3/bcep/, and compileall's -x): no service imports them. They stay on disk —
  py3compile compiles from dpkg's file lists and fails a package whose listed file is missing.

With `package_cache: <node>` that node runs apt-cacher-ng on its management address (and loopback);
every node's apt, the cache node's own once the cache runs, fetches through it, so each .deb crosses
from the mirror once and the other nodes need no route to the mirror. The other nodes wait for the
cache before their apt runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING

from stackwright.context import DEFERRED_DAEMON_RELOAD, PACKAGE_CACHE_PORT, SERVICES_HELD_ENV, HostContext
from stackwright.steps import AwaitHost, File, Milestone, Service, Step, Wait

if TYPE_CHECKING:
    from stackwright.releases.base import Release

DPKG_EXCLUDES = "/etc/dpkg/dpkg.cfg.d/90stackwright-excludes"
NO_BYTE_COMPILE = "/usr/share/python3/bcep/stackwright"
DPKG_PATH_DIR = "/usr/local/lib/stackwright/dpkg-path"
PY3COMPILE_STAND_IN = f"{DPKG_PATH_DIR}/py3compile"
SYSTEMCTL_STAND_IN = f"{DPKG_PATH_DIR}/systemctl"
COMPILE_SCRIPT = "/usr/local/lib/stackwright/compile-dist-packages"
BYTE_COMPILE_APT = "/etc/apt/apt.conf.d/90stackwright-byte-compile"
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
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
# dh-python's postinst line is exactly `py3compile -p PACKAGE`; with directories after it the
# package has private modules, which stay Debian's. A package with files under
# /usr/lib/python3.X/ (a version's own directory) is Debian's too: the hook compiles only
# DIST_PACKAGES. A package without a file list is Debian's (nothing to go by). Postinsts name
# the package with or without its architecture (`py3compile -p python3-bcrypt:amd64`), and dpkg
# names the list with it only for Multi-Arch: same packages (python3-lxml:amd64.list, but
# python3-bcrypt.list): each spelling is looked up both ways.
_PY3COMPILE_STAND_IN = f"""\
#!/bin/sh
# Managed by stackwright ({BYTE_COMPILE_APT}): apt's maintainer scripts find this
# py3compile first. A package's public modules in {DIST_PACKAGES} are compiled once after
# dpkg by that file's DPkg::Post-Invoke; everything else goes to Debian's py3compile.
if [ -n "${{DPKG_MAINTSCRIPT_PACKAGE:-}}" ] && [ "$#" = 2 ] && [ "$1" = -p ]; then
  case $2 in
    [!a-z0-9]* | *[!a-z0-9.+:-]* | *:*:* | *:) ;;  # not a package name: Debian's
    *)
      info=/var/lib/dpkg/info name=${{2%%:*}}
      for list in "$info/$2.list" "$info/$name.list" "$info/$name":*.list; do
        [ -e "$list" ] && break
      done
      if [ -e "$list" ] && ! grep -q '^/usr/lib/python3\\.[0-9]*/' "$list"; then
        exit 0
      fi
      ;;
  esac
fi
exec /usr/bin/py3compile "$@"
"""
# The two spellings Debian's maintainer scripts use (debhelper's snippet, deb-systemd-helper).
_SYSTEMCTL_STAND_IN = f"""\
#!/bin/sh
# Managed by stackwright ({BYTE_COMPILE_APT}): apt's maintainer scripts find this systemctl
# first. While stackwright installs packages with services held ({SERVICES_HELD_ENV} set), their
# daemon-reloads become one after apt; everything else is systemd's systemctl.
if [ -n "${{{SERVICES_HELD_ENV}:-}}" ] && [ -n "${{DPKG_MAINTSCRIPT_PACKAGE:-}}" ]; then
  case "$*" in
    daemon-reload | "--system daemon-reload") : > {DEFERRED_DAEMON_RELOAD} && exit 0 ;;
  esac
fi
exec /usr/bin/systemctl "$@"
"""
# DPkg::Path is apt's default with the stand-ins' directory first. The compile is this package's
# compile_dist_packages.py on the node (compileall with the files in chunks, one worker per CPU:
# the node's critical path); without it, compileall itself. A file that does not compile is
# reported and apt carries on: that module is compiled in memory when imported, as with no .pyc at
# all; dpkg's work is done and recorded by then.
_COMPILE = (
    f"if [ -x /usr/bin/python3 ] && [ -d {DIST_PACKAGES} ]; then "
    f"if [ -r {COMPILE_SCRIPT} ]; then /usr/bin/python3 {COMPILE_SCRIPT} {DIST_PACKAGES}; "
    f"else /usr/bin/python3 -m compileall -q -j 0 -x /tests/ {DIST_PACKAGES}; fi || true; fi"
)
_COMPILE_SOURCE = (
    resources.files("stackwright.releases.modern").joinpath("compile_dist_packages.py").read_text()
)
_BYTE_COMPILE_APT = f"""\
// Managed by stackwright: Python modules in {DIST_PACKAGES} are byte-compiled once
// after dpkg instead of once per package ({PY3COMPILE_STAND_IN}); test suites left out.
// While stackwright installs with services held, daemon-reloads wait for apt's end ({SYSTEMCTL_STAND_IN}).
DPkg::Path "{DPKG_PATH_DIR}:/usr/sbin:/usr/bin:/sbin:/bin";
DPkg::Post-Invoke {{ "{_COMPILE}"; }};
"""


def packages(host: HostContext) -> tuple[str, ...]:
    return CACHE_PACKAGES if host.is_package_cache else ()


def preparation(host: HostContext) -> list[Step]:
    """Before apt runs: what dpkg leaves out, and apt through the package cache once it answers."""
    steps: list[Step] = [
        File(DPKG_EXCLUDES, _DPKG_EXCLUDES),
        File(NO_BYTE_COMPILE, _NO_BYTE_COMPILE),
        File(PY3COMPILE_STAND_IN, _PY3COMPILE_STAND_IN, mode=0o755),
        File(SYSTEMCTL_STAND_IN, _SYSTEMCTL_STAND_IN, mode=0o755),
        File(COMPILE_SCRIPT, _COMPILE_SOURCE, mode=0o755),
        File(BYTE_COMPILE_APT, _BYTE_COMPILE_APT),
    ]
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
