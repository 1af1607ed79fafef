"""Horizon, the dashboard: Debian's openstack-dashboard under Apache and mod_wsgi on the controller.

Debian's package installs it at /horizon (its non-interactive default) with static files compressed
for that web root; stackwright replaces the settings and the site and leaves the rest as Debian ships.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.dashboard import WEBROOT
from stackwright.releases.modern.api import answers
from stackwright.releases.modern.files import rendered
from stackwright.steps import Command, Service, Step, Wait

if TYPE_CHECKING:
    from stackwright.releases.base import Release

LOCAL_SETTINGS = "/etc/openstack-dashboard/local_settings.py"
DEBIAN_CACHE_SNIPPET = "/etc/openstack-dashboard/local_settings.d/_0006_debian_cache.py"
SITE_NAME = "stackwright-dashboard"
SITE = f"/etc/apache2/sites-available/{SITE_NAME}.conf"
PORTS = "/etc/apache2/ports.conf"
ERROR_LOG = "/var/log/openstack-dashboard/error.log"
ENABLED = "/etc/apache2/sites-enabled"
# Apache's own pages (on every address) and Debian's sites for the dashboard: ours replaces them.
OTHER_SITES = ("000-default", "default-ssl", "openstack-dashboard-alias-only", "openstack-dashboard")


def sites_script() -> str:
    switch = [f"if test -e {ENABLED}/{site}.conf; then a2dissite -q {site}; fi" for site in OTHER_SITES]
    switch.append(f"a2ensite -q {SITE_NAME}")
    # A running Apache takes the change now; the restart below follows only a changed file.
    return (
        "set -e\n"
        + "\n".join(switch)
        + "\nif systemctl -q is-active apache2; then systemctl reload apache2; fi"
    )


def login_page_on_the_host(host: HostContext) -> str:
    """The login page as Apache serves it on the controller (what apply waits for there)."""
    # on loopback by the name the dashboard's ALLOWED_HOSTS lets in
    address = "localhost" if host.dashboard_ip == "127.0.0.1" else host.dashboard_ip
    return f"http://{address}{WEBROOT}auth/login/"


def packages() -> tuple[str, ...]:
    # python3-pymemcache: the sessions' cache backend (Epoxy's Horizon depends on it, Zed's on the
    # older python3-memcache, which Django 3.2 deprecates).
    return ("openstack-dashboard", "openstack-dashboard-apache", "python3-pymemcache")


def steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        rendered(
            release,
            host,
            pw,
            LOCAL_SETTINGS,
            group="horizon",
            format="text",
            timezone=host.inventory.timezone,
        ),
        rendered(release, host, pw, DEBIAN_CACHE_SNIPPET, format="text"),
        rendered(release, host, pw, SITE, format="text"),
        rendered(release, host, pw, PORTS, format="text"),
        Command(
            "Apache serves only the dashboard's site",
            ("sh", "-c", sites_script()),
            unless=" && ".join(
                [f"! test -e {ENABLED}/{site}.conf" for site in OTHER_SITES]
                + [f"test -e {ENABLED}/{SITE_NAME}.conf"]
            ),
        ),
        Service("apache2", restart_when=(LOCAL_SETTINGS, DEBIAN_CACHE_SNIPPET, SITE, PORTS)),
        Wait("the dashboard's login page answers", answers(login_page_on_the_host(host)), timeout_s=120),
    ]
