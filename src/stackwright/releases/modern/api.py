"""How steps reach the cloud's APIs from the controller: a shell test that an API answers, and the
admin's OS_* environment for the openstacksdk scripts (keystone-catalog.py, neutron-external.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.context import HostContext
from stackwright.steps import File

if TYPE_CHECKING:
    from stackwright.releases.base import Release


def listen_default(release: Release, host: HostContext, name: str, port: int, ini: str, ip: str) -> File:
    """/etc/default/<name>: where Debian's init script for a uwsgi API binds it (its own default,
    `--http-socket :<port>`, is every address, which the TLS front needs for itself)."""
    path = f"/etc/default/{name}"
    content = release.render("uwsgi-listen.default.j2", host, {}, service=name, ip=ip, port=port, ini=ini)
    return File(path, content, format="text")


def answers(url: str) -> str:
    """A shell test that an HTTP API answers (python3 is on every host; curl is not)."""
    return f"python3 -c \"import urllib.request; urllib.request.urlopen('{url}', timeout=5)\""


def admin_env(host: HostContext, pw: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return (
        ("OS_AUTH_URL", f"{host.internal_url_base}:5000/v3"),
        ("OS_AUTH_TYPE", "password"),
        ("OS_USERNAME", "admin"),
        ("OS_PASSWORD", pw["admin_password"]),
        ("OS_PROJECT_NAME", "admin"),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ("OS_REGION_NAME", host.region),
        ("OS_INTERFACE", "internal"),
        ("OS_IDENTITY_API_VERSION", "3"),
    )
